// Shared core of lblc and lblcr: the locality table and its GC, the wlc step for new picks (through
// the O(1) LeastHeap), and the kernel's is_overloaded() test kept O(1) by counting, on every counter
// change, the servers with active * 2 < weight. Options are parsed here for both.
import { inConfigOrder } from './available'
import { LeastScheduler } from './least'
import { LocalityGc, LocalityTable, type GcLimits, type TableEntry } from './locality-table'
import { OptionReader } from './options'
import type { PickContext, RealServer } from './types'
import { wlcCompare, wlcScan } from './wlc'

export interface LocalityOptions {
  /** lblc_expiration / lblcr_expiration: unused entries go after this (default 86400). */
  readonly expirationS: number
  /** Most entries held (default 16384, the kernel's max_size). */
  readonly tableSize: number
  /** Idle entries go after this once the table is over its soft size (default 360, ENTRY_TIMEOUT). */
  readonly entryTimeoutS: number
}

export function parseLocalityOptions (name: string, raw: unknown, path: string, extra: readonly string[]):
{ reader: OptionReader, options: LocalityOptions } {
  const reader = new OptionReader(name, raw, path, ['expirationS', 'tableSize', 'entryTimeoutS', ...extra])
  const options = {
    expirationS: reader.integer('expirationS', 86400, 1, 31_536_000),
    tableSize: reader.integer('tableSize', 16384, 1, 16_777_216),
    entryTimeoutS: reader.integer('entryTimeoutS', 360, 1, 31_536_000),
  }
  return { reader, options }
}

/** The key a locality scheduler remembers: the request key, else the client address. */
export function localityKey (ctx: PickContext): string {
  return ctx.hashKey ?? ctx.clientAddress
}

export class LocalityCore<E extends TableEntry> {
  readonly table: LocalityTable<E>
  readonly wlc: LeastScheduler
  readonly #gc = new LocalityGc()
  readonly #limits: GcLimits
  /** 1 where active * 2 < weight, by RealServer.index. */
  #halfIdle = new Uint8Array(0)
  #halfIdleCount = 0
  #list: RealServer[] = []
  #byIndex: Array<RealServer | undefined> = []

  constructor (servers: readonly RealServer[], options: LocalityOptions) {
    this.table = new LocalityTable<E>(options.tableSize)
    this.#limits = {
      expirationMs: options.expirationS * 1000,
      entryTimeoutMs: options.entryTimeoutS * 1000,
      softSize: Math.max(1, Math.floor(options.tableSize * 3 / 4)),
    }
    this.wlc = new LeastScheduler([], wlcScan, wlcCompare)
    this.setServers(servers)
  }

  get list (): readonly RealServer[] {
    return this.#list
  }

  /** Replaces the server list; returns the set of servers present, for purging stale entries. */
  setServers (servers: readonly RealServer[]): Set<RealServer> {
    this.#list = inConfigOrder(servers)
    this.wlc.update(this.#list)
    let maxIndex = -1
    for (const s of this.#list) if (s.index > maxIndex) maxIndex = s.index
    this.#halfIdle = new Uint8Array(maxIndex + 1)
    this.#halfIdleCount = 0
    this.#byIndex = []
    for (const s of this.#list) { this.#byIndex[s.index] = s; this.#mark(s) }
    return new Set(this.#list)
  }

  changed (s: RealServer): void {
    this.wlc.changed(s)
    if (this.#byIndex[s.index] !== s) return
    if (this.#halfIdle[s.index] === 1) { this.#halfIdle[s.index] = 0; this.#halfIdleCount-- }
    this.#mark(s)
  }

  /**
   * The kernel's is_overloaded(): d has more active connections than its weight while some server
   * (any, no flag or weight filter) has active * 2 < weight. Active counts only, not overhead.
   */
  isOverloaded (d: RealServer): boolean {
    return d.conns.active > d.weight && this.#halfIdleCount > 0
  }

  tick (now: number): void {
    this.#gc.run(this.table, now, this.#limits)
  }

  #mark (s: RealServer): void {
    if (s.conns.active * 2 < s.weight) { this.#halfIdle[s.index] = 1; this.#halfIdleCount++ }
  }
}

/** What lblc and lblcr share around their core: housekeeping and introspection. */
export abstract class LocalityScheduler<E extends TableEntry> {
  protected readonly core: LocalityCore<E>

  constructor (core: LocalityCore<E>) {
    this.core = core
  }

  /** Keys remembered now (tests and admin stats); never above tableSize. */
  get entries (): number {
    return this.core.table.size
  }

  changed (server: RealServer): void {
    this.core.changed(server)
  }

  tick (now: number): void {
    this.core.tick(now)
  }

  close (): void {
    this.core.table.clear()
  }
}

