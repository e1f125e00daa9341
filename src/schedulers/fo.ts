// fo: Weighted Fail-Over (ip_vs_fo.c). Always the available server with the highest weight; the first
// in config order among equal weights. Use it for an active/standby pair or a priority list: lower
// weights only take traffic when every heavier server is unavailable. O(n) per pick, no allocation.
import { inConfigOrder, isAvailable } from './available'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

class FailOver implements Scheduler {
  #list: readonly RealServer[] = []

  constructor (servers: readonly RealServer[]) {
    this.update(servers)
  }

  /** Kernel: skip OVERLOAD; strictly heavier replaces (`weight > hw`, hw from 0 so weight 0 never wins). */
  pick (ctx: PickContext): RealServer | null {
    const list = this.#list
    let h: RealServer | null = null
    let hw = 0
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!
      if (d.weight > hw && isAvailable(d, ctx)) { h = d; hw = d.weight }
    }
    return h
  }

  update (servers: readonly RealServer[]): void {
    this.#list = inConfigOrder(servers)
  }
}

export const fo: SchedulerFactory<Record<string, never>> = {
  name: 'fo',
  description: 'Weighted Fail-Over: the available server with the highest weight (first on ties).',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('fo', raw, path),
  create: (servers) => new FailOver(servers),
}
