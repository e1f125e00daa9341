// The agent's estimate of one dispatcher's clock (its performance.now(), ms), learnt from the times the
// dispatcher stamps on PING and MIGRATE (protocol/migrate-control.ts). The agent uses it for one decision:
// a MIGRATE whose deadline has passed is refused, because by then the dispatcher may have given the
// connection up and restored it itself; restoring it here as well would put two sockets on one flow.
//
// For each stamped frame, local receipt time - stamp = the difference of the two clocks + that frame's
// delay (on the wire, in queues, in a stalled event loop). The smallest such offset seen recently is the
// difference + the shortest recent delay, so local time - that offset trails the dispatcher's clock by that
// shortest delay (tens of µs): the agent may take a MIGRATE that much after its deadline, which the
// dispatcher allows for (it gives up timeoutMs after sending, the deadline is half of that). Minima are kept
// per BUCKET_MS over BUCKETS buckets, so a stall, in which every frame arrives late, does not make the
// estimate trail by the stall, and the drift of two clocks (parts per million) cannot add up for long.
const BUCKET_MS = 10_000
const BUCKETS = 6

export class PeerClock {
  /** The smallest offset of each bucket, newest last. */
  readonly #mins: number[] = []
  #bucketStart = -Infinity

  /** A frame stamped `stamp` (the dispatcher's clock) arrived at `local` (this process's clock). */
  sample (stamp: number, local: number): void {
    const offset = local - stamp
    if (local - this.#bucketStart >= BUCKET_MS) {
      this.#bucketStart = local
      this.#mins.push(offset)
      if (this.#mins.length > BUCKETS) this.#mins.shift()
      return
    }
    const last = this.#mins.length - 1
    if (offset < this.#mins[last]!) this.#mins[last] = offset
  }

  /** The dispatcher's clock at `local`, behind it by the shortest recent delay; undefined before any sample. */
  now (local: number): number | undefined {
    if (this.#mins.length === 0) return undefined
    let min = Infinity
    for (const m of this.#mins) if (m < min) min = m
    return local - min
  }
}
