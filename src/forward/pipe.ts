// Forwarding method `pipe`: the relay in JavaScript (stream.pipeline both ways, half-close carried through).
// Used where the native relay did not load, or when a real server asks for it. Same fault semantics as
// `splice`: a connect that fails before any byte reached the client gives the client back (failed, with
// retryable set); after taken() everything ends in closed(), and a mid-stream error resets both sides.
import net from 'node:net'
import { pipeline } from 'node:stream'
import type pino from 'pino'

import { BatonError, BatonNativeError } from '../errors'
import { ERRNO, errnoName, errnoOf } from '../native/errno'
import { encodeProxyV1, encodeProxyV2 } from './proxy-protocol'
import type { ForwardCallbacks, ForwardConn, Forwarder, ForwardStats, ForwardTarget } from './types'

export interface RelayForwarderOptions {
  readonly connectTimeoutMs: number
  /** 0 = none. */
  readonly idleTimeoutMs: number
  /** Native relay only: pipe capacity per direction (F_SETPIPE_SZ). */
  readonly pipeSize?: number
  readonly logger?: pino.Logger
}

/** Local resource errors: another real server would fail the same way. */
const NOT_RETRYABLE = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'ECANCELED'])

/** The failed() error for a connect that ended with errno: CONNECT_TIMEOUT or CONNECT_FAILED. */
export function connectError (errno: number, target: string): BatonError {
  const name = errnoName(errno)
  const cause = new BatonNativeError('connect', errno, name)
  const retryable = !NOT_RETRYABLE.has(name)
  const source = retryable ? 'backend' : 'internal'
  if (name === 'ETIMEDOUT') {
    return new BatonError('BATON_ERR_CONNECT_TIMEOUT', `connect to ${target} timed out`, { cause, source, retryable })
  }
  return new BatonError('BATON_ERR_CONNECT_FAILED', `connect to ${target} failed: ${name}`, { cause, source, retryable })
}

export function targetName (t: ForwardTarget): string {
  return t.path ?? (t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`)
}

/** The PROXY header for a target, if it wants one. */
export function proxyPrefix (conn: ForwardConn, target: ForwardTarget): Buffer | undefined {
  if (target.proxyProtocol === 'v1') return encodeProxyV1(conn)
  if (target.proxyProtocol === 'v2') return encodeProxyV2(conn)
  return undefined
}

class PipeForwarder implements Forwarder {
  readonly method = 'pipe' as const
  readonly #opts: RelayForwarderOptions
  readonly #connecting = new Set<net.Socket>()
  readonly #relays = new Set<(errno: number) => void>()
  readonly #idle = new Set<() => void>()
  #closed = false

  constructor (opts: RelayForwarderOptions) {
    this.#opts = opts
  }

  get active (): number {
    return this.#relays.size
  }

  /** Callbacks never run inside forward(). The client is not touched until the upstream connected. */
  forward (conn: ForwardConn, target: ForwardTarget, cb: ForwardCallbacks): void {
    if (this.#closed) {
      process.nextTick(() => { cb.failed(connectError(ERRNO.ECANCELED ?? 125, targetName(target))) })
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
      cb.failed(connectError(errnoOf(err), targetName(target)))
    }
    upstream.once('error', onError)
    upstream.once('connect', () => {
      clearTimeout(timer)
      this.#connecting.delete(upstream)
      upstream.removeListener('error', onError)
      this.#adopt(conn, target, upstream, cb)
    })
  }

  #adopt (conn: ForwardConn, target: ForwardTarget, upstream: net.Socket, cb: ForwardCallbacks): void {
    let client: net.Socket
    try {
      client = conn.socket ?? new net.Socket({ fd: conn.fd, readable: true, writable: true, allowHalfOpen: true })
    } catch (err) {
      upstream.destroy()
      cb.failed(new BatonError('BATON_ERR_CONNECT_FAILED', `cannot adopt client fd ${conn.fd}`,
        { cause: err, source: 'internal', retryable: false }))
      return
    }
    client.allowHalfOpen = true
    cb.taken()
    this.#relay(client, upstream, conn, target, cb)
  }

  /** Both directions through stream.pipeline; closed() once both ended (or the first error reset both). */
  #relay (client: net.Socket, upstream: net.Socket, conn: ForwardConn, target: ForwardTarget, cb: ForwardCallbacks): void {
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
      if (errno !== 0) this.#opts.logger?.debug({ conn: conn.id, backend: target.id, err: errnoName(errno) }, 'relay reset')
      cb.closed(stats)
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
    const prefix = proxyPrefix(conn, target)
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
export function createPipeForwarder (opts: RelayForwarderOptions): Forwarder {
  return new PipeForwarder(opts)
}
