// Random and hash schedulers: ratios over 100k picks within bounds, and Maglev's minimal disruption.
import { describe, expect, it } from 'vitest'
import type { RealServer, Scheduler } from '../../../src/schedulers/types'
import { twos } from '../../../src/schedulers/twos'
import { create, ctx, servers } from './helpers'

const N = 100_000

/** xorshift32 in [0, 1): deterministic runs. */
function rng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x / 4294967296
  }
}

function shares (s: Scheduler, n: number, vary: (i: number, c: ReturnType<typeof ctx>) => void): Record<string, number> {
  const counts: Record<string, number> = {}
  const c = ctx()
  for (let i = 0; i < n; i++) {
    vary(i, c)
    const id = s.pick(c)?.id ?? '-'
    counts[id] = (counts[id] ?? 0) + 1
  }
  for (const k of Object.keys(counts)) counts[k] = counts[k]! / n
  return counts
}

const byKey = (i: number, c: ReturnType<typeof ctx>): void => { c.hashKey = `/objects/${i * 7919}.jpg` }
const byClient = (i: number, c: ReturnType<typeof ctx>): void => {
  const x = Math.imul(i + 1, 0x9E3779B1) >>> 0
  c.clientAddress = `${(x >>> 24) & 255}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`
}

describe('twos', () => {
  it('draws in proportion to weight: first eligible (w1+1)/(W+1), others wi/(W+1)', () => {
    const s = twos.create(servers(1, 2, 3, 4), { random: rng(42) })
    const got = shares(s, N, () => {})
    const expected: Record<string, number> = { A: 2 / 11, B: 2 / 11, C: 3 / 11, D: 4 / 11 }
    for (const id of 'ABCD') expect(Math.abs(got[id]! - expected[id]!)).toBeLessThan(0.01)
  })
  it('avoids the loaded server unless both draws hit it', () => {
    const list = servers(1, 1)
    list[0]!.conns.active = 10
    const got = shares(twos.create(list, { random: rng(7) }), N, () => {})
    expect(Math.abs(got['A']! - (2 / 3) ** 2)).toBeLessThan(0.01)
  })
})

describe('hash spread', () => {
  it('sh spreads clients by weight', () => {
    const got = shares(create('sh', servers(1, 2, 3)), N, byClient)
    expect(Math.abs(got['A']! - 1 / 6)).toBeLessThan(0.02)
    expect(Math.abs(got['B']! - 2 / 6)).toBeLessThan(0.02)
    expect(Math.abs(got['C']! - 3 / 6)).toBeLessThan(0.02)
  })
  it('mh spreads keys by weight', () => {
    const got = shares(create('mh', servers(1, 2, 3, 2)), N, byKey)
    const w: Record<string, number> = { A: 1 / 8, B: 2 / 8, C: 3 / 8, D: 2 / 8 }
    for (const id of 'ABCD') expect(Math.abs(got[id]! - w[id]!)).toBeLessThan(0.02)
  })
  it('dh spreads keys evenly (weights ignored)', () => {
    const got = shares(create('dh', servers(1, 5, 1, 1)), N, byKey)
    for (const id of 'ABCD') expect(Math.abs(got[id]! - 0.25)).toBeLessThan(0.02)
  })
})

describe('mh minimal disruption', () => {
  function assignment (s: Scheduler, keys: number): string[] {
    const c = ctx()
    const out: string[] = []
    for (let i = 0; i < keys; i++) { c.hashKey = `/k/${i}`; out.push(s.pick(c)?.id ?? '-') }
    return out
  }
  /** Fraction of keys that moved, and of keys that moved between two servers that both stayed. */
  function disruption (tableSize: number, n: number): { moved: number, between: number, after: string[] } {
    const list: RealServer[] = servers(...Array<number>(n).fill(1)).map((x, i) => ({ ...x, id: `S${i}` }))
    const s = create('mh', list, { tableSize })
    const before = assignment(s, N)
    s.update!(list.filter((x) => x.id !== 'S4'))
    const after = assignment(s, N)
    let moved = 0
    let between = 0
    for (let i = 0; i < N; i++) {
      if (before[i] === after[i]) continue
      moved++
      if (before[i] !== 'S4') between++
    }
    return { moved: moved / N, between: between / N, after }
  }
  it('removing one of N servers moves about 1/N of the keys (default table)', () => {
    const { moved, between, after } = disruption(4093, 10)
    expect(after).not.toContain('S4')
    expect(moved).toBeGreaterThan(0.09)
    expect(moved).toBeLessThan(0.14)
    // Maglev is near-minimal, not perfectly minimal (NSDI'16 §3.4): some slots change hands between
    // survivors, fewer the larger the table relative to N (measured: 2.3% here, 0.2% at 65521).
    expect(between).toBeLessThan(0.03)
  })
  it('a larger table brings the disruption close to exactly 1/N', () => {
    const { moved, between } = disruption(65521, 10)
    expect(Math.abs(moved - 0.1)).toBeLessThan(0.01)
    expect(between).toBeLessThan(0.005)
  })
  it('quiescing keeps the table: the quiesced server gets null without fallback, others keep their keys', () => {
    const list = servers(1, 1, 1)
    const s = create('mh', list)
    const before = assignment(s, 3000)
    list[1]!.weight = 0
    s.update!(list)
    const after = assignment(s, 3000)
    for (let i = 0; i < before.length; i++) expect(after[i]).toBe(before[i] === 'B' ? '-' : before[i])
    const fb = create('mh', list, { fallback: true })
    expect(assignment(fb, 3000)).not.toContain('-')
  })
})
