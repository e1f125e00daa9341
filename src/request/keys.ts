// The key of one request for locality and hash schedulers (extractKey, hot path: called once per
// connection, allocates at most the returned string). What `key:` means is config/key.ts.
import type { Captures } from '../config/pattern'
import type { KeySpec } from '../config/types'
import { maskAddress } from '../net/ip'
import type { RequestHead } from './types'

/**
 * The request's key, or undefined when it is missing (no such header, cookie or capture group; no
 * Host for `host`). header: the first field with that name. cookie: the first cookie of that name in
 * any Cookie field, surrounding double quotes removed. client-ip/NN: the masked IPv4 as a dotted
 * quad ("10.1.2.0"); an IPv4-mapped IPv6 client is treated as IPv4; a native IPv6 client is keyed by its
 * first 64 bits ("2001:db8:1:2::"), the prefix a site usually gets, whatever NN is. capture: the group of
 * the route's pathRegex match (`captures`, null when the route has none).
 */
export function extractKey (spec: KeySpec, head: RequestHead, clientAddress: string,
  captures: Captures | null): string | undefined {
  switch (spec.kind) {
    case 'path': return head.path
    case 'host': return head.host === '' ? undefined : head.host
    case 'host+path': return head.host + head.path
    case 'header': return headerValue(head.headers, spec.name)
    case 'cookie': return cookieValue(head.headers, spec.name)
    case 'client-ip': return spec.prefixLength === undefined ? clientAddress : maskAddress(clientAddress, spec.prefixLength)
    case 'capture': return captures === null ? undefined : captures.group(spec.group)
  }
}

/** ASCII case-insensitive equality of `field` with the lower-case `lower`, no allocation. */
function nameIs (field: string, lower: string): boolean {
  if (field.length !== lower.length) return false
  for (let i = 0; i < field.length; i++) {
    let c = field.charCodeAt(i)
    if (c >= 65 && c <= 90) c += 32
    if (c !== lower.charCodeAt(i)) return false
  }
  return true
}

export function headerValue (headers: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (nameIs(headers[i]!, lowerName)) return headers[i + 1]
  }
  return undefined
}

export function cookieValue (headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (!nameIs(headers[i]!, 'cookie')) continue
    const v = findCookie(headers[i + 1]!, name)
    if (v !== undefined) return v
  }
  return undefined
}

/** Scans `a=1; b=2` pairs in place; only the returned value is sliced out. */
function findCookie (s: string, name: string): string | undefined {
  let i = 0
  const n = s.length
  while (i < n) {
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++
    let end = s.indexOf(';', i)
    if (end < 0) end = n
    if (s.startsWith(name, i)) {
      let j = i + name.length
      while (j < end && (s.charCodeAt(j) === 32 || s.charCodeAt(j) === 9)) j++
      if (s.charCodeAt(j) === 61) return cookieSlice(s, j + 1, end)
    }
    i = end + 1
  }
  return undefined
}

function cookieSlice (s: string, from: number, to: number): string {
  while (from < to && (s.charCodeAt(from) === 32 || s.charCodeAt(from) === 9)) from++
  while (to > from && (s.charCodeAt(to - 1) === 32 || s.charCodeAt(to - 1) === 9)) to--
  if (to - from >= 2 && s.charCodeAt(from) === 34 && s.charCodeAt(to - 1) === 34) { from++; to-- }
  return s.slice(from, to)
}
