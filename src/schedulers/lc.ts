// lc: Least-Connection (ip_vs_lc.c). Picks the available server with the least overhead
// (active * 256 + inactive); ties go to the first in config order. Use it when request costs vary
// and servers are alike. O(1) pick, O(log n) per counter change (see least.ts).
import { isAvailable, overhead } from './available'
import { LeastScheduler } from './least'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, SchedulerFactory } from './types'

/** The kernel loop: skip OVERLOAD and weight 0; strict < keeps the first minimum. */
export function lcScan (list: readonly RealServer[], ctx: PickContext): RealServer | null {
  let least: RealServer | null = null
  let loh = 0
  for (let i = 0; i < list.length; i++) {
    const d = list[i]!
    if (!isAvailable(d, ctx)) continue
    const doh = overhead(d)
    if (least === null || doh < loh) { least = d; loh = doh }
  }
  return least
}

export function lcCompare (a: RealServer, b: RealServer): number {
  return overhead(a) - overhead(b)
}

export const lc: SchedulerFactory<Record<string, never>> = {
  name: 'lc',
  description: 'Least-Connection: least active*256+inactive; ties to the first in config order.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('lc', raw, path),
  create: (servers) => new LeastScheduler(servers, lcScan, lcCompare),
}
