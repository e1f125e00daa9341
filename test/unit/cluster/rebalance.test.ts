// cluster/rebalance.ts: how many kept-alive connections each server should shed, from its counters and its
// weight's share of the service's open connections. Pure: plain server records.
import { describe, expect, it } from 'vitest'
import { sheddingTargets } from '../../../src/cluster/rebalance'
import type { ServerState } from '../../../src/cluster/types'

function server (id: string, weight: number, active: number, inactive: number, up = true, overloaded = false): ServerState {
  return { id, weight, up, overloaded, conns: { active, inactive } } as unknown as ServerState
}

function targets (servers: ServerState[], drainedOnly = false): Record<string, number> {
  const out = new Map<ServerState, number>()
  sheddingTargets(servers, out, drainedOnly)
  return Object.fromEntries([...out].map(([s, n]) => [s.id, n]))
}

describe('sheddingTargets', () => {
  it('a server added to a loaded service takes its share from the others', () => {
    expect(targets([server('a', 1, 10, 20), server('b', 1, 5, 25), server('c', 1, 0, 0)])).toEqual({ a: 10, b: 10, c: 0 })
  })

  it('follows weights, and leaves a server within its share plus the tolerance alone', () => {
    expect(targets([server('a', 3, 0, 60), server('b', 1, 0, 40)])).toEqual({ a: 0, b: 15 })
    expect(targets([server('a', 1, 0, 31), server('b', 1, 0, 29)])).toEqual({ a: 0, b: 0 }) // 1 over: not worth a move
  })

  it('a drained server (weight 0) sheds every connection, even its last', () => {
    expect(targets([server('a', 0, 0, 1), server('b', 1, 0, 5)])).toEqual({ a: 1, b: 0 })
    expect(targets([server('a', 0, 3, 4), server('b', 1, 0, 5)])).toEqual({ a: 7, b: 0 })
  })

  it('a down server sheds nothing; nothing moves when no server could take it', () => {
    expect(targets([server('a', 1, 0, 9, false), server('b', 1, 0, 1)])).toEqual({ a: 0, b: 0 })
    expect(targets([server('a', 0, 0, 9), server('b', 0, 0, 1)])).toEqual({ a: 0, b: 0 })
    expect(targets([server('a', 1, 0, 9, true, true), server('b', 1, 0, 1, false)])).toEqual({ a: 0, b: 0 })
  })

  it('an overloaded server (over maxConns) keeps what it has and takes no share of the rest', () => {
    expect(targets([server('a', 1, 0, 9, true, true), server('b', 1, 0, 1), server('c', 1, 0, 1)])).toEqual({ a: 0, b: 0, c: 0 })
    expect(targets([server('a', 1, 0, 9, true, true), server('b', 1, 0, 20), server('c', 1, 0, 1)])).toEqual({ a: 0, b: 9, c: 0 }) // the 21 movable split 10.5 each
  })

  it('drainedOnly (key or persistence placements): only drained servers shed', () => {
    expect(targets([server('a', 1, 0, 50), server('b', 1, 0, 0), server('c', 0, 0, 4)], true)).toEqual({ a: 0, b: 0, c: 4 })
  })
})
