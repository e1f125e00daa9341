// Request keys for locality and hash schedulers: what `key:` in a service means (parseKeySpec, config
// time) and the key of one request (extractKey, hot path: called once per connection, allocates at
// most the returned string).
import { ConfigError } from '../errors'
import type { KeySpec } from '../config/types'
import type { RequestHead } from '../dispatcher/types'
import { parseIPv4, parseIPv6 } from './hash'

/** The key when a service has no `key:`. */
export const DEFAULT_KEY_SPEC: KeySpec = Object.freeze({ kind: 'path' })

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const GROUP_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/
const KINDS = 'path, host, host+path, header:NAME, cookie:NAME, client-ip, client-ip/NN, capture:N, capture:NAME'

/**
 * `path` (the default when absent), `host`, `host+path`, `header:NAME` (NAME lower-cased), `cookie:NAME`,
 * `client-ip`, `client-ip/NN` (NN 0..32: an IPv4 prefix; IPv6 clients are keyed by their /64, see
 * extractKey), `capture:N` or `capture:NAME` (a group of the route's pathRegex).
 * Throws ConfigError with one issue at `path`.
 */
export function parseKeySpec (raw: unknown, path: string): KeySpec {
  if (raw === undefined || raw === null) return DEFAULT_KEY_SPEC
  const fail = (why: string): never => {
    throw new ConfigError([{ path, message: `key ${why}` }])
  }
  if (typeof raw !== 'string') return fail(`must be a string (${KINDS}), got ${JSON.stringify(raw)}`)
  if (raw === 'path' || raw === 'host' || raw === 'host+path') return { kind: raw }
  if (raw === 'client-ip') return { kind: 'client-ip' }
  const colon = raw.indexOf(':')
  const kind = colon < 0 ? raw : raw.slice(0, colon)
  const arg = colon < 0 ? '' : raw.slice(colon + 1)
  if (kind === 'header' || kind === 'cookie') {
    if (!TOKEN.test(arg)) return fail(`"${raw}": ${kind} name must be a non-empty token`)
    return kind === 'header' ? { kind, name: arg.toLowerCase() } : { kind, name: arg }
  }
  if (kind === 'capture') {
    if (/^\d+$/.test(arg)) return { kind, group: Number(arg) }
    if (GROUP_NAME.test(arg)) return { kind, group: arg }
    return fail(`"${raw}": capture needs a group number or name`)
  }
  const prefix = /^client-ip\/(\d{1,2})$/.exec(raw)
  if (prefix !== null) {
    const n = Number(prefix[1])
    if (n > 32) return fail(`"${raw}": client-ip prefix must be 0..32, got ${n}`)
    return { kind: 'client-ip', prefixLength: n }
  }
  return fail(`"${raw}" is not a key kind; expected one of ${KINDS}`)
}

/**
 * The request's key, or undefined when it is missing (no such header, cookie or capture group; no
 * Host for `host`). header: the first field with that name. cookie: the first cookie of that name in
 * any Cookie field, surrounding double quotes removed. client-ip/NN: the masked IPv4 as a dotted
 * quad ("10.1.2.0"); an IPv4-mapped IPv6 client is treated as IPv4; a native IPv6 client is keyed by its
 * first 64 bits ("2001:db8:1:2::"), the prefix a site usually gets, whatever NN is.
 */
export function extractKey (spec: KeySpec, head: RequestHead, clientAddress: string,
  captures: RegExpExecArray | null): string | undefined {
  switch (spec.kind) {
    case 'path': return head.path
    case 'host': return head.host === '' ? undefined : head.host
    case 'host+path': return head.host + head.path
    case 'header': return headerValue(head.headers, spec.name)
    case 'cookie': return cookieValue(head.headers, spec.name)
    case 'client-ip': return spec.prefixLength === undefined ? clientAddress : maskAddress(clientAddress, spec.prefixLength)
    case 'capture': {
      if (captures === null) return undefined
      return typeof spec.group === 'number' ? captures[spec.group] : captures.groups?.[spec.group]
    }
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

const groups = new Uint16Array(8)

/** See extractKey: IPv4 masked to `bits`, IPv6 to /64, anything else unchanged. */
export function maskAddress (address: string, bits: number): string {
  let v4 = parseIPv4(address)
  if (v4 < 0 && address.startsWith('::ffff:')) v4 = parseIPv4(address, 7)
  if (v4 >= 0) {
    const m = (bits === 0 ? 0 : v4 & (0xFFFFFFFF << (32 - bits))) >>> 0
    return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}`
  }
  if (!parseIPv6(address, groups)) return address
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}:${groups[3]!.toString(16)}::`
}
