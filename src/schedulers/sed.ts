// sed: Shortest Expected Delay (ip_vs_sed.c; Weinrib & Shenker). Picks the least (active + 1) / weight:
// the delay a new connection would expect. Inactive connections do not count. Use it for servers of
// different capacity when keep-alive idles should not weigh. O(1) pick, O(log n) per counter change.
import { isAvailable, isSkipped } from './available'
import { LeastScheduler } from './least'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, SchedulerFactory } from './types'

/** wlc's loop with overhead = active + 1 (first candidate !OVERLOAD and weight > 0, strict >). */
export function sedScan (list: readonly RealServer[], ctx: PickContext): RealServer | null {
  let i = 0
  let least: RealServer | null = null
  for (; i < list.length; i++) {
    const d = list[i]!
    if (isAvailable(d, ctx)) { least = d; break }
  }
  if (least === null) return null
  let loh = least.conns.active + 1
  for (i++; i < list.length; i++) {
    const d = list[i]!
    if (d.overloaded || isSkipped(d, ctx)) continue
    const doh = d.conns.active + 1
    if (loh * d.weight > doh * least.weight) { least = d; loh = doh }
  }
  return least
}

export function sedCompare (a: RealServer, b: RealServer): number {
  return (a.conns.active + 1) * b.weight - (b.conns.active + 1) * a.weight
}

export const sed: SchedulerFactory<Record<string, never>> = {
  name: 'sed',
  description: 'Shortest Expected Delay: least (active+1)/weight; ties to config order.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('sed', raw, path),
  create: (servers) => new LeastScheduler(servers, sedScan, sedCompare),
}
