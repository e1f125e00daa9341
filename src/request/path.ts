// Request-target and authority parsing for routing: split the target into path and query, normalise the
// path (decode unreserved escapes only, drop `;` path parameters), and read a Host value. Anything a back
// end could resolve differently (dot segments, also with parameters; empty segments; encoded '/' or '\';
// NUL; bad escapes) is refused here rather than guessed at: the caller answers 400. Hot path: no regex,
// allocation only for the strings returned. docs/request-validation.md lists the rules.

const SLASH = 0x2f
const PERCENT = 0x25
const DOT = 0x2e
const QMARK = 0x3f
const COLON = 0x3a
const SEMICOLON = 0x3b
const BACKSLASH = 0x5c
const HEX_UPPER = '0123456789ABCDEF'

// Character classes, one bit each, indexed by char code (< 256).
const UNRESERVED = 1 // ALPHA DIGIT - . _ ~
const PCHAR = 2 // unreserved, sub-delims, ':' and '@': allowed raw in a path segment
const QCHAR = 4 // visible ASCII except '#': allowed raw in the query (browsers send '|', '^', '{' ... raw)
const HOSTCHAR = 8 // ALPHA DIGIT - . _ : what a reg-name may hold here (no sub-delims, no escapes)
const IP6CHAR = 16 // HEXDIG ':' '.' inside [ ]

const CLASS = new Uint8Array(256)
for (let c = 0x21; c < 0x7f; c++) CLASS[c] = QCHAR
CLASS[0x23] = 0 // '#': a fragment never belongs in a request-target
for (const ch of "!$&'()*+,;=:@") CLASS[ch.charCodeAt(0)]! |= PCHAR
for (const ch of '-._~') CLASS[ch.charCodeAt(0)]! |= UNRESERVED | PCHAR
for (let c = 0x30; c <= 0x39; c++) CLASS[c]! |= UNRESERVED | PCHAR | HOSTCHAR | IP6CHAR
for (let c = 0x41; c <= 0x5a; c++) CLASS[c]! |= UNRESERVED | PCHAR | HOSTCHAR
for (let c = 0x61; c <= 0x7a; c++) CLASS[c]! |= UNRESERVED | PCHAR | HOSTCHAR
for (const ch of '-._') CLASS[ch.charCodeAt(0)]! |= HOSTCHAR
for (const ch of 'abcdefABCDEF:.') CLASS[ch.charCodeAt(0)]! |= IP6CHAR

function cls (c: number): number { return c < 256 ? CLASS[c]! : 0 }

function hexVal (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const l = c | 0x20
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1
}

/**
 * The path used for routing, or null when it must be refused (400). Accepts an origin-form path (starts
 * with '/', no query). Percent-escapes of unreserved characters are decoded, every other escape is kept
 * with upper-case hex; raw characters outside pchar and '/' are refused, as are %2F, %5C, %00 and
 * malformed escapes. Each segment is `name[;parameters]`: parameters start at ';' or %3B and are dropped
 * (Tomcat, Jetty and Spring route `/a;v=1/b` as `/a/b`). A name of '.' or '..' (also encoded, also with
 * parameters) and an empty name before a '/' ('//', '/;x/') are refused: back ends resolve or merge them
 * differently. Returns `raw` itself when nothing changes. Hot path: allocates only when it rewrites.
 */
export function normalizePath (raw: string): string | null {
  const n = raw.length
  if (n === 0 || raw.charCodeAt(0) !== SLASH) return null
  let out = ''
  let copied = 0 // raw[copied, i) is not yet in out
  let dots = 0 // length of the segment's name while it holds only dots (0 = empty); -1 once it holds more
  let params = false // inside the segment's parameters: nothing is copied until the next '/'
  for (let i = 1, width = 1; i < n; i += width) {
    let c = raw.charCodeAt(i)
    width = 1
    if (c === PERCENT) {
      c = escapeAt(raw, i)
      if (c <= 0 || c === SLASH || c === BACKSLASH) return null
      width = 3
    } else if (c !== SLASH && (cls(c) & PCHAR) === 0) {
      return null
    }
    if (c === SLASH) {
      if (dots >= 0 && dots <= 2) return null
      if (params) { copied = i; params = false }
      dots = 0
    } else if (c === SEMICOLON) {
      if (params) continue
      if (dots === 1 || dots === 2) return null
      out += raw.slice(copied, i)
      params = true
    } else if (!params) {
      dots = c === DOT && dots >= 0 ? dots + 1 : -1
      const rewritten = width === 3 ? canonicalEscape(raw, i, c) : null
      if (rewritten !== null) { out += raw.slice(copied, i) + rewritten; copied = i + 3 }
    }
  }
  if (dots === 1 || dots === 2) return null
  if (params) copied = n
  return copied === 0 ? raw : out + raw.slice(copied)
}

/** The byte of the escape at raw[i] ('%'), or -1 when it is malformed. */
function escapeAt (raw: string, i: number): number {
  const h = i + 2 < raw.length ? hexVal(raw.charCodeAt(i + 1)) : -1
  const l = h >= 0 ? hexVal(raw.charCodeAt(i + 2)) : -1
  return l < 0 ? -1 : h * 16 + l
}

