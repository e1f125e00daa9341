// Forwarding method `splice` (TCPSP): the default for `address: host:port` real servers when the addon
// loaded. The relay thread (native/src/splice_loop.cc) connects upstream natively, writes the PROXY header
// if asked, and splices both directions through pooled pipes, each held only while bytes are in flight (an
// idle keep-alive relay costs its two sockets, nothing more); the peeked head is still in the client's
// kernel queue, so it is relayed like any other byte. Per connection the JS side does one connect call,
// one Map entry, and handles two events (established -> taken(), then closed(); or failed()).
//
// A watched connection (conn.watch: keepAlive reroute) is framed on the relay thread (splice_watch.cc):
// each later request head comes here once (head), is sniffed and judged by the sink (nextRequest), and the
// verdict goes back (one event and one eventfd write per later request). A request that moves ends the
// relay with `returned`: closed(), then the sink's returned() with the client's fd (the relay's dup, the
// data path's now) and the bytes from that head on.
//
// The dispatcher's client fd is closed in one place: #onEstablished, once the relay works on its own dup.
import assert from 'node:assert'
import dns from 'node:dns'
import net from 'node:net'

import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import { errnoName } from '../native/errno'
import type { NativeRelay, RelayStats } from '../native/splice-relay'
import { REJECT, sniffHead } from '../request/sniff'
import { targetName } from './method'
import type { CheckAddress } from '../protocol/handoff'
import { connectError, proxyPrefix, relayCheckAddress } from './relay'
import type {
  ForwardConn, Forwarder, ForwarderOptions, ForwardServer, ForwardSink, ForwardTarget, HealthInput, MoveReason,
} from './types'

const DEFAULT_PIPE_SIZE = 256 * 1024
const PIPE_POOL_MAX = 64
const DNS_TTL_MS = 30_000
const ECANCELED = 125

export class SpliceForwarder<C extends ForwardConn<S>, S extends ForwardServer> implements Forwarder<C, S> {
  readonly method = 'splice' as const
  readonly reportsLiveness = false
  readonly #sink: ForwardSink<C, S>
  readonly #health: HealthInput<S>
  readonly #log: Logger
  readonly #relay: NativeRelay
  /** Submitted, not yet established: the dispatcher still owns the client. */
  readonly #connecting = new Map<number, C>()
  /** Taken: the relay owns the client until closed(). */
  readonly #live = new Map<number, C>()
  readonly #addrs = new Map<string, { addr: Buffer; expiresMs: number }>()
  /** Watched connections told to move, until they return (or end). */
  readonly #moving = new Map<number, MoveReason>()
  readonly #maxHeaderBytes: number
  #closed = false

