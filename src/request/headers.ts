// A header's value as the back end's application reads it: Node's `req.headers[name]`. Routes and keys
// read headers only through here, so a repeated field cannot route on one value while the application
// acts on another. The rules are Node 20's lib/_http_incoming.js (matchKnownFields, _addHeaderLine) with
// the default `joinDuplicateHeaders: false`; test/integration/node-headers.test.ts checks them against the
// running Node. Hot path: allocates only when two or more fields are joined.

/** Fields of which Node keeps the first and silently drops the rest. */
export const FIRST_WINS: ReadonlySet<string> = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
])

/** ASCII case-insensitive equality of a field name with the lower-case `lower`, no allocation. */
export function nameIs (field: string, lower: string): boolean {
  if (field.length !== lower.length) return false
  for (let i = 0; i < field.length; i++) {
    let c = field.charCodeAt(i)
    if (c >= 65 && c <= 90) c += 32
    if (c !== lower.charCodeAt(i)) return false
  }
  return true
}

/**
 * `req.headers[lowerName]` for the flat [name, value, ...] list of a head, or undefined when Node gives
 * the application no string there: no such field, or `__proto__` (Node's headers object is a plain
 * object, so that field never lands). FIRST_WINS fields: the first value. `cookie`: the values joined with
 * '; '. Every other field: joined with ', ' (empty values included: 'a', '' gives 'a, '). `set-cookie`,
 * an array in Node, gives its first element here; config refuses routes and keys on it.
 */
export function headerValueAsNode (headers: readonly string[], lowerName: string): string | undefined {
  if (lowerName === '__proto__') return undefined
  const firstWins = FIRST_WINS.has(lowerName) || lowerName === 'set-cookie'
  const separator = lowerName === 'cookie' ? '; ' : ', '
  let value: string | undefined
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (!nameIs(headers[i]!, lowerName)) continue
    if (value === undefined) {
      value = headers[i + 1]!
      if (firstWins) return value
    } else {
      value += separator + headers[i + 1]!
    }
  }
  return value
}
