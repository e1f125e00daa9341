import { describe, expect, it } from 'vitest'
import { createService } from '../../../src/cluster/service'
import { ctx, serverConfig, serviceConfig } from '../schedulers/helpers'

function pool (netmask = 32, timeoutS = 300) {
  const cfg = serviceConfig('rr', ['A', 'B', 'C'].map((n) => serverConfig(n)), { persistent: { timeoutS, netmask } })
  return createService(cfg, () => 0)
}

describe('persistence templates (ipvsadm -p)', () => {
  it('same client -> same server while the template lives; expiry after timeoutS idle', () => {
    const p = pool()
    const c = ctx({ clientAddress: '10.0.0.1', now: 0 })
    const first = p.pick(c)!.id
    for (let t = 1; t < 10; t++) { c.now = t * 100_000; expect(p.pick(c)!.id).toBe(first) }
    expect(p.pick(ctx({ clientAddress: '10.0.0.2', now: 1e6 }))!.id).not.toBe(first)   // rr moved on
    c.now += 300_000                                                                    // idle >= 300 s
    expect(p.pick(c)!.id).not.toBe(first)
  })
  it('groups clients by netmask', () => {
    const p = pool(24)
    const a = p.pick(ctx({ clientAddress: '10.0.0.1' }))!.id
    expect(p.pick(ctx({ clientAddress: '10.0.0.200' }))!.id).toBe(a)
    expect(p.pick(ctx({ clientAddress: '::ffff:10.0.0.9' }))!.id).toBe(a)
    expect(p.pick(ctx({ clientAddress: '10.0.1.1' }))!.id).not.toBe(a)
    const v6 = p.pick(ctx({ clientAddress: '2001:db8::1' }))!.id
    expect(p.pick(ctx({ clientAddress: '2001:db8::1' }))!.id).toBe(v6)
  })
  it('does not reuse a down, quiesced or avoided server, and repoints the template', () => {
    const p = pool()
    const c = ctx({ clientAddress: '10.0.0.1' })
    const first = p.pick(c)!
    p.applyHealth(first, false, first.weight)
    const second = p.pick(c)!
    expect(second).not.toBe(first)
    p.applyHealth(first, true, first.weight)
    expect(p.pick(c)).toBe(second)
    p.applyHealth(second, true, 0)
    const third = p.pick(c)!
    expect(third).not.toBe(second)
    c.avoid = new Set([third.id])
    expect(p.pick(c)).not.toBe(third)
  })
  it('OVERLOAD does not break persistence (kernel behaviour)', () => {
    const cfg = serviceConfig('rr', [serverConfig('A', { maxConns: 1 }), serverConfig('B')], { persistent: { timeoutS: 300, netmask: 32 } })
    const p = createService(cfg, () => 0)
    const c = ctx({ clientAddress: '10.0.0.1' })
    const a = p.pick(c)!
    p.bind(a)
    expect(a.overloaded).toBe(true)
    expect(p.pick(c)).toBe(a)
  })
  it('expires templates on tick', () => {
    const p = pool()
    const c = ctx({ clientAddress: '10.0.0.1' })
    const first = p.pick(c)!
    p.tick(400_000)
    p.pick(ctx({ clientAddress: '10.0.0.50', now: 400_000 }))
    c.now = 400_001
    expect(p.pick(c)).not.toBe(first)
  })
})
