// Every registered scheduler through the same cases (STYLE §8), through the cluster where counters
// or flags change, with varied keys and clients so hash and locality schedulers reach every server.
import { describe, expect, it } from 'vitest'
import { createService } from '../../../src/cluster/service'
import { ConfigError } from '../../../src/errors'
import { getScheduler, registerScheduler, schedulerNames } from '../../../src/schedulers/registry'
import { rr } from '../../../src/schedulers/rr'
import type { ServicePool } from '../../../src/cluster/types'
import { create, ctx, serverConfig, servers, serviceConfig, srv } from './helpers'

const ALL = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos']

/** Picks with a fresh key, client address and port each time; returns the ids picked (null as '-'). */
function spray (pick: (c: ReturnType<typeof ctx>) => { id: string } | null, n: number, avoid?: Set<string>): string[] {
  const out: string[] = []
  const c = ctx(avoid === undefined ? {} : { avoid })
  for (let i = 0; i < n; i++) {
    c.hashKey = `/k/${i}`
    c.clientAddress = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    c.clientPort = 1024 + i
    c.now = i
    out.push(pick(c)?.id ?? '-')
  }
  return out
}

function pool (name: string, weights: number[], init: { maxConns?: number, minConns?: number } = {}): ServicePool {
  const list = weights.map((w, i) => serverConfig(String.fromCharCode(65 + i), { weight: w, ...(i === 0 ? init : {}) }))
  return createService(serviceConfig(name, list), () => 0)
}

describe('registry', () => {
  it('registers every LVS scheduler by its short name', () => {
    expect(schedulerNames().sort()).toEqual([...ALL].sort())
    for (const n of ALL) expect(getScheduler(n)?.name).toBe(n)
    expect(getScheduler('nope')).toBeUndefined()
  })
  it('throws on a duplicate name', () => {
    expect(() => registerScheduler(rr)).toThrow(/already registered/)
  })
})

describe.each(ALL)('%s conformance', (name) => {
  it('empty list -> null', () => {
    expect(create(name, []).pick(ctx({ hashKey: '/x' }))).toBeNull()
  })

  it('all down -> null', () => {
    const list = servers(1, 2, 3)
    for (const s of list) s.up = false
    const s = create(name, list)
    expect(spray((c) => s.pick(c), 200).every((id) => id === '-')).toBe(true)
  })

  it('weight 0 is never picked, and a weight change mid-rotation takes effect', () => {
    const p = pool(name, [0, 2, 3])
    expect(spray((c) => p.pick(c), 500)).not.toContain('A')
    p.applyHealth(p.servers[2]!, true, 0)
    const after = spray((c) => p.pick(c), 500)
    expect(after).not.toContain('C')
    expect(after).not.toContain('A')
    p.applyHealth(p.servers[0]!, true, 5)
    expect(spray((c) => p.pick(c), 2000)).toContain('A')
  })

  it('a server removed mid-rotation is never picked again', () => {
    const list = servers(1, 1, 1, 1)
    const s = create(name, list)
    spray((c) => s.pick(c), 7)
    s.update?.([list[0]!, list[2]!, list[3]!])
    const after = spray((c) => s.pick(c), 500)
    expect(after).not.toContain('B')
    expect(after).not.toContain('-')
  })

  it('honours the avoid set', () => {
    const s = create(name, servers(3, 1, 1))
    const picks = spray((c) => s.pick(c), 500, new Set(['A']))
    expect(picks).not.toContain('A')
    expect(spray((c) => s.pick(c), 50, new Set(['A', 'B', 'C'])).every((id) => id === '-')).toBe(true)
  })

  it('thresholds trip OVERLOAD on bind and clear it on close (through the cluster)', () => {
    const p = pool(name, [3, 1, 1], { maxConns: 2 })
    const a = p.servers[0]!
    p.bind(a)
    expect(a.overloaded).toBe(false)
    p.bind(a)
    expect(a.overloaded).toBe(true)
    expect(spray((c) => p.pick(c), 500)).not.toContain('A')
    p.feedback(a, -1, 0, 1)                // 1 * 4 < 2 * 3: clears
    expect(a.overloaded).toBe(false)
    p.feedback(a, -1, 0, 1)                // idle again, so least-connection schedulers prefer it
    expect(spray((c) => p.pick(c), 2000)).toContain('A')
  })

  it('rejects bad options with their config path', () => {
    const f = getScheduler(name)!
    const bad = (raw: unknown): ConfigError => {
      try { f.parseOptions(raw, 'services.2.scheduler') } catch (err) { return err as ConfigError }
      throw new Error('accepted')
    }
    const e = bad({ bogus: 1 })
    expect(e).toBeInstanceOf(ConfigError)
    expect(e.code).toBe('BATON_ERR_CONFIG_INVALID')
    expect(e.issues).toEqual([expect.objectContaining({ path: 'services.2.scheduler.bogus' })])
    expect(e.issues[0]!.message).toMatch(/bogus/)
    expect(bad('fast').issues[0]!.path).toBe('services.2.scheduler')
    expect(f.parseOptions(undefined, 'x')).toBeDefined()
    expect(f.parseOptions({}, 'x')).toBeDefined()
  })

  it('never picks a down server', () => {
    const list = [srv('A', 0, { up: false, weight: 5 }), srv('B', 1), srv('C', 2)]
    const s = create(name, list)
    expect(spray((c) => s.pick(c), 500)).not.toContain('A')
  })
})

describe('option values', () => {
  const issues = (name: string, raw: unknown): Array<{ path: string, message: string }> => {
    try { getScheduler(name)!.parseOptions(raw, 'p'); return [] } catch (err) { return [...(err as ConfigError).issues] }
  }
  it('names the option and the bad value', () => {
    expect(issues('sh', { fallback: 'yes' })).toEqual([{ path: 'p.fallback', message: expect.stringMatching(/fallback.*"yes"/) }])
    expect(issues('mh', { tableSize: 1000 })).toEqual([{ path: 'p.tableSize', message: expect.stringMatching(/tableSize.*1000/) }])
    expect(issues('lblc', { expirationS: -1, tableSize: 0 }).map((i) => i.path)).toEqual(['p.expirationS', 'p.tableSize'])
    expect(issues('lblcr', { setShrinkS: 1.5 })[0]!.path).toBe('p.setShrinkS')
    expect(issues('lblc', { setShrinkS: 10 })[0]!.path).toBe('p.setShrinkS')
    expect(issues('twos', { random: 1 })[0]!.path).toBe('p.random')
  })
  it('fills defaults', () => {
    expect(getScheduler('mh')!.parseOptions(undefined, 'p')).toEqual({ fallback: false, port: false, tableSize: 4093 })
    expect(getScheduler('lblcr')!.parseOptions({ tableSize: 10 }, 'p'))
      .toEqual({ expirationS: 86400, tableSize: 10, entryTimeoutS: 360, setShrinkS: 86400 })
  })
})
