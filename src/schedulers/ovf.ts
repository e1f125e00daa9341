// ovf: Overflow-connection (ip_vs_ovf.c). The heaviest available server whose active connections do
// not exceed its weight; weight is used as a connection budget. Use it to fill a preferred server up to
// a known capacity and overflow to the next one. O(n) per pick, no allocation.
import { inConfigOrder, isAvailable } from './available'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

class Overflow implements Scheduler {
  #list: readonly RealServer[] = []

  constructor (servers: readonly RealServer[]) {
    this.update(servers)
  }

  /** Kernel: skip OVERLOAD, weight 0 and active > weight; strictly heavier replaces (first on ties). */
  pick (ctx: PickContext): RealServer | null {
    const list = this.#list
    let h: RealServer | null = null
    let hw = 0
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!
      const w = d.weight
      if (d.conns.active > w || !isAvailable(d, ctx)) continue
      if (h === null || w > hw) { h = d; hw = w }
    }
    return h
  }

  update (servers: readonly RealServer[]): void {
    this.#list = inConfigOrder(servers)
  }
}

export const ovf: SchedulerFactory<Record<string, never>> = {
  name: 'ovf',
  description: 'Overflow: the heaviest available server with active connections <= weight.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('ovf', raw, path),
  create: (servers) => new Overflow(servers),
}
