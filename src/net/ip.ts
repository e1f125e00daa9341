// IP addresses: the one home of parsing, IPv4-mapped handling, masks and the loopback test. Everything
// but isLoopback runs on the hot path (persistence, client-ip keys, sh): no allocation unless it says so.
import { isIPv4 } from 'node:net'

/** Dotted-quad IPv4 to an unsigned 32-bit number (host order), or -1 if `s[from..]` is not one. */
export function parseIPv4 (s: string, from = 0): number {
  let value = 0
  let part = 0
  let digits = 0
  let dots = 0
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48)
      if (++digits > 3 || part > 255) return -1
    } else if (c === 46 && digits !== 0 && dots < 3) {
      value = value * 256 + part
      part = 0
      digits = 0
      dots++
    } else {
      return -1
    }
  }
  if (dots !== 3 || digits === 0) return -1
  return value * 256 + part
}

/**
 * Parses an IPv6 address (with `::`, an embedded IPv4 tail, an optional `%zone`) into `out` as eight
 * 16-bit groups. Returns false, leaving `out` unspecified, when `s` is not an IPv6 address.
 */
export function parseIPv6 (s: string, out: Uint16Array): boolean {
  let end = s.indexOf('%')
  if (end === -1) end = s.length
  let n = 0
  let gap = -1
  let i = 0
  if (s.charCodeAt(0) === 58 && s.charCodeAt(1) === 58) { gap = 0; i = 2 }
  while (i < end) {
    if (n === 8) return false
    const start = i
    let v = 0
    for (; i < end; i++) {
      const d = hexDigit(s.charCodeAt(i))
      if (d < 0) break
      v = v * 16 + d
    }
    if (i < end && s.charCodeAt(i) === 46) {                 // IPv4 tail: two groups
      const v4 = parseIPv4(s.slice(start, end))               // rare (mapped addresses): may allocate
      if (v4 < 0 || n > 6) return false
      out[n++] = v4 >>> 16
      out[n++] = v4 & 0xFFFF
      i = end
      break
    }
    if (i === start || i - start > 4) return false
    out[n++] = v
    if (i === end) break
    if (s.charCodeAt(i) !== 58) return false
    i++
    if (s.charCodeAt(i) === 58) {
      if (gap !== -1) return false
      gap = n
      i++
    } else if (i === end) {
      return false
    }
  }
  if (gap === -1) return n === 8
  if (n === 8) return false
  const move = n - gap
  for (let k = 1; k <= move; k++) out[8 - k] = out[n - k]!
  for (let k = gap; k < 8 - move; k++) out[k] = 0
  return true
}

function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** The IPv4 value of a dotted quad or of Node's dual-stack form `::ffff:a.b.c.d`; -1 for anything else. */
export function ipv4Of (address: string): number {
  const v4 = parseIPv4(address)
  if (v4 >= 0 || !address.startsWith('::ffff:')) return v4
  return parseIPv4(address, 7)
}

/** The netmask of an IPv4 prefix length (0..32) as an unsigned 32-bit number. */
export function ipv4Mask (prefixLength: number): number {
  return prefixLength <= 0 ? 0 : (0xFFFFFFFF << (32 - Math.min(32, prefixLength))) >>> 0
}

/** `::ffff:a.b.c.d` -> `a.b.c.d`; anything else unchanged. Allocates for a mapped address. */
export function unmapIPv4 (address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address
}

const groups = new Uint16Array(8)

/** The `client-ip/NN` key (see request/keys.ts): IPv4 masked to `bits`, IPv6 to /64, anything else unchanged. */
export function maskAddress (address: string, bits: number): string {
  const v4 = ipv4Of(address)
  if (v4 >= 0) {
    const m = (v4 & ipv4Mask(bits)) >>> 0
    return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}`
  }
  if (!parseIPv6(address, groups)) return address
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}:${groups[3]!.toString(16)}::`
}

/** Loopback: 127.0.0.0/8, ::1, ::ffff:127.x, and the name localhost. Config time. */
export function isLoopback (host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  if (isIPv4(host)) return host.startsWith('127.')
  return /^::ffff:127\./i.test(host)
}
