// The per-connection access line. It runs once per connection on the hot path, where a pino call costs
// 2.5-4 µs (object walk plus a write per few lines), a third of the whole budget for a handed-off connection.
// So the line is built here as a string, in exactly the shape pino writes ({"level":"info","time":...,
// "pid":...,<fields>,"msg":"conn"}), and lines are batched and written once per event-loop turn to the
// logger's own destination, keeping them in order with every other pino line. A write costs a threadpool hop
// in sonic-boom, so lines go out in batches of FLUSH_BYTES, or FLUSH_MS after the first pending line.
import pino from 'pino'
import type { Logger } from '../log'

export interface AccessFields {
  readonly conn: number
  readonly client: string
  readonly route: string
  readonly svc: string
  readonly backend: string
  readonly method: string
  readonly target: string
  readonly host: string
  readonly outcome: string
  readonly us: number
}

export interface AccessExtra {
  readonly upstream?: string
  readonly bytesUp?: number
  readonly bytesDown?: number
  readonly err?: string
  readonly code?: string
  readonly reason?: string
  /** A connection that moved at a request boundary: `service/server` it came from, why, its id there. */
  readonly movedFrom?: string
  readonly moveReason?: string
  readonly prevConn?: number
}

interface Stream { write (s: string): unknown }

const FLUSH_BYTES = 16384
const FLUSH_MS = 100

export class AccessLog {
  readonly #log: Logger
  readonly #stream: Stream
  readonly #prefix: string
  #pending = ''
  #timer: NodeJS.Timeout | undefined
  readonly #flush = (): void => {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const s = this.#pending
    this.#pending = ''
    if (s !== '') this.#stream.write(s)
  }

  constructor (log: Logger) {
    this.#log = log
    this.#stream = (log as unknown as Record<symbol, Stream>)[pino.symbols.streamSym]!
    const level = (log.levels.labels[30] ?? 'info')
    const pid = JSON.stringify(process.pid)
    this.#prefix = `{"level":${JSON.stringify(level)},"time":`
    this.#pidPart = `,"pid":${pid}`
  }

  readonly #pidPart: string

  get enabled (): boolean { return this.#log.isLevelEnabled('info') }

  /** Hot path: a string concatenation and an array-free append. Client-supplied strings are JSON-escaped. */
  write (f: AccessFields, extra?: AccessExtra): void {
    let s = this.#prefix + Date.now() + this.#pidPart +
      ',"conn":' + f.conn +
      ',"client":"' + f.client +
      '","route":' + JSON.stringify(f.route) +
      ',"svc":' + JSON.stringify(f.svc) +
      ',"backend":' + JSON.stringify(f.backend) +
      ',"method":' + JSON.stringify(f.method) +
      ',"target":' + JSON.stringify(f.target) +
      ',"host":' + JSON.stringify(f.host) +
      ',"outcome":"' + f.outcome +
      '","us":' + f.us
    if (extra !== undefined) s += extraJson(extra)
    this.#pending += s + ',"msg":"conn"}\n'
    if (this.#pending.length >= FLUSH_BYTES) this.#flush()
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#flush, FLUSH_MS)
      this.#timer.unref()
    }
  }

  /** Writes what is pending now (shutdown). */
  flush (): void { this.#flush() }
}

function extraJson (e: AccessExtra): string {
  let s = ''
  if (e.upstream !== undefined) s += ',"upstream":' + JSON.stringify(e.upstream)
  if (e.bytesUp !== undefined) s += ',"bytesUp":' + e.bytesUp
  if (e.bytesDown !== undefined) s += ',"bytesDown":' + e.bytesDown
  if (e.err !== undefined) s += ',"err":' + JSON.stringify(e.err)
  if (e.code !== undefined) s += ',"code":' + JSON.stringify(e.code)
  if (e.reason !== undefined) s += ',"reason":' + JSON.stringify(e.reason)
  if (e.movedFrom !== undefined) s += ',"movedFrom":' + JSON.stringify(e.movedFrom)
  if (e.moveReason !== undefined) s += ',"moveReason":' + JSON.stringify(e.moveReason)
  if (e.prevConn !== undefined) s += ',"prevConn":' + e.prevConn
  return s
}
