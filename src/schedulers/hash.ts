// Fast non-cryptographic hashing for hash and locality schedulers, and allocation-free parsing of
// client addresses. hash32() is the kernel's hash_32() (GOLDEN_RATIO_32), so sh reproduces
// ip_vs_sh.c bucket numbers for IPv4 clients. Everything here runs on the hot path: no allocation.

const GOLDEN_RATIO_32 = 0x61C88647

/** Kernel hash_32(v, bits): the top `bits` bits of v * GOLDEN_RATIO_32 mod 2^32. bits in 1..32. */
export function hash32 (v: number, bits: number): number {
  return (Math.imul(v, GOLDEN_RATIO_32) >>> 0) >>> (32 - bits)
}

/** FNV-1a 32-bit over UTF-16 code units (each unit hashed as one value); `seed` varies the basis. */
export function fnv1a (s: string, seed = 0x811C9DC5): number {
  let h = seed
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** MurmurHash3's fmix32 finaliser: spreads every input bit over the whole word. */
export function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85EBCA6B)
  h ^= h >>> 13
  h = Math.imul(h, 0xC2B2AE35)
  h ^= h >>> 16
  return h >>> 0
}

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

const scratch = new Uint16Array(8)   // reused by foldAddress(); safe because it never yields

/** True for ::ffff:a.b.c.d (Node's dual-stack form of an IPv4 client): scratch then holds it. */
function isMappedV4 (g: Uint16Array): boolean {
  return g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xFFFF
}

/**
 * The kernel's address fold as an unsigned 32-bit number: IPv4 (and IPv4-mapped IPv6) as its value,
 * IPv6 as w0^w1^w2^w3 of its four 32-bit words, anything else (a socket path) as its FNV-1a hash.
 */
export function foldAddress (addr: string): number {
  const v4 = parseIPv4(addr)
  if (v4 >= 0) return v4
  if (!parseIPv6(addr, scratch)) return fnv1a(addr)
  const g = scratch
  if (isMappedV4(g)) return ((g[6]! << 16) | g[7]!) >>> 0
  return ((g[0]! << 16 | g[1]!) ^ (g[2]! << 16 | g[3]!) ^ (g[4]! << 16 | g[5]!) ^ (g[6]! << 16 | g[7]!)) >>> 0
}
