// Fast non-cryptographic hashing for hash and locality schedulers (address parsing is src/net/ip.ts). hash32() is the kernel's hash_32() (GOLDEN_RATIO_32), so sh reproduces
// ip_vs_sh.c bucket numbers for IPv4 clients. Everything here runs on the hot path: no allocation.
import { parseIPv4, parseIPv6 } from '../net/ip'

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
