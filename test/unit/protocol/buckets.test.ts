// protocol/buckets.ts bucketOf: upper bounds inclusive, one bucket above the last.
import { describe, expect, it } from 'vitest'
import { bucketOf } from '../../../src/protocol/buckets'

describe('bucketOf', () => {
  const bounds = [0.001, 0.01, 0.1]
  it('puts a value in the first bucket whose bound it does not exceed', () => {
    expect([0, 0.001, 0.0011, 0.01, 0.05, 0.1].map((s) => bucketOf(bounds, s))).toEqual([0, 0, 1, 1, 2, 2])
  })
  it('puts what exceeds every bound in the bucket above the last', () => {
    expect(bucketOf(bounds, 0.2)).toBe(3)
    expect(bucketOf([], 5)).toBe(0)
  })
})
