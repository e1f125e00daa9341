// The key of one request for locality and hash schedulers (extractKey, hot path: called once per
// connection, allocates at most the returned string and the joined value of a repeated header). What
// `key:` means is config/key.ts.
import type { Captures } from '../config/pattern'
import type { KeySpec } from '../config/types'
import { maskAddress } from '../net/ip'
import { headerValueAsNode } from './headers'
import type { RequestHead } from './types'

/**
 * The request's key, or undefined when it is missing (no such header, cookie or capture group; no
 * Host for `host`). header: the value Node gives the application (headers.ts: the first field for some
 * names, all of them joined for the rest). cookie: see cookieValue. client-ip/NN: the masked IPv4 as a
 * dotted quad ("10.1.2.0"); an IPv4-mapped IPv6 client is treated as IPv4; a native IPv6 client is keyed
 * by its first 64 bits ("2001:db8:1:2::"), the prefix a site usually gets, whatever NN is. capture: the
 * group of the route's pathRegex match (`captures`, null when the route has none).
 */
export function extractKey (spec: KeySpec, head: RequestHead, clientAddress: string,
  captures: Captures | null): string | undefined {
  switch (spec.kind) {
    case 'path': return head.path
    case 'host': return head.host === '' ? undefined : head.host
    case 'host+path': return head.host + head.path
    case 'header': return headerValueAsNode(head.headers, spec.name)
    case 'cookie': return cookieValue(head.headers, spec.name)
    case 'client-ip': return spec.prefixLength === undefined ? clientAddress : maskAddress(clientAddress, spec.prefixLength)
    case 'capture': return captures === null ? undefined : captures.group(spec.group)
  }
}

/**
 * The first cookie named `name` in the Cookie value the application sees (every Cookie field joined with
 * '; ', as Node does), surrounding double quotes removed; the `cookie` package also keeps the first.
 */
export function cookieValue (headers: readonly string[], name: string): string | undefined {
  const joined = headerValueAsNode(headers, 'cookie')
  return joined === undefined ? undefined : findCookie(joined, name)
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
