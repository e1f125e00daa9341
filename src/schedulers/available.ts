// Shared filters and small helpers for every scheduler: the one availability rule, the LVS overhead,
// config-order normalisation and gcd. Schedulers whose kernel counterpart filters differently (wlc's
// later candidates, lblc's cached entry, dh/sh/mh lookups) say so in their own file.
import assert from 'node:assert'
import type { PickContext, RealServer } from './types'

/**
 * IPVS "may take a new connection": up, weight > 0, OVERLOAD clear, not in ctx.avoid.
 * `up` and `avoid` have no kernel counterpart: a down or avoided server is treated like a server that
 * is not AVAILABLE. Hot path: no allocation.
 */
export function isAvailable (s: RealServer, ctx: PickContext): boolean {
  return s.up && s.weight > 0 && !s.overloaded && !isAvoided(s, ctx)
}

/** Down or avoided: the Baton-only half of isAvailable(), for schedulers that filter the rest themselves. */
export function isSkipped (s: RealServer, ctx: PickContext): boolean {
  return !s.up || isAvoided(s, ctx)
}

export function isAvoided (s: RealServer, ctx: PickContext): boolean {
  const avoid = ctx.avoid
  return avoid !== undefined && avoid.size !== 0 && avoid.has(s.id)
}

/** ip_vs_dest_conn_overhead(): active connections weigh 256 times an inactive one. */
export function overhead (s: RealServer): number {
  return s.conns.active * 256 + s.conns.inactive
}

/**
 * A copy of `servers` sorted by RealServer.index: Baton iterates in config order where the kernel
 * iterates newest-added first. Asserts that indexes are unique. Config time / update() only.
 */
export function inConfigOrder (servers: readonly RealServer[]): RealServer[] {
  const list = servers.slice().sort((a, b) => a.index - b.index)
  for (let i = 1; i < list.length; i++) {
    assert.ok(list[i - 1]!.index !== list[i]!.index, `duplicate RealServer.index ${list[i]!.index}`)
  }
  return list
}

export function gcd (a: number, b: number): number {
  while (b !== 0) {
    const t = a % b
    a = b
    b = t
  }
  return a
}
