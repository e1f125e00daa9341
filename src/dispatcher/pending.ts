// The connections the dispatcher owns while no forwarder does: heads still arriving, and answered clients
// whose socket is draining. Each has an absolute deadline of its own (head-wait.ts, respond.ts: a timer set
// once, never restarted by the client's bytes); this set bounds how many there are at once. Past
// limits.maxPendingConns the OLDEST is shed: closed at once, without an answer. The oldest has used the most
// of its deadline, and a flood of slow clients then costs its own members, not the next normal client.
export interface PendingEntry {
  readonly kind: 'head' | 'drain'
  /** Close now, quietly: the entry has already been removed from the set. */
  shed (): void
}

export interface PendingCounts {
  readonly head: number
  readonly drain: number
  /** Shed since start because the set was full. */
  readonly shed: number
}

export class PendingSet {
  /** Insertion order is age order: the first entry is the oldest. */
  readonly #entries = new Set<PendingEntry>()
  #max: number
  #heads = 0
  #shed = 0

  constructor (max: number) {
    this.#max = max
  }

  get size (): number { return this.#entries.size }
  get counts (): PendingCounts {
    return { head: this.#heads, drain: this.#entries.size - this.#heads, shed: this.#shed }
  }

  /** Reload: a smaller bound sheds the excess at the next add(). */
  setMax (max: number): void { this.#max = max }

  /** Adds `e` as the newest, then sheds the oldest while over the bound. */
  add (e: PendingEntry): void {
    this.#entries.add(e)
    if (e.kind === 'head') this.#heads++
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.values().next().value as PendingEntry
      this.delete(oldest)
      this.#shed++
      oldest.shed()
    }
  }

  /** Idempotent: false when `e` was not in the set. */
  delete (e: PendingEntry): boolean {
    if (!this.#entries.delete(e)) return false
    if (e.kind === 'head') this.#heads--
    return true
  }

  /** Shutdown: sheds every entry. */
  shedAll (): void {
    for (const e of [...this.#entries]) {
      this.delete(e)
      e.shed()
    }
  }
}
