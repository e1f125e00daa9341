// The rate estimator of `baton ctl list --rate` (admin/rates.ts), driven with explicit sample times: IPVS's
// estimate (a quarter of the way to each period's rate), servers that join, leave or come back under the
// same name, and bytes that only relayed servers have.
import { describe, expect, it } from 'vitest'
import { RateEstimator } from '../../../src/admin/rates'
import type { ServerSnapshot } from '../../../src/cluster/types'
import type { RelayBytes } from '../../../src/dispatcher/conn-log'

function server (id: string, connections: number): ServerSnapshot {
  return { service: 's', id, method: 'pipe', up: true, weight: 1, configWeight: 1, overloaded: false, active: 0, inactive: 0, connections, fallback: false }
}

describe('RateEstimator', () => {
  it('moves a quarter of the way to each period\'s rate, for connections and both byte counts', () => {
    let servers = [server('a', 0)]
    const bytes = new Map<string, RelayBytes>()
    const est = new RateEstimator(() => servers, () => bytes)
    est.sample(0)
    expect(est.rows()[0]).toMatchObject({ connections: 0, inBytes: 0, outBytes: 0, cps: 0, inBps: 0, outBps: 0 })
    servers = [server('a', 200)] // 100 per second over 2 s
    bytes.set('s\0a', { up: 4000, down: 8000 })
    est.sample(2000)
    expect(est.rows()[0]).toMatchObject({ connections: 200, inBytes: 4000, outBytes: 8000, cps: 25, inBps: 500, outBps: 1000 })
    servers = [server('a', 400)]
    bytes.set('s\0a', { up: 8000, down: 16000 })
    est.sample(4000)
    expect(est.rows()[0]).toMatchObject({ cps: 43.75, inBps: 875, outBps: 1750 })
    est.sample(6000) // nothing new: the estimate decays
    expect(est.rows()[0]!.cps).toBeCloseTo(32.81, 2)
  })

  it('starts a server that joins from its counters, and again when a server of the same name comes back', () => {
    let servers = [server('a', 10)]
    const est = new RateEstimator(() => servers)
    est.sample(0)
    servers = [server('a', 10), server('b', 50)]
    est.sample(2000)
    expect(est.rows().map((r) => [r.id, r.cps])).toEqual([['a', 0], ['b', 0]]) // b's 50 are from before it was seen
    servers = [server('a', 10), server('b', 2)] // b left and a new b joined: its counter started again
    est.sample(4000)
    expect(est.rows().map((r) => [r.id, r.cps])).toEqual([['a', 0], ['b', 0]])
    servers = [server('a', 10), server('b', 10)]
    est.sample(6000)
    expect(est.rows().find((r) => r.id === 'b')!.cps).toBe(1) // 8 over 2 s, a quarter of the way
    servers = [server('a', 10)]
    est.sample(8000)
    expect(est.rows().map((r) => r.id)).toEqual(['a'])
  })
})
