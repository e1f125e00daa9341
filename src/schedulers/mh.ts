// mh: Maglev Hashing (ip_vs_mh.c; Eisenbud et al., NSDI'16 §3.4). A prime-sized lookup table filled
// from each server's permutation, in proportion to its weight: near-uniform spread, and adding or
// removing one of N servers moves about 1/N of the keys. Use it for consistent hashing of the request
// key (cache affinity that survives pool changes). `fallback: true` re-hashes past unavailable servers.
import assert from 'node:assert'
import { gcd, inConfigOrder, isAvailable } from './available'
import { fmix32, fnv1a } from './hash'
import { OptionReader } from './options'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

/** The kernel's table sizes (CONFIG_IP_VS_MH_TAB_INDEX 8..17). */
export const MH_PRIMES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const

export interface MhOptions {
  readonly fallback: boolean
  /** Add the client port to the key's hash (mh-port). */
  readonly port: boolean
  readonly tableSize: number
}

/*
 * Build (ip_vs_mh_populate): server d gets offset = h1(d) mod M and skip = h2(d) mod (M-1) + 1, so its
 * preference list offset, offset+skip, ... visits every slot (M prime). Rounds go through the servers
 * in config order; each claims `turns` free slots by walking its list, until all M slots are taken.
 * turns = (last_weight / g) >> rshift, g = gcd of the last weights, rshift = max(0, fls(max/g) -
 * TAB_BITS) so a big weight ratio cannot starve the rounds; at least 1 if last_weight != 0. The table
 * uses last_weight, so quiescing keeps it (keys of a quiesced server fail over or get null).
 * Lookup: slot = H(key, 0) mod M; fallback probes H(key, (k + slot) mod M) mod M, re-hashing as the
 * kernel does. Baton hashes strings: H(key, off) = fmix32(FNV-1a(key) + port + off) instead of hsiphash,
 * and the server identity is host:port. More servers than tableSize: the next larger listed prime.
 */
class MaglevHashing implements Scheduler {
  readonly #options: MhOptions
  #table: Array<RealServer | null> = []
  #signature = ''

  constructor (servers: readonly RealServer[], options: MhOptions) {
    this.#options = options
    this.update(servers)
  }

  pick (ctx: PickContext): RealServer | null {
    const table = this.#table
    const m = table.length
    if (m === 0) return null
    const base = (fnv1a(ctx.hashKey ?? ctx.clientAddress) + (this.#options.port ? ctx.clientPort : 0)) >>> 0
    const ihash = fmix32(base) % m
    const d = table[ihash]
    if (d === null || d === undefined) return null
    if (isAvailable(d, ctx)) return d
    if (!this.#options.fallback) return null
    for (let k = 0; k < m; k++) {
      const e = table[fmix32((base + (k + ihash) % m) >>> 0) % m]
      if (e === null || e === undefined) return null
      if (isAvailable(e, ctx)) return e
    }
    return null
  }

  /** Rebuilds only when the set or a last_weight changed (setUp and weight-0 edits keep the table). */
  update (servers: readonly RealServer[]): void {
    const list = inConfigOrder(servers)
    const signature = list.map((s) => `${s.id}\0${s.host}\0${s.port}\0${s.lastWeight}`).join('\n')
    if (signature === this.#signature && this.#table.length !== 0) return
    this.#signature = signature
    let m = this.#options.tableSize
    if (list.length > m) {
      const bigger = MH_PRIMES.find((p) => p >= list.length)
      assert.ok(bigger !== undefined, `mh: ${list.length} servers exceed the largest table size`)
      m = bigger
    }
    this.#table = list.length === 0 ? [] : populate(list, m)
  }
}

function populate (list: readonly RealServer[], m: number): Array<RealServer | null> {
  const table = new Array<RealServer | null>(m).fill(null)
  let g = 0
  let maxWeight = 0
  for (const s of list) {
    if (s.lastWeight > 0) g = gcd(s.lastWeight, g)
    if (s.lastWeight > maxWeight) maxWeight = s.lastWeight
  }
  if (g === 0) return table
  const tabBits = (8 + MH_PRIMES.indexOf(m as typeof MH_PRIMES[number])) >> 1
  const rshift = Math.max(0, 32 - Math.clz32(maxWeight / g) - tabBits)
  const perm = new Int32Array(list.length)
  const skip = new Int32Array(list.length)
  const turns = new Int32Array(list.length)
  list.forEach((s, i) => {
    const h = fnv1a(s.host) + s.port
    perm[i] = fmix32((h ^ 0x9E3779B9) >>> 0) % m
    skip[i] = fmix32((h + 0x7F4A7C15) >>> 0) % (m - 1) + 1
    turns[i] = ((s.lastWeight / g) >> rshift) || (s.lastWeight !== 0 ? 1 : 0)
  })
  let n = 0
  while (n < m) {
    for (let i = 0; i < list.length && n < m; i++) {
      for (let t = 0; t < turns[i]! && n < m; t++) {
        let c = perm[i]!
        while (table[c] !== null) {
          c += skip[i]!
          if (c >= m) c -= m
        }
        perm[i] = c
        table[c] = list[i]!
        n++
      }
    }
  }
  return table
}

export const mh: SchedulerFactory<MhOptions> = {
  name: 'mh',
  description: 'Maglev Hashing: consistent hash of the key over a prime table; minimal disruption.',
  usesKey: true,
  parseOptions (raw, path) {
    const r = new OptionReader('mh', raw, path, ['fallback', 'port', 'tableSize'])
    const options = {
      fallback: r.boolean('fallback', false),
      port: r.boolean('port', false),
      tableSize: r.integer('tableSize', 4093, 251, 131071, MH_PRIMES),
    }
    r.done()
    return options
  },
  create: (servers, options) => new MaglevHashing(servers, options),
}
