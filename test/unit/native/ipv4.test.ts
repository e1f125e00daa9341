// native/asserts.ts ipv4ToU32: the hand parser accepts exactly what net.isIPv4 accepts, and gives the value.
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { ipv4ToU32 } from '../../../src/native/asserts'

const accepts = (s: string): boolean => { try { ipv4ToU32(s); return true } catch { return false } }

describe('ipv4ToU32', () => {
  it('parses numeric IPv4 addresses', () => {
    expect(ipv4ToU32('0.0.0.0')).toBe(0)
    expect(ipv4ToU32('10.99.0.100')).toBe(0x0a630064)
    expect(ipv4ToU32('255.255.255.255')).toBe(0xffffffff)
  })

  it('refuses what net.isIPv4 refuses, naming the argument', () => {
    for (const s of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.04', '1..2.3', '.1.2.3', '1.2.3.', ' 1.2.3.4', '1.2.3.4 ', 'a.b.c.d', '::1', '1.2.3.400']) {
      expect(() => ipv4ToU32(s, 'clientAddress')).toThrow(/clientAddress must be a numeric IPv4 address/)
    }
    expect(() => ipv4ToU32(undefined as never)).toThrow(/must be a numeric IPv4 address/)
  })

  it('agrees with net.isIPv4 on near-addresses', () => {
    // Strings of digits and dots shaped like addresses: octets of 0-4 characters, 2 to 5 of them.
    let seed = 7
    const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
    for (let i = 0; i < 50_000; i++) {
      const parts: string[] = []
      for (let k = 2 + rnd(4); k > 0; k--) {
        let o = ''
        for (let d = rnd(5); d > 0; d--) o += String(rnd(10))
        if (rnd(4) === 0) o = String(rnd(300))
        parts.push(o)
      }
      const s = parts.join('.')
      expect(accepts(s), s).toBe(net.isIPv4(s))
      if (net.isIPv4(s)) expect(ipv4ToU32(s)).toBe(parts.reduce((v, o) => v * 256 + Number(o), 0))
    }
  })
})
