// wrr: Weighted Round-Robin with gcd stepping (ip_vs_wrr.c). Over one period each server is picked
// weight/gcd times, interleaved (4,3,2 -> AABABCABC). Use it for servers of different capacity when
// requests cost about the same. Amortised O(max weight / mean weight) per pick, no allocation.
import { gcd, inConfigOrder, isSkipped } from './available'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

/*
 * The kernel's state: cl (the last server picked, -1 = list head), cw (current weight), di (gcd of the
 * positive weights) and mw = max weight - (di - 1). Each pass over the list picks the servers whose
 * weight >= cw; when a pass ends, cw drops by di; when cw falls to 0 or below it restarts at mw. Taking
 * mw = max - (di - 1) instead of max makes the last pass run at cw <= di, usually cw == 1, so a server
 * whose weight fell below di concurrently is still found. `stop`, `lastPass` and `restarted` bound
 * the loop to one full pass at weight >= 1 when everything is OVERLOADED (then NULL).
 * Baton adds: a down or avoided server is skipped like an OVERLOADED one.
 */
class WeightedRoundRobin implements Scheduler {
  #list: RealServer[] = []
  #cl = -1
  #cw = 0
  #mw = 0
  #di = 1

  constructor (servers: readonly RealServer[]) {
    this.#setList(servers)
    this.#cw = this.#mw
  }

  pick (ctx: PickContext): RealServer | null {
    if (this.#mw === 0) return null
    const list = this.#list
    const n = list.length
    const last = this.#cl
    let d = this.#cl
    let stop = -2
    let lastPass = false
    let restarted = false
    for (;;) {
      for (d++; d < n; d++) {
        const s = list[d]!
        if (!s.overloaded && s.weight >= this.#cw && !isSkipped(s, ctx)) {
          this.#cl = d
          return s
        }
        if (d === stop) { this.#cl = d; return null }
      }
      this.#cw -= this.#di
      if (this.#cw <= 0) {
        this.#cw = this.#mw
        if (lastPass || last === -1) { this.#cl = -1; return null }
        restarted = true
      }
      lastPass = this.#cw <= this.#di
      if (lastPass && restarted && last !== -1) stop = last
      d = -1
    }
  }

  /** add/del/upd_dest (ip_vs_wrr_dest_changed): back to the list head, cw kept if still valid. */
  update (servers: readonly RealServer[]): void {
    this.#setList(servers)
    this.#cl = -1
    if (this.#cw > this.#mw || this.#cw === 0) this.#cw = this.#mw
    else if (this.#di > 1) this.#cw = Math.floor(this.#cw / this.#di) * this.#di + 1
  }

  #setList (servers: readonly RealServer[]): void {
    this.#list = inConfigOrder(servers)
    let g = 0
    let max = 0
    for (const s of this.#list) {
      if (s.weight > 0) g = gcd(s.weight, g)
      if (s.weight > max) max = s.weight
    }
    this.#di = g === 0 ? 1 : g
    this.#mw = max - (this.#di - 1)
  }
}

export const wrr: SchedulerFactory<Record<string, never>> = {
  name: 'wrr',
  description: 'Weighted Round-Robin: each server weight/gcd times per period, interleaved (LVS cw/mw/di).',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('wrr', raw, path),
  create: (servers) => new WeightedRoundRobin(servers),
}
