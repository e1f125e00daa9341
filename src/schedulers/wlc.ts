// wlc: Weighted Least-Connection (ip_vs_wlc.c; ipvsadm's default). Picks the server with the least
// overhead / weight, cross-multiplied; ties to the first in config order. Use it for servers of
// different capacity with varying request costs. O(1) pick, O(log n) per counter change.
import { isAvailable, isSkipped, overhead } from './available'
import { LeastScheduler } from './least'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, SchedulerFactory } from './types'

/**
 * The kernel loop (also lblc/lblcr's new-pick step). Kernel filtering, followed exactly: the FIRST
 * candidate must be !OVERLOAD with weight > 0; later ones only skip OVERLOAD, since a weight-0 server
 * can never win the strict `loh * w > doh * lw` (its left side is 0). Plus Baton's down/avoid skips.
 */
export function wlcScan (list: readonly RealServer[], ctx: PickContext): RealServer | null {
  let i = 0
  let least: RealServer | null = null
  for (; i < list.length; i++) {
    const d = list[i]!
    if (isAvailable(d, ctx)) { least = d; break }
  }
  if (least === null) return null
  let loh = overhead(least)
  for (i++; i < list.length; i++) {
    const d = list[i]!
    if (d.overloaded || isSkipped(d, ctx)) continue
    const doh = overhead(d)
    if (loh * d.weight > doh * least.weight) { least = d; loh = doh }
  }
  return least
}

/** overhead(a)/a.weight vs overhead(b)/b.weight, cross-multiplied (exact below 2^53). */
export function wlcCompare (a: RealServer, b: RealServer): number {
  return overhead(a) * b.weight - overhead(b) * a.weight
}

export const wlc: SchedulerFactory<Record<string, never>> = {
  name: 'wlc',
  description: 'Weighted Least-Connection: least (active*256+inactive)/weight; ties to config order.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('wlc', raw, path),
  create: (servers) => new LeastScheduler(servers, wlcScan, wlcCompare),
}
