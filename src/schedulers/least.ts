// Shared engine of the least-connection family (lc wlc sed nq): the kernel's linear scan, sped up by
// a LeastHeap that the cluster keeps current through changed(). A pick with a non-empty avoid set
// runs the exact scan instead (the heap knows nothing of per-connection avoid sets). Both paths give
// the same server: see least-heap.ts for why.
import { inConfigOrder } from './available'
import { LeastHeap } from './least-heap'
import type { PickContext, RealServer, Scheduler } from './types'

/** The kernel's scan for one scheduler, with Baton's up/avoid skips. Hot path: no allocation. */
export type Scan = (list: readonly RealServer[], ctx: PickContext) => RealServer | null

/** a before b in "metric" order among eligible servers: negative, zero (tie) or positive. */
export type Compare = (a: RealServer, b: RealServer) => number

/** Heap eligibility: what every scan in this family requires of its answer (avoid aside). */
export function isEligible (s: RealServer): boolean {
  return s.up && s.weight > 0 && !s.overloaded
}

/** Total order for the heap: eligible first, then `cmp`, then config index (the scans' tie-break). */
export function eligibleFirst (cmp: Compare): (a: RealServer, b: RealServer) => boolean {
  return (a, b) => {
    const ea = isEligible(a)
    if (ea !== isEligible(b)) return ea
    if (ea) {
      const c = cmp(a, b)
      if (c !== 0) return c < 0
    }
    return a.index < b.index
  }
}

export class LeastScheduler implements Scheduler {
  readonly #scan: Scan
  readonly #heap: LeastHeap
  #list: RealServer[] = []

  constructor (servers: readonly RealServer[], scan: Scan, cmp: Compare) {
    this.#scan = scan
    this.#heap = new LeastHeap(eligibleFirst(cmp))
    this.update(servers)
  }

  pick (ctx: PickContext): RealServer | null {
    const avoid = ctx.avoid
    if (avoid !== undefined && avoid.size !== 0) return this.#scan(this.#list, ctx)
    const top = this.#heap.top()
    return top !== undefined && isEligible(top) ? top : null
  }

  update (servers: readonly RealServer[]): void {
    this.#list = inConfigOrder(servers)
    this.#heap.reset(this.#list)
  }

  changed (server: RealServer): void {
    this.#heap.changed(server)
  }

  /** The exact kernel scan over the current list; tests compare it with pick(). */
  scan (ctx: PickContext): RealServer | null {
    return this.#scan(this.#list, ctx)
  }
}
