// The O(1) least-connection path against a reference scan written straight from
// research/lvs-schedulers.md §3-6, over random counter, weight, up and OVERLOAD changes made through
// the cluster (the only writer), with ties frequent and occasional avoid sets.
import { describe, expect, it } from 'vitest'
import { createService } from '../../../src/cluster/service'
import type { RealServer } from '../../../src/schedulers/types'
import { ctx, serverConfig, serviceConfig } from './helpers'

const oh = (d: RealServer): number => d.conns.active * 256 + d.conns.inactive
const ok = (d: RealServer, avoid: ReadonlySet<string>): boolean => d.up && !avoid.has(d.id)

type Ref = (list: readonly RealServer[], avoid: ReadonlySet<string>) => RealServer | null

const reference: Record<string, Ref> = {
  lc (list, avoid) {
    let least: RealServer | null = null
    for (const d of list) {
      if (d.overloaded || d.weight === 0 || !ok(d, avoid)) continue
      if (least === null || oh(d) < oh(least)) least = d
    }
    return least
  },
  wlc: (list, avoid) => weighted(list, avoid, oh),
  sed: (list, avoid) => weighted(list, avoid, (d) => d.conns.active + 1),
  nq (list, avoid) {
    let least: RealServer | null = null
    for (const d of list) {
      if (d.overloaded || d.weight === 0 || !ok(d, avoid)) continue
      if (d.conns.active === 0) return d
      if (least === null || (least.conns.active + 1) * d.weight > (d.conns.active + 1) * least.weight) least = d
    }
    return least
  },
}

function weighted (list: readonly RealServer[], avoid: ReadonlySet<string>, h: (d: RealServer) => number): RealServer | null {
  const first = list.findIndex((d) => !d.overloaded && d.weight > 0 && ok(d, avoid))
  if (first < 0) return null
  let least = list[first]!
  for (const d of list.slice(first + 1)) {
    if (d.overloaded || !ok(d, avoid)) continue
    if (h(least) * d.weight > h(d) * least.weight) least = d
  }
  return least
}

function random (seed: number): (n: number) => number {
  let x = seed
  return (n) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    return (x >>> 8) % n
  }
}

describe.each(['lc', 'wlc', 'sed', 'nq'])('%s: O(1) path === kernel scan', (name) => {
  it.each([7, 64, 300])('%i servers, 20k random steps', (n) => {
    const r = random(n * 31 + name.length)
    const cfgs = Array.from({ length: n }, (_, i) => serverConfig(`s${i}`, {
      weight: r(4), maxConns: r(3) === 0 ? 2 + r(4) : 0, minConns: r(5) === 0 ? 1 : 0,
    }))
    const p = createService(serviceConfig(name, cfgs), () => 0)
    const c = ctx()
    const empty = new Set<string>()
    for (let step = 0; step < 20_000; step++) {
      const s = p.servers[r(n)]!
      const op = r(100)
      if (op < 40) p.bind(s)
      else if (op < 75) p.feedback(s, -r(2), r(3) - 1, r(2))
      else if (op < 85) p.feedback(s, r(2), 0, 0)
      else if (op < 92) p.applyHealth(s, s.up, r(4))
      else if (op < 97) p.applyHealth(s, r(4) !== 0, s.weight)
      else p.reset(s)
      const avoid = r(10) === 0 ? new Set([p.servers[r(n)]!.id, p.servers[r(n)]!.id]) : empty
      c.avoid = avoid
      const got = p.pick(c)
      const want = reference[name]!(p.servers, avoid)
      if (got !== want) throw new Error(`step ${step}: got ${got?.id ?? 'null'}, want ${want?.id ?? 'null'}`)
    }
    expect(true).toBe(true)
  })
})
