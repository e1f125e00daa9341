// A bounded key -> entry table with idle expiry, for lblc/lblcr locality and persistence templates.
// Memory is bounded on insert (CLOCK eviction), and the LVS-style GC in tick() expires idle entries.
// Lookups and hits never allocate; only inserting a new key does.

export interface TableEntry {
  /** Last lookup hit (ms). */
  lastUse: number
  /** When the entry entered its place in the table's order (insert, or a CLOCK second chance). */
  placedAt: number
}

/** Entries CLOCK inspects per eviction before it takes the oldest regardless. */
const SECOND_CHANCES = 8

export class LocalityTable<E extends TableEntry, K = string> {
  readonly #map = new Map<K, E>()
  readonly #capacity: number

  /** `capacity` >= 1: the most entries ever held. */
  constructor (capacity: number) {
    this.#capacity = capacity
  }

  get size (): number {
    return this.#map.size
  }

  get (key: K): E | undefined {
    return this.#map.get(key)
  }

  /**
   * Adds a new key; evicts first when full. Eviction is CLOCK over the Map's insertion order: the oldest
   * entry goes unless it was used since it was placed, in which case it moves to the back (a second
   * chance). That approximates LRU at O(1) without reordering the Map on every hit.
   */
  insert (key: K, entry: E, now: number): void {
    if (this.#map.size >= this.#capacity && !this.#map.has(key)) this.#evictOne(now)
    this.#map.set(key, entry)
  }

  delete (key: K): void {
    this.#map.delete(key)
  }

  /** Deletes every entry for which `drop` returns true. O(size); config changes only. */
  purge (drop: (entry: E, key: K) => boolean): void {
    for (const [key, entry] of this.#map) if (drop(entry, key)) this.#map.delete(key)
  }

  /** Deletes up to `goal` entries idle for at least `idleMs`, oldest placed first. Returns how many. */
  expireIdle (now: number, idleMs: number, goal = Infinity): number {
    let removed = 0
    for (const [key, entry] of this.#map) {
      if (removed >= goal) break
      if (now - entry.lastUse >= idleMs) {
        this.#map.delete(key)
        removed++
      }
    }
    return removed
  }

  clear (): void {
    this.#map.clear()
  }

  #evictOne (now: number): void {
    for (let i = 0; i < SECOND_CHANCES; i++) {
      const first = this.#map.entries().next()
      if (first.done === true) return
      const [key, entry] = first.value
      this.#map.delete(key)
      if (entry.lastUse <= entry.placedAt) return
      entry.placedAt = now
      this.#map.set(key, entry)
    }
    const oldest = this.#map.keys().next()
    if (oldest.done !== true) this.#map.delete(oldest.value)
  }
}

/** LVS lblc/lblcr GC constants: a check every 60 s, a full expiration every 30th check. */
export const CHECK_EXPIRE_INTERVAL_MS = 60_000
export const COUNT_FOR_FULL_EXPIRATION = 30

export interface GcLimits {
  /** Full expiration: entries unused this long go (lblc_expiration / lblcr_expiration). */
  readonly expirationMs: number
  /** Over the soft limit, entries idle this long go (ENTRY_TIMEOUT). */
  readonly entryTimeoutMs: number
  /** The kernel's max_size; Baton uses 3/4 of the hard cap (see gc()). */
  readonly softSize: number
}

/**
 * ip_vs_lblc_check_expire, driven by tick(now) at any rate: runs once per CHECK_EXPIRE_INTERVAL.
 * Every 30th run deletes entries unused for expirationMs; otherwise, above softSize, deletes up to
 * min((size - softSize) * 4/3, softSize/2) entries idle for entryTimeoutMs. The kernel lets the table
 * grow past max_size between runs; Baton also caps it on insert, so softSize is 3/4 of the cap.
 */
export class LocalityGc {
  #lastRun: number | undefined
  #counter = 1

  run<E extends TableEntry, K> (table: LocalityTable<E, K>, now: number, limits: GcLimits): void {
    if (this.#lastRun === undefined) { this.#lastRun = now; return }
    if (now - this.#lastRun < CHECK_EXPIRE_INTERVAL_MS) return
    this.#lastRun = now
    if (this.#counter % COUNT_FOR_FULL_EXPIRATION === 0) {
      table.expireIdle(now, limits.expirationMs)
      this.#counter = 1
      return
    }
    if (table.size <= limits.softSize) { this.#counter++; return }
    const goal = Math.min(Math.floor((table.size - limits.softSize) * 4 / 3), Math.floor(limits.softSize / 2))
    table.expireIdle(now, limits.entryTimeoutMs, goal)
  }
}
