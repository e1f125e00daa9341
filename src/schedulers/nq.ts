// nq: Never Queue (ip_vs_nq.c). The first idle server (no active connection) in config order wins at
// once; if none is idle, sed's least (active + 1) / weight. Use it when an idle server should always
// be preferred over a faster busy one. O(1) pick, O(log n) per counter change.
import { isAvailable } from './available'
import { LeastScheduler } from './least'
import { parseNoOptions } from './options'
import { sedCompare } from './sed'
import type { PickContext, RealServer, SchedulerFactory } from './types'

/** The kernel loop: skip OVERLOAD and weight 0; first idle returns; else strict > keeps the first. */
export function nqScan (list: readonly RealServer[], ctx: PickContext): RealServer | null {
  let least: RealServer | null = null
  let loh = 0
  for (let i = 0; i < list.length; i++) {
    const d = list[i]!
    if (!isAvailable(d, ctx)) continue
    const doh = d.conns.active + 1
    if (doh === 1) return d
    if (least === null || loh * d.weight > doh * least.weight) { least = d; loh = doh }
  }
  return least
}

/** Idle servers before busy ones (idle ones among themselves by config index), then sed's order. */
export function nqCompare (a: RealServer, b: RealServer): number {
  const ia = a.conns.active === 0
  const ib = b.conns.active === 0
  if (ia !== ib) return ia ? -1 : 1
  return ia ? 0 : sedCompare(a, b)
}

export const nq: SchedulerFactory<Record<string, never>> = {
  name: 'nq',
  description: 'Never Queue: the first idle server, else least (active+1)/weight.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('nq', raw, path),
  create: (servers) => new LeastScheduler(servers, nqScan, nqCompare),
}
