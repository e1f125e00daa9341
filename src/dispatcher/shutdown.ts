// Graceful shutdown's wait, once the listeners are closed: every connection already accepted is answered
// or forwarded, and relayed connections get until the shutdown timeout to end by themselves.
//
// What the dispatcher still owns needs no timeout of its own: a head still arriving has its absolute
// deadline (limits.headerTimeoutMs, then 408), an answer drains for at most limits.drainTimeoutMs, and a
// connection queued on a busy handoff channel comes back within limits.channelTimeoutMs to be tried
// elsewhere. Relays have no such bound (a download may last hours): they get `timeoutMs`, then the caller
// closes them. Polled: shutdown happens once, and a 20 ms step costs nothing next to the deadlines.
import type { LimitsConfig } from '../config/types'
import type { DataPath } from './data-path'

const POLL_MS = 20

export interface ShutdownWait {
  /** Relayed connections still open when the wait ended (the caller resets them). */
  readonly relaysLeft: number
  /** Connections the dispatcher still owned (only when the safety bound below was reached). */
  readonly ownedLeft: number
}

/**
 * Resolves once the data path owns nothing (no head arriving, no answer draining, no forward in flight)
 * and either no relay is open or `timeoutMs` has passed since the call. A safety bound (the timeout plus
 * every per-connection deadline) ends the wait whatever happens.
 */
export async function waitForQuiet (path: DataPath, relays: () => number, timeoutMs: number, limits: LimitsConfig): Promise<ShutdownWait> {
  const start = Date.now()
  const relayDeadline = start + timeoutMs
  const hardDeadline = relayDeadline + limits.headerTimeoutMs + limits.drainTimeoutMs + limits.channelTimeoutMs
  for (;;) {
    const p = path.pending
    const owned = p.head + p.drain + path.forwarding
    const open = relays()
    const now = Date.now()
    if ((owned === 0 && (open === 0 || now >= relayDeadline)) || now >= hardDeadline) {
      return { relaysLeft: open, ownedLeft: owned }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}
