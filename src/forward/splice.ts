// Forwarding method `splice` (TCPSP): the default for `address: host:port` real servers when the addon
// loaded. The relay thread (native/src/splice_loop.cc) connects upstream natively, writes the PROXY header
// if asked, and splices both directions through pooled pipes, each held only while bytes are in flight (an
// idle keep-alive relay costs its two sockets, nothing more); the peeked head is still in the client's
// kernel queue, so it is relayed like any other byte. Per connection the JS side does one connect call,
// one Map entry, and handles two events (established -> taken(), then closed() or failed()).
import dns from 'node:dns'
import net from 'node:net'

import { BatonError } from '../errors'
import { native } from '../native/binding'
import { errnoName } from '../native/errno'
import type { NativeRelay } from '../native/splice-relay'
import { connectError, createPipeForwarder, proxyPrefix, targetName } from './pipe'
import type { RelayForwarderOptions } from './pipe'
import type { ForwardCallbacks, ForwardConn, Forwarder, ForwardTarget } from './types'

export type { RelayForwarderOptions } from './pipe'

const DEFAULT_PIPE_SIZE = 256 * 1024
const PIPE_POOL_MAX = 64
const DNS_TTL_MS = 30_000
const ECANCELED = 125

class SpliceForwarder implements Forwarder {
  readonly method = 'splice' as const
  readonly #opts: RelayForwarderOptions
  readonly #relay: NativeRelay
  /** Submitted, not yet established: the dispatcher still owns the client. */
  readonly #connecting = new Map<number, ForwardCallbacks>()
  readonly #targets = new Map<number, ForwardTarget>()
  /** Taken: the relay owns the client until closed(). */
  readonly #live = new Map<number, ForwardCallbacks>()
  readonly #addrs = new Map<string, { addr: Buffer; expiresMs: number }>()
  #fallback: Forwarder | undefined
  #closed = false

  constructor (opts: RelayForwarderOptions) {
    this.#opts = opts
    this.#relay = native.createRelay({
      pipeSize: opts.pipeSize ?? DEFAULT_PIPE_SIZE,
      connectTimeoutMs: opts.connectTimeoutMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      pipePoolMax: PIPE_POOL_MAX,
    }, {
      established: (id, origFd) => { this.#onEstablished(id, origFd) },
      failed: (id, errno) => { this.#onFailed(id, errno) },
      closed: (id, bytesUp, bytesDown, errno) => { this.#onClosed(id, bytesUp, bytesDown, errno) },
    })
  }

  get active (): number {
    return this.#live.size + (this.#fallback?.active ?? 0)
  }

  /** Relay counters of the native thread (tests, metrics). */
  stats (): ReturnType<NativeRelay['stats']> {
    return this.#relay.stats()
  }

  /**
   * Callbacks never run inside forward(). conn.fd >= 0 is relayed natively; a client that is already a
   * net.Socket (conn.fd < 0) goes through the JS relay, since libuv may have read from it.
   */
  forward (conn: ForwardConn, target: ForwardTarget, cb: ForwardCallbacks): void {
    if (this.#closed) return this.#failLater(cb, ECANCELED, target)
    if (conn.fd < 0) {
      this.#fallback ??= createPipeForwarder(this.#opts)
      return this.#fallback.forward(conn, target, cb)
    }
    const addr = this.#cachedAddr(target)
    if (addr !== undefined) return this.#submit(conn, target, cb, addr)
    dns.lookup(target.host, (err, address) => {
      if (err !== null) return cb.failed(new BatonError('BATON_ERR_CONNECT_FAILED',
        `cannot resolve ${target.host}: ${err.code ?? err.message}`, { cause: err, source: 'backend', retryable: true }))
      const resolved = native.sockaddr(address, target.port)
      this.#addrs.set(`${target.host}\0${target.port}`, { addr: resolved, expiresMs: Date.now() + DNS_TTL_MS })
      if (this.#closed) return this.#failLater(cb, ECANCELED, target)
      this.#submit(conn, target, cb, resolved)
    })
  }

  /** sockaddr for numeric hosts and paths (kept), resolved names until their TTL; undefined = look up. */
  #cachedAddr (target: ForwardTarget): Buffer | undefined {
    const key = target.path ?? `${target.host}\0${target.port}`
    const hit = this.#addrs.get(key)
    if (hit !== undefined && hit.expiresMs > Date.now()) return hit.addr
    if (target.path === undefined && net.isIP(target.host) === 0) return undefined
    const addr = target.path !== undefined ? native.sockaddrUnix(target.path) : native.sockaddr(target.host, target.port)
    this.#addrs.set(key, { addr, expiresMs: Infinity })
    return addr
  }

  #submit (conn: ForwardConn, target: ForwardTarget, cb: ForwardCallbacks, addr: Buffer): void {
    const header = proxyPrefix(conn, target)
    // Bytes the dispatcher already read go right after the PROXY header (normally none on this path).
    const prefix = conn.consumed === undefined || conn.consumed.length === 0
      ? header
      : header === undefined ? conn.consumed : Buffer.concat([header, conn.consumed])
    const rc = this.#relay.connect(conn.fd, addr, conn.id, prefix)
    if (rc < 0) return this.#failLater(cb, -rc, target)
    this.#connecting.set(conn.id, cb)
    this.#targets.set(conn.id, target)
  }

  #failLater (cb: ForwardCallbacks, errno: number, target: ForwardTarget): void {
    process.nextTick(() => { cb.failed(connectError(errno, targetName(target))) })
  }

  #onEstablished (id: number, origFd: number): void {
    const cb = this.#connecting.get(id) ?? NOOP
    this.#connecting.delete(id)
    this.#targets.delete(id)
    this.#live.set(id, cb)
    try {
      cb.taken()
    } finally {
      native.close(origFd) // ours since taken(); the relay works on its own dup, so no FIN goes out
    }
  }

  #onFailed (id: number, errno: number): void {
    const cb = this.#connecting.get(id)
    const target = this.#targets.get(id)
    this.#connecting.delete(id)
    this.#targets.delete(id)
    if (cb === undefined || target === undefined) return
    this.#opts.logger?.debug({ conn: id, backend: target.id, err: errnoName(errno) }, 'relay connect failed')
    cb.failed(connectError(errno, targetName(target)))
  }

  #onClosed (id: number, bytesUp: number, bytesDown: number, errno: number): void {
    const cb = this.#live.get(id)
    this.#live.delete(id)
    if (errno !== 0) this.#opts.logger?.debug({ conn: id, err: errnoName(errno) }, 'relay reset')
    cb?.closed({ bytesUp, bytesDown, errno })
  }

  /** Connects in flight fail (not retryable, the client goes back), relays are reset, the thread is joined. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#relay.close()
    await this.#fallback?.close()
  }
}

const NOOP: ForwardCallbacks = { taken () {}, failed () {}, closed () {} }

/** The native splice relay; throws BATON_ERR_NATIVE_UNAVAILABLE when the addon did not load. */
export function createSpliceForwarder (opts: RelayForwarderOptions): Forwarder & { stats: SpliceForwarder['stats'] } {
  if (!native.available) {
    throw new BatonError('BATON_ERR_NATIVE_UNAVAILABLE', 'the native addon did not load: no splice relay',
      { cause: native.loadError, source: 'internal' })
  }
  return new SpliceForwarder(opts)
}
