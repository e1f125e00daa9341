// Forwarding method `pipe`: the relay in JavaScript (stream.pipeline both ways, half-close carried through).
// Used where the native addon did not load, or when a real server asks for it. Same fault semantics as
// `splice`: a connect that fails before any byte reached the client gives the client back (failed, with
// retryable set) and tells health; after taken() everything ends in closed(), and a mid-stream error resets
// both sides. The client's fd is closed in one place: its net.Socket, destroyed when the relay ends.
import net from 'node:net'
import { pipeline } from 'node:stream'

import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import { ERRNO, errnoName, errnoOf } from '../native/errno'
import { targetName } from './method'
import type { CheckAddress } from '../protocol/handoff'
import { WatchedPipe, type WatchEnd } from './pipe-watch'
import { connectError, proxyPrefix, relayCheckAddress } from './relay'
import type { ForwardConn, Forwarder, ForwarderOptions, ForwardServer, ForwardSink, ForwardStats, HealthInput } from './types'

class PipeForwarder<C extends ForwardConn<S>, S extends ForwardServer> implements Forwarder<C, S> {
  readonly method = 'pipe' as const
  readonly reportsLiveness = false
  readonly #sink: ForwardSink<C, S>
  readonly #health: HealthInput<S>
  readonly #opts: ForwarderOptions
  readonly #log: Logger
  readonly #connecting = new Set<net.Socket>()
  readonly #relays = new Set<(errno: number) => void>()
  readonly #idle = new Set<() => void>()
  #closed = false

  constructor (sink: ForwardSink<C, S>, health: HealthInput<S>, opts: ForwarderOptions, log: Logger) {
    this.#sink = sink
    this.#health = health
    this.#opts = opts
    this.#log = log
  }

  attach (): void {}
  detach (): void {}
  checkAddress (server: S): CheckAddress { return relayCheckAddress(server.target) }

  get active (): number {
    return this.#relays.size
  }

  /** The sink is never called inside forward(). The client is not touched until the upstream connected. */
  forward (conn: C): void {
    const target = conn.server!.target
    if (this.#closed) {
      process.nextTick(() => { this.#sink.failed(conn, connectError(ERRNO.ECANCELED ?? 125, targetName(target))) })
      return
    }
    const upstream = target.path !== undefined
      ? net.connect({ path: target.path, allowHalfOpen: true })
      : net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    this.#connecting.add(upstream)
    const timer = setTimeout(() => {
      upstream.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }))
    }, this.#opts.connectTimeoutMs)
    const onError = (err: Error): void => {
      clearTimeout(timer)
      this.#connecting.delete(upstream)
      upstream.destroy()
      this.#connectFailed(conn, connectError(errnoOf(err), targetName(target)))
    }
    upstream.once('error', onError)
    upstream.once('connect', () => {
      clearTimeout(timer)
      this.#connecting.delete(upstream)
      upstream.removeListener('error', onError)
      this.#adopt(conn, upstream)
    })
  }

