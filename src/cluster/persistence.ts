// Persistence templates, like `ipvsadm -p timeout -M netmask`: a client (its address masked to the
// netmask) keeps going to the server it got first while it keeps coming back within timeoutS.
// IPv4 and IPv4-mapped clients are masked to `netmask` bits; IPv6 clients are keyed by their full
// address (/128): PersistenceConfig.netmask is an IPv4 prefix. O(1) per lookup, bounded in size.
import type { PersistenceConfig } from '../config/types'
import { ipv4Mask, ipv4Of } from '../net/ip'
import { LocalityTable, type TableEntry } from '../schedulers/locality-table'
import type { PickContext } from '../schedulers/types'
import type { ServerState } from './types'

/** Default most templates held; the oldest idle ones go first when full (CLOCK, see LocalityTable). */
export const PERSISTENCE_MAX_TEMPLATES = 65536

interface Template extends TableEntry {
  server: ServerState
}

export class PersistenceTable {
  readonly #table: LocalityTable<Template, string | number>
  readonly #timeoutMs: number
  readonly #mask: number

  constructor (cfg: PersistenceConfig, capacity = PERSISTENCE_MAX_TEMPLATES) {
    this.#table = new LocalityTable<Template, string | number>(capacity)
    this.#timeoutMs = cfg.timeoutS * 1000
    this.#mask = ipv4Mask(cfg.netmask)
  }

  get size (): number {
    return this.#table.size
  }

  /**
   * The client's live template server, or null. A template unused for timeoutS, or whose server is
   * down, quiesced (weight 0, the kernel's expire_quiescent_template) or in ctx.avoid, is not used; the
   * caller schedules and record()s a new one. OVERLOAD does not break persistence (kernel behaviour).
   */
  lookup (ctx: PickContext): ServerState | null {
    const key = this.keyOf(ctx.clientAddress)
    const t = this.#table.get(key)
    if (t === undefined) return null
    const s = t.server
    if (ctx.now - t.lastUse >= this.#timeoutMs || !s.up || s.weight === 0 ||
        (ctx.avoid !== undefined && ctx.avoid.has(s.id))) {
      return null
    }
    t.lastUse = ctx.now
    return s
  }

  /** Creates or repoints the client's template. Allocates only for a new client. */
  record (ctx: PickContext, server: ServerState): void {
    const key = this.keyOf(ctx.clientAddress)
    const t = this.#table.get(key)
    if (t !== undefined) {
      t.server = server
      t.lastUse = ctx.now
      return
    }
    this.#table.insert(key, { server, lastUse: ctx.now, placedAt: ctx.now }, ctx.now)
  }

  /** Drops templates idle for timeoutS. O(size); about once a second. */
  expire (now: number): void {
    this.#table.expireIdle(now, this.#timeoutMs)
  }

  /** Drops templates of servers that left the service. */
  forget (keep: ReadonlySet<ServerState>): void {
    this.#table.purge((t) => !keep.has(t.server))
  }

  clear (): void {
    this.#table.clear()
  }

  /** The template key: masked IPv4 (also ::ffff:a.b.c.d) as a number, else the address string. */
  keyOf (address: string): string | number {
    const v4 = ipv4Of(address)
    if (v4 < 0) return address
    return (v4 & this.#mask) >>> 0
  }
}
