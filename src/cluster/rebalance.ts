// Rebalancing kept-alive connections (docs/keep-alive.md). A connection stays where it was handed until it
// ends, so after a server is added, its weight rises, or a server is drained, the counters show the old
// distribution for as long as clients keep their connections open (kubernetes#38456, haproxy#969). Each
// server's share of the service's open connections is its effective weight's share of the total; a server
// that holds more than its share plus a tolerance is asked to let the excess move at their next request
// boundary (its back end hands them back; a relay returns them), where the scheduler places them anew.
// Pure: reads the counters and weights, decides, keeps nothing.
import type { ServerState } from './types'

/** Below this many connections over its share, a server is left alone (moves cost more than they gain). */
const MIN_EXCESS = 2
/** And below this fraction of its share. */
const TOLERANCE = 0.1

/**
 * How many open connections each server of the service should shed: 0 for those within their share. A
 * server that is down sheds nothing (its connections are gone or its process decides); one that is up
 * with weight 0 (drained, quiesced) sheds them all. Nothing moves when no server could take them.
 *
 * drainedOnly: the service places connections by a key or a persistence template (sh, dh, lblc, mh, ...,
 * `persistent:`), so its distribution is not its weights' and moving a connection would only send it back
 * to the server its key names: only drained servers shed.
 */
export function sheddingTargets (servers: readonly ServerState[], out: Map<ServerState, number>, drainedOnly = false): void {
  let total = 0
  let weights = 0
  for (const s of servers) {
    if (!s.up || s.overloaded) continue // what these hold stays where it is
    total += s.conns.active + s.conns.inactive
    if (s.weight > 0) weights += s.weight
  }
  for (const s of servers) {
    const held = s.conns.active + s.conns.inactive
    // Down: its connections are gone or its process decides. Overloaded (over maxConns): like LVS, it takes
    // nothing new but keeps what it has.
    if (weights === 0 || !s.up || s.overloaded || held === 0) { out.set(s, 0); continue }
    const share = s.weight > 0 ? total * s.weight / weights : 0
    if (drainedOnly && s.weight > 0) { out.set(s, 0); continue }
    const excess = held - share
    // A server whose share is 0 (drained) sheds its last connection too; others only a real excess.
    out.set(s, share === 0 ? held : excess >= MIN_EXCESS && excess > share * TOLERANCE ? Math.floor(excess) : 0)
  }
}
