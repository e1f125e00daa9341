// How each connection the dispatcher finished with is accounted: one outcome counter (handoff, splice,
// pipe, status-400, ...) and, at level info, one access line (access-log.ts). Hot path.
import os from 'node:os'
import { performance } from 'node:perf_hooks'
import { targetName } from '../forward/method'
import type { ForwardStats } from '../forward/types'
import type { Logger } from '../log'
import { errnoName } from '../native/errno'
import { bucketOf } from '../protocol/buckets'
import { AccessLog } from './access-log'

const ETIMEDOUT = os.constants.errno.ETIMEDOUT
import type { Conn } from './conn'

/** Upper bounds (seconds) of the dispatch-time buckets: 50 µs to 1 s. */
const BOUNDS: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]

/**
 * Time from accept to handoff, relay start or the dispatcher's own answer, in fixed buckets: counts[i] for
 * s <= bounds[i], the last one for the rest (not cumulative). A typed-array increment costs ~30 ns where a
 * prom-client Histogram.observe costs ~220 ns; admin/metrics.ts turns it into a histogram at scrape time.
 */
export interface DispatchTimes {
  readonly bounds: readonly number[]
  readonly counts: Float64Array
  readonly sum: number
}

/** Bytes relayed for one service and server, summed as connections close. */
export interface RelayBytes { up: number; down: number }

export class ConnLog {
  readonly #access: AccessLog
  readonly #outcomes = new Map<string, number>()
  readonly #counts = new Float64Array(BOUNDS.length + 1)
  #sum = 0
  readonly #bytes = new Map<string, RelayBytes>()
  readonly #moves = new Map<string, number>()

  constructor (log: Logger) {
    this.#access = new AccessLog(log)
  }

  get outcomes (): ReadonlyMap<string, number> { return this.#outcomes }

  get dispatchTimes (): DispatchTimes { return { bounds: BOUNDS, counts: this.#counts, sum: this.#sum } }

  /** Keyed `service\0server`. */
  get relayBytes (): ReadonlyMap<string, RelayBytes> { return this.#bytes }

  /** Connections that moved at a request boundary, keyed `reason\0from service\0to service` (to: '' when answered). */
  get moves (): ReadonlyMap<string, number> { return this.#moves }

  /** The dispatcher is done with conn (handed off, relaying, or answered): one histogram sample. Hot path. */
  dispatched (conn: Conn): void {
    const s = (performance.now() - conn.startedAt) / 1000
    this.#counts[bucketOf(BOUNDS, s)]!++
    this.#sum += s
  }

  /**
   * stats: a relayed connection's totals (its dispatch time was taken when the relay started); without
   * stats the dispatcher's work ends here and its time is sampled. code/reason: the dispatcher's own answer.
   */
  finish (conn: Conn, outcome: string, stats?: ForwardStats, code?: string, reason?: string): void {
    this.#outcomes.set(outcome, (this.#outcomes.get(outcome) ?? 0) + 1)
    if (stats === undefined) this.dispatched(conn)
    else this.#addBytes(conn, stats)
    const moved = conn.moved
    if (moved !== undefined && stats === undefined) {
      const key = `${moved.reason}\0${moved.from.service}\0${conn.service}`
      this.#moves.set(key, (this.#moves.get(key) ?? 0) + 1)
    }
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
    if (stats === undefined && code === undefined && moved === undefined) { access.write(fields); return }
    const server = conn.server
    access.write(fields, {
      ...(moved !== undefined && { movedFrom: `${moved.from.service}/${moved.from.id}`, moveReason: moved.reason, prevConn: moved.prevId }),
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

  #addBytes (conn: Conn, stats: ForwardStats): void {
    const key = `${conn.service}\0${conn.server?.id ?? ''}`
    const b = this.#bytes.get(key)
    if (b === undefined) this.#bytes.set(key, { up: stats.bytesUp, down: stats.bytesDown })
    else { b.up += stats.bytesUp; b.down += stats.bytesDown }
  }

  /** Writes pending access lines (shutdown). */
  flush (): void { this.#access.flush() }
}