/** How the escape raw[i, i + 3) of byte v is written in the routing path, or null when it stays as sent. */
function canonicalEscape (raw: string, i: number, v: number): string | null {
  if ((cls(v) & UNRESERVED) !== 0) return String.fromCharCode(v)
  const hi = HEX_UPPER[v >> 4]!
  const lo = HEX_UPPER[v & 15]!
  return raw[i + 1] === hi && raw[i + 2] === lo ? null : `%${hi}${lo}`
}

/** True when raw[from, to) is a valid query (after the '?'): QCHAR bytes and well-formed escapes. */
function isValidQuery (raw: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = raw.charCodeAt(i)
    if (c === PERCENT) {
      if (i + 2 >= to || hexVal(raw.charCodeAt(i + 1)) < 0 || hexVal(raw.charCodeAt(i + 2)) < 0) return false
      i += 2
    } else if ((cls(c) & QCHAR) === 0) {
      return false
    }
  }
  return true
}

/** Filled by parseTarget; one instance per caller, reused across calls (no allocation per request). */
export class TargetParts {
  path = ''
  query = ''
  /** The absolute-form authority as sent ('' for origin-form and '*'). */
  authority = ''
}

/** Length of 'http://' or 'https://' (any case) at the start of t, else 0. */
function schemeLength (t: string): number {
  if (t.length < 8 || (t.charCodeAt(0) | 0x20) !== 0x68 || (t.charCodeAt(1) | 0x20) !== 0x74 ||
    (t.charCodeAt(2) | 0x20) !== 0x74 || (t.charCodeAt(3) | 0x20) !== 0x70) return 0
  let i = 4
  if ((t.charCodeAt(i) | 0x20) === 0x73) i++
  return t.charCodeAt(i) === COLON && t.charCodeAt(i + 1) === SLASH && t.charCodeAt(i + 2) === SLASH ? i + 3 : 0
}

/**
 * Splits a request-target into `out`. Accepts origin-form, absolute-form (http/https) and '*'; the caller
 * decides which method may use '*'. Returns null on success, else the reason for a 400.
 */
export function parseTarget (target: string, out: TargetParts): string | null {
  out.authority = ''
  if (target === '*') { out.path = '*'; out.query = ''; return null }
  let start = 0
  if (target.charCodeAt(0) !== SLASH) {
    const s = schemeLength(target)
    if (s === 0) return 'request-target is not origin-form or absolute-form'
    let e = s
    while (e < target.length && target.charCodeAt(e) !== SLASH && target.charCodeAt(e) !== QMARK) e++
    out.authority = target.slice(s, e)
    if (parseHost(out.authority) === null) return 'invalid authority in absolute-form target'
    start = e
  }
  const q = target.indexOf('?', start)
  const end = q < 0 ? target.length : q
  const rawPath = start === 0 && q < 0 ? target : start === end ? '/' : target.slice(start, end)
  if (q >= 0 && !isValidQuery(target, q + 1, target.length)) return 'invalid character or escape in query'
  const path = normalizePath(rawPath)
  if (path === null) return 'path has a dot or empty segment (parameters included), encoded / \\ or NUL, a bad escape or an invalid character'
  out.path = path
  out.query = q < 0 ? '' : target.slice(q)
  return null
}

/**
 * The host of a Host value or authority: lower-cased, port removed, IPv6 literals keep their brackets.
 * null when it is not `reg-name [":" port]` or `"[" IPv6 "]" [":" port]` (letters, digits, '-', '.', '_';
 * port 1-5 digits <= 65535), or is empty, or carries userinfo.
 */
export function parseHost (v: string): string | null {
  const n = v.length
  let i = 0
  if (n > 0 && v.charCodeAt(0) === 0x5b) {
    i = 1
    while (i < n && (cls(v.charCodeAt(i)) & IP6CHAR) !== 0) i++
    if (i < 3 || i >= n || v.charCodeAt(i) !== 0x5d) return null
    i++
  } else {
    while (i < n && (cls(v.charCodeAt(i)) & HOSTCHAR) !== 0) i++
    if (i === 0) return null
  }
  const hostEnd = i
  if (i < n) {
    if (v.charCodeAt(i) !== COLON || n - i < 2 || n - i > 6) return null
    let port = 0
    for (i++; i < n; i++) {
      const d = v.charCodeAt(i) - 0x30
      if (d < 0 || d > 9) return null
      port = port * 10 + d
    }
    if (port > 65535) return null
  }
  return (hostEnd === n ? v : v.slice(0, hostEnd)).toLowerCase()
}

/** ASCII case-insensitive equality (only A-Z/a-z fold). */
export function equalsIgnoreCase (a: string, b: string): boolean {
  const n = a.length
  if (n !== b.length) return false
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y && ((x | 0x20) !== (y | 0x20) || (x | 0x20) < 0x61 || (x | 0x20) > 0x7a)) return false
  }
  return true
}
