// Exact sequences and choices from research/lvs-schedulers.md, plus derived cases worked by hand.
import { describe, expect, it } from 'vitest'
import { hash32 } from '../../../src/schedulers/hash'
import { create, ctx, seq, servers, srv } from './helpers'

describe('rr', () => {
  it('walks config order and skips unavailable servers', () => {
    const list = servers(1, 0, 1)
    expect(seq(create('rr', list), 6)).toBe('ACACAC')
    list[0]!.overloaded = true
    expect(seq(create('rr', list), 3)).toBe('CCC')
  })
  it('a removed cursor moves back to its predecessor, so its successor is next', () => {
    const list = servers(1, 1, 1, 1)
    const s = create('rr', list)
    expect(seq(s, 2)).toBe('AB')
    s.update!([list[0]!, list[2]!, list[3]!])
    expect(seq(s, 4)).toBe('CDAC')
  })
})

describe('wrr', () => {
  const cases: Array<[number[], string]> = [
    [[4, 3, 2], 'AABABCABC'.repeat(2)],
    [[4, 2], 'AAB'.repeat(3)],
    [[6, 4, 2], 'AABABC'.repeat(2)],
    [[6, 3], 'AAB'.repeat(3)],              // gcd 3: di = 3, mw = 4
    [[5, 1, 1], 'AAAAABC'.repeat(2)],
    [[1, 1, 1], 'ABC'.repeat(2)],
    [[0, 0], '----'],
  ]
  it.each(cases)('weights %j -> %s', (weights, expected) => {
    expect(seq(create('wrr', servers(...weights)), expected.length)).toBe(expected)
  })
  it('an OVERLOADED server is skipped: A(3, OVERLOAD), B(1) -> BBBB; all overloaded -> null', () => {
    const list = servers(3, 1)
    list[0]!.overloaded = true
    const s = create('wrr', list)
    expect(seq(s, 4)).toBe('BBBB')
    list[1]!.overloaded = true
    expect(seq(s, 3)).toBe('---')
    list[0]!.overloaded = false
    expect(seq(s, 3)).toBe('AAA')
  })
  it('OVERLOAD in the middle of a pass (4,3,2; B overloaded after AAB)', () => {
    const list = servers(4, 3, 2)
    const s = create('wrr', list)
    expect(seq(s, 3)).toBe('AAB')
    list[1]!.overloaded = true
    expect(seq(s, 11)).toBe('ACACAAACACA')
  })
  it('a weight change resets to the list head and keeps cw if valid', () => {
    const list = servers(4, 3, 2)
    const s = create('wrr', list)
    expect(seq(s, 4)).toBe('AABA')         // cw = 2 now
    list[2]!.weight = 4
    s.update!(list)                       // mw 4, cw 2 kept, from the head
    expect(seq(s, 6)).toBe('ABCABC')
  })
})

describe('least-connection family (strict comparisons, first in config order wins ties)', () => {
  it('lc: overhead = active*256 + inactive', () => {
    expect(create('lc', [srv('A', 0, { active: 1 }), srv('B', 1, { inactive: 200 })]).pick(ctx())?.id).toBe('B')
    expect(create('lc', [srv('A', 0, { active: 1 }), srv('B', 1, { inactive: 256 })]).pick(ctx())?.id).toBe('A')
    expect(create('lc', [srv('A', 0, { active: 1 }), srv('B', 1, { inactive: 257 })]).pick(ctx())?.id).toBe('A')
  })
  it('wlc: cross-multiplied overhead/weight', () => {
    expect(create('wlc', [srv('A', 0, { active: 1 }), srv('B', 1, { weight: 3, active: 2 })]).pick(ctx())?.id).toBe('B')
    expect(create('wlc', [srv('A', 0, { active: 1 }), srv('B', 1, { weight: 2, active: 2 })]).pick(ctx())?.id).toBe('A')
    expect(create('wlc', [srv('A', 0, { active: 1, weight: 0 }), srv('B', 1, { active: 9 })]).pick(ctx())?.id).toBe('B')
  })
  it('sed: (active+1)/weight', () => {
    expect(create('sed', [srv('A', 0), srv('B', 1, { weight: 3, active: 1 })]).pick(ctx())?.id).toBe('B')
    expect(create('sed', [srv('A', 0), srv('B', 1, { weight: 2, active: 1 })]).pick(ctx())?.id).toBe('A')
  })
  it('nq: the first idle server wins, else sed', () => {
    expect(create('nq', [srv('A', 0), srv('B', 1, { weight: 3, active: 1 })]).pick(ctx())?.id).toBe('A')
    expect(create('nq', [srv('A', 0, { active: 1 }), srv('B', 1, { weight: 3, active: 2 })]).pick(ctx())?.id).toBe('B')
    expect(create('nq', [srv('A', 0, { active: 1 }), srv('B', 1, { weight: 3, active: 1 }), srv('C', 2)]).pick(ctx())?.id).toBe('C')
  })
  it('OVERLOAD is skipped by all of them', () => {
    for (const n of ['lc', 'wlc', 'sed', 'nq']) {
      expect(create(n, [srv('A', 0, { overloaded: true }), srv('B', 1, { active: 5 })]).pick(ctx())?.id).toBe('B')
    }
  })
})

