import { describe, expect, it } from 'vitest'
import { fnv1a, foldAddress } from '../../../src/schedulers/hash'
import { parseIPv4, parseIPv6 } from '../../../src/net/ip'

describe('address parsing', () => {
  it('IPv4', () => {
    expect(parseIPv4('10.0.0.1')).toBe(0x0A000001)
    expect(parseIPv4('255.255.255.255')).toBe(0xFFFFFFFF)
    for (const bad of ['1.2.3', '256.1.1.1', '1.2.3.4.5', '1..2.3', 'a.b.c.d', '', '1.2.3.4 ']) expect(parseIPv4(bad)).toBe(-1)
  })
  it('IPv6', () => {
    const g = new Uint16Array(8)
    const show = (s: string): string | false => parseIPv6(s, g) && Array.from(g, (x) => x.toString(16)).join(':')
    expect(show('::')).toBe('0:0:0:0:0:0:0:0')
    expect(show('::1')).toBe('0:0:0:0:0:0:0:1')
    expect(show('2001:db8::1')).toBe('2001:db8:0:0:0:0:0:1')
    expect(show('1::')).toBe('1:0:0:0:0:0:0:0')
    expect(show('fe80::1%eth0')).toBe('fe80:0:0:0:0:0:0:1')
    expect(show('::ffff:10.0.0.1')).toBe('0:0:0:0:0:ffff:a00:1')
    expect(show('1:2:3:4:5:6:7:8')).toBe('1:2:3:4:5:6:7:8')
    for (const bad of [':::', '1:2', 'x', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::']) expect(show(bad)).toBe(false)
  })
  it('folds like the kernel', () => {
    expect(foldAddress('10.0.0.1')).toBe(0x0A000001)
    expect(foldAddress('::ffff:10.0.0.1')).toBe(0x0A000001)
    expect(foldAddress('2001:db8::1')).toBe((0x20010db8 ^ 1) >>> 0)
    expect(foldAddress('/run/a.sock')).toBe(fnv1a('/run/a.sock'))
  })
})
