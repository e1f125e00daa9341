// The data path, top to bottom: accept -> sniff -> route -> schedule -> forward. Each connection ends one of
// three ways: forwarded (handoff, or taken by a relay), answered with a status by the dispatcher, or closed
// because the client left. Everything that can fail funnels into answer() or gone(); nothing throws across
// an event boundary.
import { performance } from 'node:perf_hooks'
import type { ServerState } from '../cluster/types'
import type { Config } from '../config/types'
import { BatonError, type ErrorCode } from '../errors'
import { encodeHandoff, MAX_MESSAGE_BYTES } from '../forward/handoff-protocol'
import type { ForwardCallbacks, Forwarder, ForwardStats, ForwardTarget } from '../forward/types'
import type { Logger } from '../log'
import { native } from '../native/binding'
import type { PickContext } from '../schedulers/types'
import { AccessLog } from './access-log'
import { Conn } from './conn'
import { HeadWait, type HeadWaitResult } from './head-wait'
import { respond } from './respond'
import { sniffHead } from './sniff'
import type { Router } from './route'
import { keyFor, type ServiceEntry } from './services'
import type { RequestHead, SniffResult } from './types'
import type { Channels } from './channels'

/** How many servers one connection may try before the dispatcher answers 503 itself. */
const MAX_ATTEMPTS = 4
/** How long an answered client may keep sending before its socket is destroyed. */
const DRAIN_TIMEOUT_MS = 5000
/**
 * A relayed server whose connect failed is down this long, then gets new connections again (a passive check:
 * without it every new client would pay a refused or timed-out connect). Handoff servers are not held down:
 * their channel's state says whether they are up.
 */
const RELAY_HOLDDOWN_MS = 2000

class MutablePickContext implements PickContext {
  clientAddress = ''
  clientPort = 0
  hashKey: string | undefined = undefined
  avoid: ReadonlySet<string> | undefined = undefined
  now = 0
}

export interface DataPathParts {
  readonly config: Config
  readonly log: Logger
  readonly router: Router<ServiceEntry>
  readonly channels: Channels
  /** By method; splice is absent when the addon did not load. */
  readonly relays: { readonly splice: Forwarder | undefined; readonly pipe: Forwarder }
}

export class DataPath {
  readonly #p: DataPathParts
  readonly #ctx = new MutablePickContext()
  readonly #meta = Buffer.allocUnsafe(MAX_MESSAGE_BYTES)
  readonly #waitBuf: Buffer
  readonly #onWaitDone = (w: HeadWait, r: HeadWaitResult): void => this.#waitDone(w, r)
  readonly #waiting = new Map<HeadWait, Conn>()
  readonly #access: AccessLog
  #nextId = 1
  #lastNoServerLog = 0
  readonly #heldDown = new Set<ServerState>()
  readonly #outcomes = new Map<string, number>()

  constructor (parts: DataPathParts) {
    this.#p = parts
    this.#waitBuf = Buffer.allocUnsafe(parts.config.limits.maxHeaderBytes)
    this.#access = new AccessLog(parts.log)
  }

