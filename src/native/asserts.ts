// Argument checks in front of every native call (sodium-native style): TypeScript validates, C only trusts.
// A failure is a programmer error (node:assert), never a response to a peer. The one home of these checks
// for binding.ts and splice-relay.ts.
import assert from 'node:assert'

export function assertFd (fd: unknown, what = 'fd'): asserts fd is number {
  assert(Number.isInteger(fd) && (fd as number) >= 0, `${what} must be an int >= 0, got ${String(fd)}`)
}

export function assertInt (n: unknown, min: number, max: number, what: string): asserts n is number {
  assert(Number.isInteger(n) && (n as number) >= min && (n as number) <= max,
    `${what} must be an int in [${min}, ${max}], got ${String(n)}`)
}

export function assertBuffer (buf: unknown, what: string): asserts buf is Buffer {
  assert(Buffer.isBuffer(buf) && buf.length > 0, `${what} must be a non-empty Buffer`)
}

/** A socket path: non-empty, no NUL ('@name' = abstract namespace is allowed). */
export function assertPath (p: unknown, what = 'path'): asserts p is string {
  assert(typeof p === 'string' && p.length > 0 && !p.includes('\0'), `${what} must be a non-empty string without NUL`)
}

/**
 * A numeric IPv4 address as a u32 (host order); asserts it is one, by net.isIPv4's grammar (four decimal
 * octets of 0..255, no leading zeros), parsed by hand: it runs per migrated connection, where a regex
 * costs more than the parse.
 */
export function ipv4ToU32 (address: string, what = 'address'): number {
  let value = 0
  let octet = 0
  let digits = 0
  let dots = 0
  const n = typeof address === 'string' ? address.length : 0
  let ok = n >= 7 && n <= 15
  for (let i = 0; ok && i < n; i++) {
    const c = address.charCodeAt(i)
    if (c === 46) { // '.'
      ok = digits > 0 && ++dots <= 3
      value = value * 256 + octet
      octet = 0
      digits = 0
    } else if (c >= 48 && c <= 57) {
      ok = !(digits === 1 && octet === 0) && (octet = octet * 10 + c - 48) <= 255 // no leading zero
      digits++
    } else ok = false
  }
  if (!ok || dots !== 3 || digits === 0) assert.fail(`${what} must be a numeric IPv4 address, got ${String(address)}`)
  return value * 256 + octet
}
