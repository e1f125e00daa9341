// dh: Destination Hashing (ip_vs_dh.c). A static table maps hash(key) to a server, weights ignored:
// the same key always goes to the same server while the set is unchanged. Use it to pin content
// (cache shards) to servers. The key is PickContext.hashKey, or the client address when it is missing.
// No fallback: if the key's server is unavailable the pick is null (503), as in the kernel.
import { inConfigOrder, isAvailable } from './available'
import { fnv1a, hash32 } from './hash'
import { parseNoOptions } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

/*
 * Table: 2^bits buckets, bucket i -> server i mod n in config order (ip_vs_dh_reassign). bits = 8 (the
 * kernel's CONFIG_IP_VS_DH_TAB_BITS default) up to 64 servers; beyond that Baton raises it to
 * ceil(log2 n) + 2 so every server owns at least 4 buckets (256 buckets would leave servers unused).
 * Bucket of a key: hash_32(FNV-1a(key), bits), the kernel's hash_32 over a string hash.
 */
export function dhTableBits (n: number): number {
  return n <= 64 ? 8 : Math.min(24, Math.ceil(Math.log2(n)) + 2)
}

class DestinationHashing implements Scheduler {
  #table: RealServer[] = []
  #bits = 8

  constructor (servers: readonly RealServer[]) {
    this.update(servers)
  }

  pick (ctx: PickContext): RealServer | null {
    if (this.#table.length === 0) return null
    const d = this.#table[hash32(fnv1a(ctx.hashKey ?? ctx.clientAddress), this.#bits)]!
    return isAvailable(d, ctx) ? d : null
  }

  update (servers: readonly RealServer[]): void {
    const list = inConfigOrder(servers)
    this.#bits = dhTableBits(list.length)
    const size = list.length === 0 ? 0 : 1 << this.#bits
    const table = new Array<RealServer>(size)
    for (let i = 0; i < size; i++) table[i] = list[i % list.length]!
    this.#table = table
  }
}

export const dh: SchedulerFactory<Record<string, never>> = {
  name: 'dh',
  description: 'Destination Hashing: hash(key) -> fixed server, weights ignored, no fallback.',
  usesKey: true,
  parseOptions: (raw, path) => parseNoOptions('dh', raw, path),
  create: (servers) => new DestinationHashing(servers),
}