  /** Connections the dispatcher finished with, by outcome (handoff, splice, status-400, ...). */
  get outcomes (): ReadonlyMap<string, number> { return this.#outcomes }

  /** Connections whose head is still arriving. */
  get waiting (): number { return this.#waiting.size }

  newConn (fd: number, socket: Conn['socket'], address: string, port: number, localAddress: string,
    localPort: number): Conn {
    return new Conn(this.#nextId++, fd, socket, address, port, localAddress, localPort, performance.now())
  }

  /** Native accept callback body: `peeked` bytes of `buf` were peeked (0 = EOF, <0 = -errno). Hot path. */
  accepted (conn: Conn, buf: Buffer, peeked: number): void {
    if (peeked > 0) {
      const r = sniffHead(buf, peeked, this.#p.config.limits.maxHeaderBytes)
      if (r.kind === 'incomplete') this.#wait(conn, peeked)
      else this.sniffed(conn, r)
      return
    }
    if (peeked === -native.constants.EAGAIN) { this.#wait(conn, 0); return }
    this.gone(conn, peeked === 0 ? 'closed before sending' : native.errnoName(-peeked))
  }

  /** A sniff verdict for a connection the dispatcher owns. 'incomplete' is left to the caller. */
  sniffed (conn: Conn, r: SniffResult): void {
    if (r.kind === 'ok') this.route(conn, r.head)
    else if (r.kind === 'reject') {
      this.answer(conn, r.status, r.status === 431 ? 'BATON_ERR_HEADER_TOO_LARGE' : 'BATON_ERR_BAD_REQUEST', r.reason)
    }
  }

  route (conn: Conn, head: RequestHead): void {
    conn.head = head
    const m = this.#p.router.match(head)
    if (m === null) { this.answer(conn, 404, 'BATON_ERR_NO_ROUTE', 'no route matched'); return }
    conn.route = m.route.name
    conn.entry = m.route.service
    conn.hashKey = keyFor(conn.entry, head, conn.clientAddress, m.captures)
    this.#schedule(conn)
  }

  #schedule (conn: Conn): void {
    const pool = conn.entry!.pool
    const ctx = this.#ctx
    ctx.clientAddress = conn.clientAddress
    ctx.clientPort = conn.clientPort
    ctx.hashKey = conn.hashKey
    ctx.avoid = conn.avoid
    ctx.now = performance.now()
    const server = pool.pick(ctx)
    ctx.avoid = undefined
    if (server === null) { this.#noServer(conn); return }
    conn.server = server
    const method = this.#p.channels.methodOf(server)
    if (method === 'handoff') this.#handoff(conn, server)
    else this.#relay(conn, server, method)
  }

  #handoff (conn: Conn, server: ServerState): void {
    const ch = this.#p.channels.get(server)
    const len = encodeHandoff(this.#meta, conn.id, conn.service, conn.route)
    const rc = ch === undefined ? -native.constants.ECONNRESET : ch.send(conn.fd, this.#meta, len, conn)
    if (rc === 0) {
      native.close(conn.fd)
      this.handedOff(conn)
    } else if (rc < 0) {
      this.retry(conn, new BatonError('BATON_ERR_HANDOFF_FAILED', `handoff to ${server.id}: ${native.errnoName(-rc)}`,
        { source: 'backend', retryable: true }))
    } // rc === 1: queued; the channel calls handedOff() or retry() later
  }

  /** The back end owns the client now; the dispatcher keeps only the counters. */
  handedOff (conn: Conn): void {
    conn.fd = -1
    conn.entry!.pool.bind(conn.server!)
    this.#logConn(conn, 'handoff')
  }

  #relay (conn: Conn, server: ServerState, method: 'splice' | 'pipe'): void {
    const forwarder = method === 'splice' ? this.#p.relays.splice! : this.#p.relays.pipe
    const target = this.#p.channels.targetOf(server)
    forwarder.forward(conn, target, this.#relayCallbacks(conn, server, target, method))
  }

  #relayCallbacks (conn: Conn, server: ServerState, target: ForwardTarget, method: string): ForwardCallbacks {
    return {
      taken: () => {
        conn.fd = -1
        conn.socket = undefined
        conn.entry!.pool.bind(server)
      },
      failed: (err) => { this.retry(conn, err) },
      closed: (stats: ForwardStats) => {
        conn.entry!.pool.feedback(server, -1, 0, 1)
        this.#logConn(conn, method, stats, target)
      },
    }
  }

  /** Forwarding to conn.server failed before the client saw a byte: try another server, or answer. */
  retry (conn: Conn, err: BatonError): void {
    const server = conn.server!
    this.#p.log.warn({ conn: conn.id, svc: conn.service, backend: server.id, err: err.message, code: err.code },
      'forward failed')
    if (!err.retryable) { this.answer(conn, 502, err.code, err.message); return }
    if (this.#p.channels.methodOf(server) !== 'handoff') this.#holdDown(conn.entry!, server)
    conn.avoid ??= new Set()
    conn.avoid.add(server.id)
    conn.server = undefined
    if (conn.avoid.size >= MAX_ATTEMPTS) { this.#noServer(conn); return }
    this.#schedule(conn)
  }

  #holdDown (entry: ServiceEntry, server: ServerState): void {
    if (this.#heldDown.has(server)) return
    this.#heldDown.add(server)
    entry.pool.setUp(server, false)
    setTimeout(() => {
      this.#heldDown.delete(server)
      entry.pool.setUp(server, true)
    }, RELAY_HOLDDOWN_MS).unref()
  }

  #noServer (conn: Conn): void {
    const now = performance.now()
    if (now - this.#lastNoServerLog > 1000) {
      this.#lastNoServerLog = now
      this.#p.log.warn({ svc: conn.service, code: 'BATON_ERR_NO_SERVER' }, 'no real server available')
    }
    this.answer(conn, 503, 'BATON_ERR_NO_SERVER', 'no server available')
  }

  /** The dispatcher answers the client itself and closes it gracefully. */
  answer (conn: Conn, status: number, code: ErrorCode, reason: string): void {
    const fd = conn.fd
    const socket = conn.socket
    conn.fd = -1
    conn.socket = undefined
    respond(fd, socket, status, code, DRAIN_TIMEOUT_MS)
    this.#logConn(conn, `status-${status}`, undefined, undefined, code, reason)
  }

  /** The client left before the head was complete: close quietly. */
  gone (conn: Conn, why: string): void {
    if (conn.fd >= 0) native.close(conn.fd)
    conn.socket?.destroy()
    conn.fd = -1
    conn.socket = undefined
    this.#p.log.debug({ conn: conn.id, client: conn.clientAddress, why, code: 'BATON_ERR_CLIENT_GONE' }, 'client left')
  }

  #wait (conn: Conn, seen: number): void {
    const limits = this.#p.config.limits
    let w: HeadWait
    try {
      w = new HeadWait(conn.fd, seen, this.#waitBuf, limits.maxHeaderBytes, limits.headerTimeoutMs, this.#onWaitDone)
    } catch (err) {
      this.gone(conn, (err as Error).message)
      return
    }
    this.#waiting.set(w, conn)
  }

  #waitDone (w: HeadWait, r: HeadWaitResult): void {
    const conn = this.#waiting.get(w)!
    this.#waiting.delete(w)
    if (r.kind === 'timeout') this.answer(conn, 408, 'BATON_ERR_HEADER_TIMEOUT', 'head not complete in time')
    else if (r.kind === 'gone') this.gone(conn, 'closed mid-head')
    else this.sniffed(conn, r)
  }

  /** Shutdown: stop waiting for heads and close those clients. */
  close (): void {
    for (const [w, conn] of this.#waiting) {
      w.cancel()
      this.gone(conn, 'dispatcher closing')
    }
    this.#waiting.clear()
  }

  #logConn (conn: Conn, outcome: string, stats?: ForwardStats, target?: ForwardTarget, code?: string,
    reason?: string): void {
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
    access.write(fields, {
      ...(stats !== undefined && {
        bytesUp: stats.bytesUp,
        bytesDown: stats.bytesDown,
        ...(stats.errno !== 0 && { err: native.errnoName(stats.errno) }),
        ...(target !== undefined && { upstream: target.path ?? `${target.host}:${target.port}` }),
      }),
      ...(code !== undefined && { code, reason: reason ?? '' }),
    })
  }

  /** Writes pending access lines (shutdown). */
  flushLog (): void { this.#access.flush() }

}
