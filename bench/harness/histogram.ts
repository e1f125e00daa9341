// A fixed-bucket latency histogram: 10 µs buckets up to 2 s, one overflow bucket. Recording is one array
// increment, so it can sit on autocannon's per-response event without becoming the client's cost.
// (autocannon's own histogram has 1 ms resolution, too coarse for loopback latencies.)

const BUCKET_MS = 0.01
const BUCKETS = 200_000

export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS + 1)
  #total = 0

  record (ms: number): void {
    const i = Math.floor(ms / BUCKET_MS)
    this.#counts[i < BUCKETS ? i : BUCKETS]!++
    this.#total++
  }

  get count (): number { return this.#total }

  /** The upper edge of the bucket holding quantile q (0..1), in ms; NaN when empty. */
  quantileMs (q: number): number {
    if (this.#total === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.#total))
    let seen = 0
    for (let i = 0; i <= BUCKETS; i++) {
      seen += this.#counts[i]!
      if (seen >= rank) return (i + 1) * BUCKET_MS
    }
    return Infinity
  }
}
