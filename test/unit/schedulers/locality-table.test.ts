import { describe, expect, it } from 'vitest'
import { LocalityGc, LocalityTable } from '../../../src/schedulers/locality-table'
import { create, ctx, servers } from './helpers'

interface E { lastUse: number, placedAt: number, v: number }

describe('LocalityTable', () => {
  it('never holds more than its capacity, keeping recently used entries (CLOCK)', () => {
    const t = new LocalityTable<E>(3)
    for (let i = 0; i < 3; i++) t.insert(`k${i}`, { lastUse: 0, placedAt: 0, v: i }, 0)
    t.get('k0')!.lastUse = 5                 // used since placed: second chance
    t.insert('k3', { lastUse: 6, placedAt: 6, v: 3 }, 6)
    expect(t.size).toBe(3)
    expect(t.get('k0')).toBeDefined()
    expect(t.get('k1')).toBeUndefined()
  })
  it('the GC runs every 60 s; every 30th run drops entries unused for expirationMs', () => {
    const t = new LocalityTable<E>(100)
    const gc = new LocalityGc()
    const limits = { expirationMs: 1_000_000, entryTimeoutMs: 360_000, softSize: 75 }
    t.insert('old', { lastUse: 0, placedAt: 0, v: 0 }, 0)
    gc.run(t, 0, limits)
    for (let i = 1; i <= 29; i++) gc.run(t, i * 60_000, limits)
    expect(t.size).toBe(1)
    gc.run(t, 29 * 60_000 + 30_000, limits)      // < 60 s since the last run: nothing
    expect(t.size).toBe(1)
    gc.run(t, 30 * 60_000, limits)                // the 30th run: full expiration
    expect(t.size).toBe(0)
  })
  it('over its soft size, the GC drops entries idle for entryTimeoutMs', () => {
    const t = new LocalityTable<E>(100)
    const gc = new LocalityGc()
    for (let i = 0; i < 90; i++) t.insert(`k${i}`, { lastUse: i < 50 ? 0 : 400_000, placedAt: 0, v: i }, 0)
    gc.run(t, 0, { expirationMs: 1e9, entryTimeoutMs: 360_000, softSize: 75 })
    gc.run(t, 400_000, { expirationMs: 1e9, entryTimeoutMs: 360_000, softSize: 75 })
    expect(t.size).toBe(90 - 20)                  // goal = min((90 - 75) * 4/3, 37) = 20
  })
})

describe('lblc/lblcr memory is bounded by tableSize under a flood of unique keys', () => {
  it.each(['lblc', 'lblcr'])('%s', (name) => {
    const s = create(name, servers(1, 1, 1), { tableSize: 1000 })
    const c = ctx()
    for (let i = 0; i < 20_000; i++) { c.hashKey = `/u/${i}`; c.now = i; s.pick(c) }
    const entries = (): number => (s as unknown as { entries: number }).entries
    expect(entries()).toBe(1000)
    s.tick!(20_000)
    s.tick!(20_000 + 61_000)                      // over 3/4 of the cap: idle entries (none yet) may go
    expect(entries()).toBe(1000)
    s.tick!(20_000 + 61_000 + 400_000)            // all idle > 360 s: trimmed toward the soft size
    expect(entries()).toBeLessThan(1000)
  })
})