describe('fo and ovf', () => {
  it('fo: the heaviest available, first on ties', () => {
    const list = servers(1, 3, 3)
    expect(seq(create('fo', list), 2)).toBe('BB')
    list[1]!.overloaded = true
    expect(seq(create('fo', list), 2)).toBe('CC')
  })
  it('ovf: active must not exceed weight', () => {
    expect(create('ovf', [srv('A', 0, { weight: 2, active: 3 }), srv('B', 1, { active: 0 })]).pick(ctx())?.id).toBe('B')
    expect(create('ovf', [srv('A', 0, { weight: 2, active: 2 }), srv('B', 1, { active: 0 })]).pick(ctx())?.id).toBe('A')
  })
})

describe('lblc', () => {
  function stuckOnA (bActive: number): string | undefined {
    const A = srv('A', 0, { weight: 10 })
    const B = srv('B', 1, { weight: 10 })
    const s = create('lblc', [A, B])
    const c = ctx({ hashKey: '/img/1.png' })
    expect(s.pick(c)?.id).toBe('A')
    A.conns.active = 11
    B.conns.active = bActive
    s.changed!(A)
    s.changed!(B)
    return s.pick(c)?.id
  }
  it('reschedules when active > weight and some server has active*2 < weight (11 > 10, 4*2 < 10)', () => {
    expect(stuckOnA(4)).toBe('B')
  })
  it('stays when no server is half idle (5*2 < 10 is false)', () => {
    expect(stuckOnA(5)).toBe('A')
  })
  it('the cached check ignores the OVERLOAD flag; new keys do not', () => {
    const list = servers(1, 1)
    const s = create('lblc', list)
    const c = ctx({ hashKey: '/a' })
    expect(s.pick(c)?.id).toBe('A')
    list[0]!.overloaded = true
    s.changed!(list[0]!)
    expect(s.pick(c)?.id).toBe('A')
    expect(s.pick(ctx({ hashKey: '/b' }))?.id).toBe('B')
  })
})

describe('lblcr', () => {
  it('grows its set under load and shrinks it after setShrinkS', () => {
    const [A, B] = [srv('A', 0), srv('B', 1)]
    const s = create('lblcr', [A, B], { setShrinkS: 10 })
    const c = ctx({ hashKey: '/hot', now: 0 })
    expect(s.pick(c)?.id).toBe('A')          // set {A}
    A.conns.active = 2                       // 2 > 1 and B: 0*2 < 1 -> is_overloaded(A)
    s.changed!(A)
    expect(s.pick(c)?.id).toBe('B')          // set {B, A}
    A.conns.active = 0
    A.conns.inactive = 5
    s.changed!(A)
    expect(s.pick(c)?.id).toBe('B')          // set_min: B (0) beats A (5)
    c.now = 10_001                           // > lastmod + 10 s: erase set_max = A
    expect(s.pick(c)?.id).toBe('B')
    B.overloaded = true                      // set {B}: set_min skips OVERLOAD -> wlc -> A joins
    s.changed!(B)
    expect(s.pick(c)?.id).toBe('A')
  })
})

describe('sh', () => {
  it('reproduces the kernel hash_32 bucket numbers', () => {
    expect(hash32(0x0A000001, 8)).toBe(39)
    expect(hash32(0x0A000001 + 80, 8)).toBe(182)
    expect(hash32(0x0A000002, 8)).toBe(137)
    expect(hash32(0xC0A8010A, 8)).toBe(248)
  })
  it('fills the table by weight (A=2,B=1,C=3 -> AABCCC...) and looks clients up in it', () => {
    const list = servers(2, 1, 3)
    const s = create('sh', list)
    const at = (clientAddress: string, clientPort = 0): string | undefined => s.pick(ctx({ clientAddress, clientPort }))?.id
    for (let b = 0; b < 12; b++) expect(at(`${b}`)).toBeDefined()
    expect(at('10.0.0.1')).toBe('AABCCC'[39 % 6])
    expect(at('10.0.0.2')).toBe('AABCCC'[137 % 6])
    expect(at('192.168.1.10')).toBe('AABCCC'[248 % 6])
    expect(at('::ffff:10.0.0.1')).toBe(at('10.0.0.1'))
    const withPort = create('sh', list, { port: true })
    expect(withPort.pick(ctx({ clientAddress: '10.0.0.1', clientPort: 80 }))?.id).toBe('AABCCC'[182 % 6])
  })
  it('without fallback an unavailable bucket gives null; with it, the kernel walk', () => {
    const list = servers(2, 1, 3)
    list[2]!.overloaded = true
    expect(create('sh', list).pick(ctx({ clientAddress: '10.0.0.1' }))).toBeNull()
    // ihash 39; k = 0 probes (39 + 39) & 255 = 78 -> bucket 78 % 6 = 0 -> A
    expect(create('sh', list, { fallback: true }).pick(ctx({ clientAddress: '10.0.0.1' }))?.id).toBe('A')
  })
})

describe('dh', () => {
  it('same key, same server; no fallback', () => {
    const list = servers(1, 1, 1)
    const s = create('dh', list)
    const c = ctx({ hashKey: '/a/b' })
    const first = s.pick(c)!
    expect(seq(s, 5, c)).toBe(first.id.repeat(5))
    first.weight = 0
    expect(s.pick(c)).toBeNull()
  })
  it('falls back to the client address when the key is missing', () => {
    const s = create('dh', servers(1, 1, 1, 1))
    expect(s.pick(ctx({ clientAddress: '1.2.3.4' }))?.id).toBe(s.pick(ctx({ clientAddress: '1.2.3.4', hashKey: '1.2.3.4' }))?.id)
  })
})
