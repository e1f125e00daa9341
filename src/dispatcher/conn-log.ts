// How each connection the dispatcher finished with is accounted: one outcome counter (handoff, splice,
// pipe, status-400, ...) and, at level info, one access line (access-log.ts). Hot path.
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { targetName } from '../forward/method'
import type { ForwardStats } from '../forward/types'
import type { Logger } from '../log'
import { errnoName } from '../native/errno'
import { AccessLog } from './access-log'

const ETIMEDOUT = os.constants.errno.ETIMEDOUT
import type { Conn } from './conn'

export class ConnLog {
  readonly #access: AccessLog
  readonly #outcomes = new Map<string, number>()

  constructor (log: Logger) {
    this.#access = new AccessLog(log)
  }

  get outcomes (): ReadonlyMap<string, number> { return this.#outcomes }

  /** stats: a relayed connection's totals; code/reason: the dispatcher's own answer. */
  finish (conn: Conn, outcome: string, stats?: ForwardStats, code?: string, reason?: string): void {
    this.#outcomes.set(outcome, (this.#outcomes.get(outcome) ?? 0) + 1)
    const access = this.#access
    if (!access.enabled) return
    const fields = {
      conn: conn.id,
      client: `${conn.clientAddress}:${conn.clientPort}`,
      route: conn.route,
      svc: conn.service,
      backend: conn.server?.id ?? '',
      method: conn.head?.method ?? '',
      target: conn.head?.target ?? '',
      host: conn.head?.host ?? '',
      outcome,
      us: Math.round((performance.now() - conn.startedAt) * 1000),
    }
    if (stats === undefined && code === undefined) { access.write(fields); return }
    const server = conn.server
    access.write(fields, {
      ...(stats !== undefined && {
        bytesUp: stats.bytesUp,
        bytesDown: stats.bytesDown,
        ...(stats.errno !== 0 && { err: errnoName(stats.errno) }),
        ...(stats.errno !== 0 && { code: stats.errno === ETIMEDOUT ? 'BATON_ERR_IDLE_TIMEOUT' : 'BATON_ERR_RELAY_RESET' }),
        ...(server !== undefined && { upstream: targetName(server.target) }),
      }),
      ...(code !== undefined && { code, reason: reason ?? '' }),
    })
  }

  /** Writes pending access lines (shutdown). */
  flush (): void { this.#access.flush() }
}