  /** Health hears of failures the server caused (not local ones such as EMFILE); the data path of all. */
  #connectFailed (conn: C, err: BatonError): void {
    if (err.source === 'backend') this.#health.connectFailed(conn.server!, err)
    this.#sink.failed(conn, err)
  }

  #adopt (conn: C, upstream: net.Socket): void {
    let client: net.Socket
    try {
      client = conn.socket ?? new net.Socket({ fd: conn.fd, readable: true, writable: true, allowHalfOpen: true })
    } catch (err) {
      upstream.destroy()
      this.#sink.failed(conn, new BatonError('BATON_ERR_CONNECT_FAILED', `cannot adopt client fd ${conn.fd}`,
        { cause: err, source: 'internal', retryable: false }))
      return
    }
    client.allowHalfOpen = true
    this.#sink.taken(conn)
    if (conn.watch) this.#relayWatched(client, upstream, conn)
    else this.#relay(client, upstream, conn)
  }

  /** A watched connection (pipe-watch.ts): framed both ways; it may end by returning the client. */
  #relayWatched (client: net.Socket, upstream: net.Socket, conn: C): void {
    const prefix = proxyPrefix(conn, conn.server!.target)
    if (prefix !== undefined) upstream.write(prefix)
    const onEnd = ({ stats, moved }: WatchEnd): void => {
      this.#relays.delete(abort)
      if (stats.errno !== 0) this.#log.debug({ conn: conn.id, backend: conn.server!.id, err: errnoName(stats.errno) }, 'relay reset')
      this.#sink.closed(conn, stats)
      if (moved !== undefined) {
        const fd = this.#takeFd(client, conn)
        this.#sink.returned(conn.server!, {
          fd, socket: fd >= 0 ? undefined : client, clientAddress: conn.clientAddress, clientPort: conn.clientPort,
          localAddress: conn.localAddress, localPort: conn.localPort,
        }, moved.consumed, moved.reason, conn.id)
      }
      if (this.#relays.size === 0) for (const fn of this.#idle) fn()
    }
    let relay: WatchedPipe<C, S> | undefined
    const abort = (errno: number): void => { relay?.abort(errno) }
    this.#relays.add(abort) // before the relay exists: it may end inside its constructor (bad consumed bytes)
    relay = new WatchedPipe(client, upstream, conn, this.#sink, this.#opts.maxHeaderBytes, this.#opts.idleTimeoutMs, onEnd)
  }

  /**
   * A client that came as a native fd goes back as one (a dup; its net.Socket is destroyed, which closes
   * only libuv's copy), so the data path can splice or hand it off next. A client that came as a net.Socket
   * (no addon) goes back as it is: -1. WatchedPipe already moved every byte libuv had read into `consumed`.
   */
  #takeFd (client: net.Socket, conn: C): number {
    if (conn.fd < 0 || !native.available) return -1
    const handleFd = (client as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1
    const fd = handleFd >= 0 ? native.dup(handleFd) : -1
    if (fd >= 0) client.destroy()
    return fd
  }

  /** Both directions through stream.pipeline; closed() once both ended (or the first error reset both). */
  #relay (client: net.Socket, upstream: net.Socket, conn: C): void {
    const consumed = conn.consumed?.length ?? 0
    const readStart = client.bytesRead
    let errno = 0
    let pending = 2
    const abort = (code: number): void => {
      if (errno !== 0) return
      errno = code
      for (const s of [client, upstream]) {
        try {
          s.resetAndDestroy() // SO_LINGER{1,0}: the peer sees a reset, not a clean (truncated) end
        } catch {
          s.destroy() // not TCP (Unix stream upstream)
        }
      }
    }
    const done = (err: Error | null | undefined): void => {
      if (err != null) abort(errnoOf(err))
      if (--pending > 0) return
      client.destroy()
      upstream.destroy()
      this.#relays.delete(abort)
      const stats: ForwardStats = {
        bytesUp: consumed + client.bytesRead - readStart, bytesDown: upstream.bytesRead, errno,
      }
      if (errno !== 0) this.#log.debug({ conn: conn.id, backend: conn.server!.id, err: errnoName(errno) }, 'relay reset')
      this.#sink.closed(conn, stats)
      if (this.#relays.size === 0) for (const fn of this.#idle) fn()
    }
    this.#relays.add(abort)
    // Registered before pipeline's own listeners, so the peer is reset before pipeline destroys it gently.
    client.on('error', (err) => { abort(errnoOf(err)) })
    upstream.on('error', (err) => { abort(errnoOf(err)) })
    if (this.#opts.idleTimeoutMs > 0) {
      const onIdle = (): void => { abort(ERRNO.ETIMEDOUT ?? 110) }
      client.setTimeout(this.#opts.idleTimeoutMs, onIdle)
      upstream.setTimeout(this.#opts.idleTimeoutMs, onIdle)
    }
    const prefix = proxyPrefix(conn, conn.server!.target)
    if (prefix !== undefined) upstream.write(prefix)
    if (consumed > 0 && conn.consumed !== undefined) upstream.write(conn.consumed)
    pipeline(client, upstream, done)
    pipeline(upstream, client, done)
  }

  /** Connects in flight fail (not retryable); relays are reset; resolves once every closed() ran. */
  async close (): Promise<void> {
    this.#closed = true
    for (const s of this.#connecting) s.destroy(Object.assign(new Error('forwarder closed'), { code: 'ECANCELED' }))
    if (this.#relays.size === 0) return
    const idle = new Promise<void>((resolve) => { this.#idle.add(resolve) })
    for (const abort of [...this.#relays]) abort(ERRNO.ECANCELED ?? 125)
    await idle
  }
}

/** The JavaScript relay. Handles conn.fd >= 0 (adopted after the connect) and conn.socket (+ conn.consumed). */
export function createPipeForwarder<C extends ForwardConn<S>, S extends ForwardServer> (sink: ForwardSink<C, S>,
  health: HealthInput<S>, opts: ForwarderOptions, log: Logger): Forwarder<C, S> {
  return new PipeForwarder(sink, health, opts, log)
}
