// rr: Round-Robin (ip_vs_rr.c). Each pick takes the next available server after the last one picked,
// in config order. Use it when the real servers are alike and requests cost about the same; weights
// only matter as "0 = quiesced". O(1) per pick unless many servers are unavailable.
import { inConfigOrder, isAvailable } from './available'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

class RoundRobin implements Scheduler {
  #list: RealServer[] = []
  /** Position of the last server picked; -1 = the list head (the next pick starts at position 0). */
  #cursor = -1
  #cursorIndex = -1

  constructor (servers: readonly RealServer[]) {
    this.update(servers)
  }

  pick (ctx: PickContext): RealServer | null {
    const list = this.#list
    const n = list.length
    let i = this.#cursor
    for (let k = 0; k < n; k++) {
      if (++i >= n) i = 0
      const s = list[i]!
      if (isAvailable(s, ctx)) {
        this.#cursor = i
        this.#cursorIndex = s.index
        return s
      }
    }
    return null
  }

  /**
   * The kernel keeps its cursor across add/del/upd_dest; a removed cursor moves back to its predecessor,
   * so the next pick is its successor. Positions: count of servers at or before the cursor's index, -1.
   */
  update (servers: readonly RealServer[]): void {
    this.#list = inConfigOrder(servers)
    let pos = -1
    if (this.#cursorIndex >= 0) {
      for (const s of this.#list) if (s.index <= this.#cursorIndex) pos++
    }
    this.#cursor = pos
  }
}

export const rr: SchedulerFactory<Record<string, never>> = {
  name: 'rr',
  description: 'Round-Robin: next available server in config order; weight only as 0 = quiesced.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('rr', raw, path),
  create: (servers) => new RoundRobin(servers),
}
