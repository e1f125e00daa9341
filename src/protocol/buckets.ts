// Fixed histogram buckets: upper bounds, inclusive, with one more bucket above the last. The back ends'
// LATENCY message carries them (handoff.ts) and /metrics exposes them (the dispatch and migration times):
// this is the one home of the lookup.

/** The index of the bucket that holds s: the first bound s does not exceed, bounds.length above them all. */
export function bucketOf (bounds: readonly number[], s: number): number {
  let i = 0
  while (i < bounds.length && s > bounds[i]!) i++
  return i
}
