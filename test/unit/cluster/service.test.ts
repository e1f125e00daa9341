import { describe, expect, it } from 'vitest'
import { createService } from '../../../src/cluster/service'
import { ctx, serverConfig, serviceConfig } from '../schedulers/helpers'

describe('createService', () => {
  const cfg = serviceConfig('wlc', [serverConfig('A', { weight: 1 }), serverConfig('B', { weight: 2 })])
  it('exposes the servers in config order', () => {
    const p = createService(cfg)
    expect(p.name).toBe('svc')
    expect(p.config).toBe(cfg)
    expect(p.servers.map((s) => [s.id, s.index, s.service])).toEqual([['A', 0, 'svc'], ['B', 1, 'svc']])
  })
  it('keeps the scheduler current through bind/feedback/reset/applyHealth', () => {
    const p = createService(cfg)
    const [A, B] = p.servers as [typeof p.servers[0], typeof p.servers[0]]
    const c = ctx()
    expect(p.pick(c)).toBe(A)                      // tie 0/1 vs 0/2: first
    p.bind(A)
    expect(p.pick(c)).toBe(B)
    p.bind(B); p.bind(B)
    expect(p.pick(c)).toBe(A)                      // 256*2 > 512*1? no: tie -> first
    p.bind(B)                                      // B 768/2 > A 256/1
    expect(p.pick(c)).toBe(A)
    p.feedback(A, 1, 0, 0)                         // A 512/1 > B 384/1... B wins
    expect(p.pick(c)).toBe(B)
    p.reset(B)
    expect(p.pick(c)).toBe(B)
    p.applyHealth(B, false, 2)
    expect(p.pick(c)).toBe(A)
    p.applyHealth(B, true, 0)
    expect(p.pick(c)).toBe(A)
    expect(B.lastWeight).toBe(2)
    expect(() => p.applyHealth(B, true, 70000)).toThrow()
    expect(() => p.setConfigWeight(B, -1)).toThrow()
    expect(() => p.bind({ ...A })).toThrow(/does not belong/)
    p.tick(1000)
    p.close()
  })
})
