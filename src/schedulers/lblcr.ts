// lblcr: LBLC with Replication (ip_vs_lblcr.c). Each key maps to a SET of servers: the least loaded
// member serves it; when all members are overloaded a wlc pick joins the set, and a set unchanged for
// setShrinkS loses its most loaded member. Use it for hot content that one cache server cannot carry.
// The key is PickContext.hashKey, or the client address when it is missing.
import { isSkipped, overhead } from './available'
import { LocalityCore, localityKey, LocalityScheduler, parseLocalityOptions, type LocalityOptions } from './locality'
import type { TableEntry } from './locality-table'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

export interface LblcrOptions extends LocalityOptions {
  /** lblcr_expiration: a set unchanged this long drops its most loaded member (default 86400). */
  readonly setShrinkS: number
}

interface Entry extends TableEntry {
  /** Newest member first (the kernel inserts at the head). */
  readonly set: RealServer[]
  lastMod: number
}

/** ip_vs_dest_set_min: weighted least-loaded member; skips OVERLOAD, weight 0 and !AVAILABLE. */
function setMin (set: readonly RealServer[], ctx: PickContext): RealServer | null {
  let least: RealServer | null = null
  let loh = 0
  for (let i = 0; i < set.length; i++) {
    const e = set[i]!
    if (e.overloaded || isSkipped(e, ctx)) continue
    if (least === null) {
      if (e.weight > 0) { least = e; loh = overhead(e) }
    } else if (loh * e.weight > overhead(e) * least.weight) {
      least = e
      loh = overhead(e)
    }
  }
  return least
}

/** ip_vs_dest_set_max: weighted most-loaded member with weight > 0, ignoring OVERLOAD/AVAILABLE. */
function setMax (set: readonly RealServer[]): RealServer | null {
  let most: RealServer | null = null
  let moh = 0
  for (let i = 0; i < set.length; i++) {
    const e = set[i]!
    if (e.weight <= 0) continue
    if (most === null || moh * e.weight < overhead(e) * most.weight) { most = e; moh = overhead(e) }
  }
  return most
}

function erase (set: RealServer[], s: RealServer): void {
  const i = set.indexOf(s)
  if (i < 0) return
  for (let k = i + 1; k < set.length; k++) set[k - 1] = set[k]!
  set.length--
}

class LocalityReplication extends LocalityScheduler<Entry> implements Scheduler {
  readonly #shrinkMs: number

  constructor (servers: readonly RealServer[], options: LblcrOptions) {
    super(new LocalityCore<Entry>(servers, options))
    this.#shrinkMs = options.setShrinkS * 1000
  }

  /** The kernel's order: set_min, then maybe shrink (d may be the member just erased), then grow. */
  pick (ctx: PickContext): RealServer | null {
    const core = this.core
    const key = localityKey(ctx)
    const en = core.table.get(key)
    if (en === undefined) {
      const d = core.wlc.pick(ctx)
      if (d !== null) core.table.insert(key, { set: [d], lastMod: ctx.now, lastUse: ctx.now, placedAt: ctx.now }, ctx.now)
      return d
    }
    en.lastUse = ctx.now
    const d = setMin(en.set, ctx)
    if (en.set.length > 1 && ctx.now > en.lastMod + this.#shrinkMs) {
      const m = setMax(en.set)
      if (m !== null) { erase(en.set, m); en.lastMod = ctx.now }
    }
    if (d !== null && !core.isOverloaded(d)) return d
    const w = core.wlc.pick(ctx)
    if (w === null) return null
    if (!en.set.includes(w)) { en.set.unshift(w); en.lastMod = ctx.now }
    return w
  }

  /** Removed servers leave every set; an entry whose set empties is dropped. */
  update (servers: readonly RealServer[]): void {
    const present = this.core.setServers(servers)
    this.core.table.purge((en) => {
      for (let i = en.set.length - 1; i >= 0; i--) if (!present.has(en.set[i]!)) en.set.splice(i, 1)
      return en.set.length === 0
    })
  }
}

export const lblcr: SchedulerFactory<LblcrOptions> = {
  name: 'lblcr',
  description: 'LBLC with Replication: a key maps to a set of servers that grows under load, shrinks idle.',
  usesKey: true,
  parseOptions (raw, path) {
    const { reader, options } = parseLocalityOptions('lblcr', raw, path, ['setShrinkS'])
    const setShrinkS = reader.integer('setShrinkS', 86400, 1, 31_536_000)
    reader.done()
    return { ...options, setShrinkS }
  },
  create: (servers, options) => new LocalityReplication(servers, options),
}
