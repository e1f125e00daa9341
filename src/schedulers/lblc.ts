// lblc: Locality-Based Least-Connection (ip_vs_lblc.c; LARD for an L7 switch). Remembers which server
// each key (URL, host, ...) went to and sends the key there again while that server is not overloaded,
// else picks by wlc and remembers that. Use it for cache clusters: each server keeps a working set.
// The key is PickContext.hashKey, or the client address when it is missing.
import { isSkipped } from './available'
import { LocalityCore, localityKey, LocalityScheduler, parseLocalityOptions, type LocalityOptions } from './locality'
import type { TableEntry } from './locality-table'
import type { PickContext, RealServer, Scheduler, SchedulerFactory } from './types'

interface Entry extends TableEntry {
  server: RealServer
}

class LocalityLeastConnection extends LocalityScheduler<Entry> implements Scheduler {
  constructor (servers: readonly RealServer[], options: LocalityOptions) {
    super(new LocalityCore<Entry>(servers, options))
  }

  /**
   * Kernel: a cached server is kept if AVAILABLE, weight > 0 and not is_overloaded(); the OVERLOAD
   * (threshold) flag is NOT checked here, only by the wlc step. Baton: down/avoided = not AVAILABLE.
   * Allocates only when a new key is inserted.
   */
  pick (ctx: PickContext): RealServer | null {
    const core = this.core
    const key = localityKey(ctx)
    const en = core.table.get(key)
    if (en !== undefined) {
      en.lastUse = ctx.now
      const d = en.server
      if (d.weight > 0 && !isSkipped(d, ctx) && !core.isOverloaded(d)) return d
    }
    const d = core.wlc.pick(ctx)
    if (d === null) return null
    if (en !== undefined) {
      en.server = d            // ip_vs_lblc_new replaces the entry: a fresh lastuse
    } else {
      core.table.insert(key, { server: d, lastUse: ctx.now, placedAt: ctx.now }, ctx.now)
    }
    return d
  }

  /** Removed servers leave the service: entries pointing at them are dropped (the kernel's !AVAILABLE). */
  update (servers: readonly RealServer[]): void {
    const present = this.core.setServers(servers)
    this.core.table.purge((en) => !present.has(en.server))
  }
}

export const lblc: SchedulerFactory<LocalityOptions> = {
  name: 'lblc',
  description: 'Locality-Based Least-Connection: a key sticks to its server until that one is overloaded.',
  usesKey: true,
  parseOptions (raw, path) {
    const { reader, options } = parseLocalityOptions('lblc', raw, path, [])
    reader.done()
    return options
  },
  create: (servers, options) => new LocalityLeastConnection(servers, options),
}
