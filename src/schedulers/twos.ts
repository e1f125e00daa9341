// twos: Power of Two Choices (ip_vs_twos.c). Draws two servers at random, each with probability in
// proportion to its weight, and takes the one with the lower overhead / weight. Use it for large pools
// where a full least-connection scan is too costly or its herd effect hurts. O(n) per pick (the
// kernel's weighted draw walks the list), no allocation.
import { inConfigOrder, isAvailable, overhead } from './available'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

/**
 * twos takes no config options. `random` (a function returning [0, 1), like Math.random) is a typed
 * injection point for tests and simulations only: parseOptions() never sets it.
 */
export interface TwosOptions {
  readonly random?: () => number
}

/*
 * Kernel draw: W = total weight of the eligible servers; r1, r2 uniform in 0..W inclusive; walking the
 * list, each r is reduced by each eligible weight and the first server where it reaches <= 0 is that
 * choice. So the first eligible server is drawn with probability (w1 + 1) / (W + 1), any other with
 * wi / (W + 1); both choices may be the same server. choice2 wins only if strictly less loaded.
 */
class TwoChoices implements Scheduler {
  #list: readonly RealServer[] = []
  readonly #random: (() => number) | undefined
  /** xorshift32 state for the default source: integer-only, so a pick allocates no heap number. */
  #x: number

  constructor (servers: readonly RealServer[], random: (() => number) | undefined) {
    this.#random = random
    this.#x = (Math.random() * 4294967295) >>> 0 || 1
    this.update(servers)
  }

  pick (ctx: PickContext): RealServer | null {
    const list = this.#list
    let total = 0
    for (let i = 0; i < list.length; i++) {
      const d = list[i]!
      if (isAvailable(d, ctx)) total += d.weight
    }
    if (total === 0) return null
    let r1 = this.#draw(total)
    let r2 = this.#draw(total)
    let c1: RealServer | null = null
    let c2: RealServer | null = null
    for (let i = 0; i < list.length && (c1 === null || c2 === null); i++) {
      const d = list[i]!
      if (!isAvailable(d, ctx)) continue
      r1 -= d.weight
      r2 -= d.weight
      if (r1 <= 0 && c1 === null) c1 = d
      if (r2 <= 0 && c2 === null) c2 = d
    }
    if (c1 === null) return c2
    if (c2 !== null && c2.weight * overhead(c1) > c1.weight * overhead(c2)) return c2
    return c1
  }

  update (servers: readonly RealServer[]): void {
    this.#list = inConfigOrder(servers)
  }

  /** rand32() % (total + 1): the injected [0, 1) source scaled to 32 bits, else xorshift32. */
  #draw (total: number): number {
    if (this.#random !== undefined) return Math.floor(this.#random() * 4294967296) % (total + 1)
    let x = this.#x
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#x = x
    return (x >>> 0) % (total + 1)
  }
}

export const twos: SchedulerFactory<TwosOptions> = {
  name: 'twos',
  description: 'Power of Two Choices: two weighted random draws, the lower overhead/weight wins.',
  usesKey: false,
  parseOptions: (raw, path) => parseNoOptions('twos', raw, path),
  create: (servers, options) => new TwoChoices(servers, options.random),
}