  constructor (sink: ForwardSink<C, S>, health: HealthInput<S>, opts: ForwarderOptions, log: Logger) {
    this.#sink = sink
    this.#health = health
    this.#log = log
    this.#maxHeaderBytes = opts.maxHeaderBytes
    this.#relay = native.createRelay({
      pipeSize: opts.pipeSize ?? DEFAULT_PIPE_SIZE,
      connectTimeoutMs: opts.connectTimeoutMs,
      idleTimeoutMs: opts.idleTimeoutMs,
      pipePoolMax: PIPE_POOL_MAX,
      maxHeaderBytes: opts.maxHeaderBytes,
    }, {
      established: (id, origFd) => { this.#onEstablished(id, origFd) },
      failed: (id, errno) => { this.#onFailed(id, errno) },
      closed: (id, bytesUp, bytesDown, errno) => { this.#onClosed(id, bytesUp, bytesDown, errno) },
      head: (id, bytes) => { this.#onHead(id, bytes) },
      returned: (id, bytesUp, bytesDown, fd, consumed) => { this.#onReturned(id, bytesUp, bytesDown, fd, consumed) },
    })
  }

  get active (): number { return this.#live.size }

  /** Relay counters of the native thread (tests, metrics). */
  stats (): RelayStats { return this.#relay.stats() }

  attach (): void {}
  detach (): void {}
  checkAddress (server: S): CheckAddress { return relayCheckAddress(server.target) }

  /**
   * The sink is never called inside forward(). The client must be a native fd (method.ts picks splice only
   * with the addon, whose listener never makes a net.Socket of a client it forwards).
   */
  forward (conn: C): void {
    assert(conn.fd >= 0, 'splice forwards native fds only')
    const target = conn.server!.target
    if (this.#closed) return this.#failLater(conn, ECANCELED)
    const addr = this.#cachedAddr(target)
    if (addr !== undefined) return this.#submit(conn, addr)
    dns.lookup(target.host, (err, address) => {
      if (err !== null) {
        return this.#connectFailed(conn, new BatonError('BATON_ERR_CONNECT_FAILED',
          `cannot resolve ${target.host}: ${err.code ?? err.message}`, { cause: err, source: 'backend', retryable: true }))
      }
      const resolved = native.sockaddr(address, target.port)
      this.#addrs.set(`${target.host}\0${target.port}`, { addr: resolved, expiresMs: Date.now() + DNS_TTL_MS })
      if (this.#closed) return this.#failLater(conn, ECANCELED)
      this.#submit(conn, resolved)
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

  #submit (conn: C, addr: Buffer): void {
    // Bytes the dispatcher already read (a moved connection's next request) go right after the PROXY header.
    const consumed = conn.consumed === undefined || conn.consumed.length === 0 ? undefined : conn.consumed
    const rc = this.#relay.connect(conn.fd, addr, conn.id, proxyPrefix(conn, conn.server!.target), consumed, conn.watch)
    if (rc < 0) return this.#failLater(conn, -rc)
    this.#connecting.set(conn.id, conn)
  }

  #failLater (conn: C, errno: number): void {
    process.nextTick(() => { this.#connectFailed(conn, connectError(errno, targetName(conn.server!.target))) })
  }

  /** Health hears of failures the server caused (not local ones such as EMFILE); the data path of all. */
  #connectFailed (conn: C, err: BatonError): void {
    if (err.source === 'backend') this.#health.connectFailed(conn.server!, err)
    this.#sink.failed(conn, err)
  }

  #onEstablished (id: number, origFd: number): void {
    const conn = this.#connecting.get(id)
    this.#connecting.delete(id)
    try {
      if (conn !== undefined) {
        this.#live.set(id, conn)
        this.#sink.taken(conn)
      }
    } finally {
      native.close(origFd) // ours since taken(); the relay works on its own dup, so no FIN goes out
    }
  }

  #onFailed (id: number, errno: number): void {
    const conn = this.#connecting.get(id)
    this.#connecting.delete(id)
    if (conn === undefined) return
    this.#log.debug({ conn: id, backend: conn.server!.id, err: errnoName(errno) }, 'relay connect failed')
    this.#connectFailed(conn, connectError(errno, targetName(conn.server!.target)))
  }

  /** A watched connection's later head: sniffed, judged by the sink, answered. Hot for relayed keep-alive. */
  #onHead (id: number, bytes: Buffer): void {
    const conn = this.#live.get(id)
    if (conn === undefined) return this.#relay.verdict(id, true)
    let r = sniffHead(bytes, bytes.length, this.#maxHeaderBytes)
    if (r.kind === 'incomplete') r = REJECT.parse // the client ended inside a head
    const reason = this.#sink.nextRequest(conn, r) ?? (r.kind === 'reject' ? 'reroute' : undefined)
    if (reason !== undefined) this.#moving.set(id, reason)
    this.#relay.verdict(id, reason !== undefined)
  }

  /** The relay stopped before a request that moves: closed() for the relayed part, then the client goes back. */
  #onReturned (id: number, bytesUp: number, bytesDown: number, fd: number, consumed: Buffer | undefined): void {
    const conn = this.#live.get(id)
    const reason = this.#moving.get(id) ?? 'reroute'
    this.#live.delete(id)
    this.#moving.delete(id)
    if (conn === undefined || consumed === undefined) {
      native.close(fd)
      if (conn !== undefined) this.#sink.closed(conn, { bytesUp, bytesDown, errno: 0 })
      return
    }
    this.#sink.closed(conn, { bytesUp, bytesDown, errno: 0 })
    this.#sink.returned(conn.server!, {
      fd, socket: undefined, clientAddress: conn.clientAddress, clientPort: conn.clientPort,
      localAddress: conn.localAddress, localPort: conn.localPort,
    }, consumed, reason, conn.id)
  }

  #onClosed (id: number, bytesUp: number, bytesDown: number, errno: number): void {
    const conn = this.#live.get(id)
    this.#live.delete(id)
    this.#moving.delete(id)
    if (errno !== 0) this.#log.debug({ conn: id, err: errnoName(errno) }, 'relay reset')
    if (conn !== undefined) this.#sink.closed(conn, { bytesUp, bytesDown, errno })
  }

  /** Connects in flight fail (not retryable, the client goes back), relays are reset, the thread is joined. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#relay.close()
  }
}

/** The native splice relay; throws BATON_ERR_NATIVE_UNAVAILABLE when the addon did not load. */
export function createSpliceForwarder<C extends ForwardConn<S>, S extends ForwardServer> (sink: ForwardSink<C, S>,
  health: HealthInput<S>, opts: ForwarderOptions, log: Logger): SpliceForwarder<C, S> {
  if (!native.available) {
    throw new BatonError('BATON_ERR_NATIVE_UNAVAILABLE', 'the native addon did not load: no splice relay',
      { cause: native.loadError, source: 'internal' })
  }
  return new SpliceForwarder(sink, health, opts, log)
}
