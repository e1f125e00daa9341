// sh: Source Hashing (ip_vs_sh.c). Hashes the client address (and port with `port: true`) into a
// weighted table, so a client sticks to one server without any per-client state. Use it for
// stickiness by client; `fallback: true` (sh-fallback) walks to another server when the client's
// is unavailable, otherwise the pick is null. It does not read the request key.
import { inConfigOrder, isAvailable } from './available'
import { foldAddress, hash32 } from './hash'
import { OptionReader } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

export interface ShOptions {
  /** sh-fallback (IP_VS_SVC_F_SCHED1). */
  readonly fallback: boolean
  /** sh-port (IP_VS_SVC_F_SCHED2): hash the client port too. */
  readonly port: boolean
}

/*
 * Table (ip_vs_sh_reassign): walking the servers cyclically in config order, each fills `weight`
 * consecutive buckets (a weight-0 server still takes one). hashkey(addr, port, offset) =
 * (offset + hash_32(port + fold(addr), bits)) & mask, fold(IPv4) = its value, fold(IPv6) = xor of its
 * four words; so 10.0.0.1 -> 39, with port 80 -> 182. bits = 8 (the kernel default) while the weights
 * (at least 1 each) sum to at most 256; beyond that Baton raises bits to fit the sum, up to 16.
 * Fallback probes hashkey(addr, port, (k + ihash) mod size) for k = 0..size-1, as the kernel does.
 */
export function shTableBits (servers: readonly RealServer[]): number {
  let sum = 0
  for (const s of servers) sum += Math.max(1, s.weight)
  return sum <= 256 ? 8 : Math.min(16, Math.ceil(Math.log2(sum)))
}

class SourceHashing implements Scheduler {
  readonly #options: ShOptions
  #table: RealServer[] = []
  #bits = 8

  constructor (servers: readonly RealServer[], options: ShOptions) {
    this.#options = options
    this.update(servers)
  }

  pick (ctx: PickContext): RealServer | null {
    const table = this.#table
    const size = table.length
    if (size === 0) return null
    const port = this.#options.port ? ctx.clientPort : 0
    const ihash = hash32((port + foldAddress(ctx.clientAddress)) >>> 0, this.#bits)
    const d = table[ihash]!
    if (isAvailable(d, ctx)) return d
    if (!this.#options.fallback) return null
    const mask = size - 1
    for (let k = 0; k < size; k++) {
      const roffset = (k + ihash) & mask
      const e = table[(roffset + ihash) & mask]!
      if (isAvailable(e, ctx)) return e
    }
    return null
  }

  update (servers: readonly RealServer[]): void {
    const list = inConfigOrder(servers)
    this.#bits = shTableBits(list)
    this.#table = list.length === 0 ? [] : buildTable(list, 1 << this.#bits)
  }
}

function buildTable (list: readonly RealServer[], size: number): RealServer[] {
  const table = new Array<RealServer>(size)
  let p = 0
  let count = 0
  for (let i = 0; i < size; i++) {
    const d = list[p]!
    table[i] = d
    if (++count >= d.weight) {
      p = (p + 1) % list.length
      count = 0
    }
  }
  return table
}

export const sh: SchedulerFactory<ShOptions> = {
  name: 'sh',
  description: 'Source Hashing: client address (+port) -> weighted table; optional fallback walk.',
  usesKey: false,
  parseOptions (raw, path) {
    const r = new OptionReader('sh', raw, path, ['fallback', 'port'])
    const options = { fallback: r.boolean('fallback', false), port: r.boolean('port', false) }
    r.done()
    return options
  },
  create: (servers, options) => new SourceHashing(servers, options),
}
