// The data path, top to bottom: accept -> sniff -> route -> schedule -> forward. Each connection ends one of
// three ways: forwarded (handed off, or taken by a relay), answered with a status by the dispatcher, or closed
// because the client left. Everything that can fail funnels into answer() or gone(); nothing throws across
// an event boundary.
//
// Entries: accept() (native listener), acceptSocket() (JS listener), close(). Forwarding
// completions come back through the ForwardSink this class implements; the data path never asks which
// method a server uses. Counters move here (bind at handoff or relay start, LVS's bind; feedback after),
// and only here.
import { performance } from 'node:perf_hooks'
import type net from 'node:net'
import type { Cluster } from '../cluster/cluster'
import type { Service } from '../cluster/service'
import type { ServerState } from '../cluster/types'
import type { LimitsConfig } from '../config/types'
import type { BatonError, ErrorCode } from '../errors'
import type { ForwardSink, ForwardStats, MoveReason, ReturnedClient } from '../forward/types'
import type { Logger } from '../log'
import { native } from '../native/binding'
import { extractKey } from '../request/keys'
import type { Router } from '../request/route'
import { sniffHead } from '../request/sniff'
import type { RequestHead, SniffResult } from '../request/types'
import type { PickContext } from '../schedulers/types'
import { ConnLog, type DispatchTimes, type RelayBytes } from './conn-log'
import { Conn } from './conn'
import { HeadWait, SocketHeadWait, type HeadWaitResult } from './head-wait'
import { PendingSet, type PendingCounts, type PendingEntry } from './pending'
import { respond } from './respond'

/** How many servers one connection may try before the dispatcher answers 503 itself. */
const MAX_ATTEMPTS = 4

/** What a reload swaps atomically for the next connection. */
export interface Routing {
  readonly router: Router<Service>
  readonly limits: LimitsConfig
}

/** Where a listener accepted a connection. */
export interface LocalEnd {
  readonly host: string
  readonly port: number
}

/** What the data path calls to forward: the forwarder set, which binds each server to its method. */
export interface ServerForwarder {
  /** conn.server is set; exactly one sink completion follows (see ForwardSink). */
  forward (conn: Conn): void
}

class MutablePickContext implements PickContext {
  clientAddress = ''
  clientPort = 0
  hashKey: string | undefined = undefined
  avoid: ReadonlySet<string> | undefined = undefined
  now = 0
}

export class DataPath implements ForwardSink<Conn, ServerState> {
  readonly #log: Logger
  readonly #cluster: Cluster
  readonly #forwarder: ServerForwarder
  readonly #ctx = new MutablePickContext()
  readonly #onWaitDone = (w: HeadWait | SocketHeadWait, r: HeadWaitResult): void => { this.#waitDone(w, r) }
  /** Heads arriving, with their entry in #pending. */
  readonly #waiting = new Map<HeadWait | SocketHeadWait, { readonly conn: Conn; readonly entry: PendingEntry }>()
  readonly #pending: PendingSet
  readonly #connLog: ConnLog
  #routing: Routing
  #waitBuf: Buffer
  #nextId = 1
  #lastNoServerLog = 0
  /** Relayed servers over their share: how many more of their kept-alive connections should move (setShedding). */
  readonly #shed = new Map<ServerState, number>()
  /** Connections given to a forwarder that has not completed yet (a handoff queued on a busy channel, a connect). */
  #forwarding = 0

  /** makeForwarder builds the forwarder set with this data path as its sink. */
  constructor (log: Logger, cluster: Cluster, routing: Routing,
    makeForwarder: (sink: ForwardSink<Conn, ServerState>) => ServerForwarder) {
    this.#log = log
    this.#cluster = cluster
    this.#routing = routing
    this.#waitBuf = Buffer.allocUnsafe(routing.limits.maxHeaderBytes)
    this.#pending = new PendingSet(routing.limits.maxPendingConns)
    this.#connLog = new ConnLog(log)
    this.#forwarder = makeForwarder(this)
  }

  /** Connections the dispatcher finished with, by outcome (handoff, splice, status-400, ...). */
  get outcomes (): ReadonlyMap<string, number> { return this.#connLog.outcomes }

  get dispatchTimes (): DispatchTimes { return this.#connLog.dispatchTimes }

  get relayBytes (): ReadonlyMap<string, RelayBytes> { return this.#connLog.relayBytes }

  /** Connections that moved at a request boundary, keyed `reason\0from service\0to service`. */
  get moves (): ReadonlyMap<string, number> { return this.#connLog.moves }

  /** Connections the dispatcher owns now, by state (heads arriving, answers draining), and how many were shed. */
  get pending (): PendingCounts { return this.#pending.counts }

  get routing (): Routing { return this.#routing }

  /** Connections with a forwarder and no completion yet (graceful shutdown waits for them). */
  get forwarding (): number { return this.#forwarding }

  /** Reload: routes and limits for every connection accepted from now on. Connections in flight keep theirs. */
  setRouting (routing: Routing): void {
    this.#routing = routing
    this.#pending.setMax(routing.limits.maxPendingConns)
    if (routing.limits.maxHeaderBytes !== this.#waitBuf.length) this.#waitBuf = Buffer.allocUnsafe(routing.limits.maxHeaderBytes)
  }

  /**
   * Native listener entry: the dispatcher owns `fd`; `peeked` bytes of `buf` were peeked (0 = EOF,
   * <0 = -errno). Hot path.
   */
  accept (fd: number, buf: Buffer, peeked: number, address: string, port: number, local: LocalEnd): void {
    const conn = new Conn(this.#nextId++, fd, undefined, address, port, local.host, local.port, performance.now())
    if (peeked > 0) {
      const r = sniffHead(buf, peeked, this.#routing.limits.maxHeaderBytes)
      if (r.kind === 'incomplete') this.#wait(conn, peeked)
      else this.#sniffed(conn, r)
      return
    }
    if (peeked === -native.constants.EAGAIN) { this.#wait(conn, 0); return }
    this.#gone(conn, peeked === 0 ? 'closed before sending' : native.errnoName(-peeked))
  }

  /**
   * JS listener entry (no addon): the dispatcher owns `socket` from here and reads the head from it (bytes
   * read are kept and forwarded first).
   */
  acceptSocket (socket: net.Socket, local: LocalEnd): void {
    const conn = new Conn(this.#nextId++, -1, socket, socket.remoteAddress ?? '', socket.remotePort ?? 0,
      local.host, local.port, performance.now())
    const limits = this.#routing.limits
    this.#hold(conn, new SocketHeadWait(socket, limits.maxHeaderBytes, limits.headerTimeoutMs, this.#onWaitDone))
  }

  #sniffed (conn: Conn, r: SniffResult): void {
    if (r.kind === 'ok') this.#route(conn, r.head)
    else if (r.kind === 'reject') {
      this.#answer(conn, r.status, r.status === 431 ? 'BATON_ERR_HEADER_TOO_LARGE' : 'BATON_ERR_BAD_REQUEST', r.reason)
    }
  }

  #route (conn: Conn, head: RequestHead): void {
    conn.head = head
    const m = this.#routing.router.match(head)
    if (m === null) { this.#answer(conn, 404, 'BATON_ERR_NO_ROUTE', 'no route matched'); return }
    const svc = m.route.service
    conn.route = m.route.name
    conn.svc = svc
    conn.watch = svc.config.keepAlive === 'reroute'
    conn.hashKey = svc.usesKey ? extractKey(svc.key, head, conn.clientAddress, m.captures) : undefined
    this.#schedule(conn)
  }

  #schedule (conn: Conn): void {
    const ctx = this.#ctx
    ctx.clientAddress = conn.clientAddress
    ctx.clientPort = conn.clientPort
    ctx.hashKey = conn.hashKey
    ctx.avoid = conn.avoid
    ctx.now = performance.now()
    const svc = conn.svc!
    let server = svc.pick(ctx) ?? svc.pickFallback(conn.avoid)
    if (server === null && conn.moved?.reason === 'rebalance' && conn.avoid?.size === 1 && conn.avoid.has(conn.moved.from.id)) {
      // Shedding prefers another server, but the one it came from is better than none.
      conn.avoid = ctx.avoid = undefined
      server = svc.pick(ctx) ?? svc.pickFallback(undefined)
    }
    ctx.avoid = undefined
    if (server === null) { this.#noServer(conn); return }
    conn.server = server
    this.#forwarding++
    this.#forwarder.forward(conn)
  }

  // ForwardSink: completions of every forwarding method.

  handedOff (conn: Conn): void {
    this.#forwarding--
    conn.release()
    conn.svc!.bind(conn.server!)
    this.#connLog.finish(conn, conn.server!.target.method)
  }

  taken (conn: Conn): void {
    this.#forwarding--
    conn.release()
    conn.svc!.bind(conn.server!)
    this.#connLog.dispatched(conn)
  }

  closed (conn: Conn, stats: ForwardStats): void {
    conn.svc!.feedback(conn.server!, -1, 0, 1)
    this.#connLog.finish(conn, conn.server!.target.method, stats)
  }

  /** Forwarding to conn.server failed before the client saw a byte: try another server, or answer. */
  failed (conn: Conn, err: BatonError): void {
    this.#forwarding--
    const server = conn.server!
    this.#log.warn({ conn: conn.id, svc: conn.service, backend: server.id, err: err.message, code: err.code },
      'forward failed')
    if (!err.retryable) { this.#answer(conn, 502, err.code, err.message); return }
    conn.avoid ??= new Set()
    conn.avoid.add(server.id)
    conn.server = undefined
    if (conn.avoid.size >= MAX_ATTEMPTS) { this.#noServer(conn); return }
    this.#schedule(conn)
  }

  /** Back-end reports; a server that left (reload, admin) still counts its last connections down. */
  feedback (server: ServerState, dActive: number, dInactive: number, closed: number): void {
    this.#cluster.service(server.service)?.feedback(server, dActive, dInactive, closed)
  }

  lost (server: ServerState): void {
    this.#cluster.service(server.service)?.reset(server)
  }

  /** A relay read a later request's head: it stays unless it routes to another service or is refused. Hot for relays. */
  nextRequest (conn: Conn, r: SniffResult): MoveReason | undefined {
    if (r.kind !== 'ok') return 'reroute'
    const m = this.#routing.router.match(r.head)
    if (m === null || m.route.service !== conn.svc) return 'reroute'
    const server = conn.server!
    if (!server.attached) return 'rebalance' // the server was removed: its connections go elsewhere
    const shed = this.#shed.get(server)
    if (shed === undefined || shed <= 0 || performance.now() - conn.startedAt < this.#routing.limits.moveIntervalMs) return undefined
    this.#shed.set(server, shed - 1)
    return 'rebalance'
  }

  /**
   * Rebalancing for relayed servers (cluster/rebalance.ts): the next `count` of the server's kept-alive
   * connections that reach a request boundary move (0: none). Handoff back ends are asked over their channel.
   */
  setShedding (server: ServerState, count: number): void {
    if (count > 0) this.#shed.set(server, count)
    else this.#shed.delete(server)
  }

  /**
   * A connection came back at a request boundary (see ForwardSink.returned): a new Conn for the dispatcher's
   * part, which routes the request at the start of `consumed` as it would a new connection's first, and
   * forwards the connection with those bytes. A move to shed load avoids the server it came from when it can.
   */
  returned (from: ServerState, client: ReturnedClient, consumed: Buffer, reason: MoveReason, connId: number): void {
    const conn = new Conn(this.#nextId++, client.fd, client.socket, client.clientAddress, client.clientPort,
      client.localAddress, client.localPort, performance.now())
    conn.consumed = consumed
    conn.moved = { from, reason, prevId: connId }
    if (reason === 'rebalance') conn.avoid = new Set([from.id])
    const r = sniffHead(consumed, consumed.length, this.#routing.limits.maxHeaderBytes)
    if (r.kind === 'incomplete') this.#answer(conn, 400, 'BATON_ERR_BAD_REQUEST', 'a moved connection came back without a complete head')
    else this.#sniffed(conn, r)
  }

  #noServer (conn: Conn): void {
    const now = performance.now()
    if (now - this.#lastNoServerLog > 1000) {
      this.#lastNoServerLog = now
      this.#log.warn({ svc: conn.service, code: 'BATON_ERR_NO_SERVER' }, 'no real server available')
    }
    this.#answer(conn, 503, 'BATON_ERR_NO_SERVER', 'no server available')
  }

  /**
   * The dispatcher answers the client itself and closes it gracefully: the socket drains until the client
   * closes or limits.drainTimeoutMs passes, counted in #pending meanwhile.
   */
  #answer (conn: Conn, status: number, code: ErrorCode, reason: string): void {
    const { fd, socket } = conn
    conn.release()
    const pending = this.#pending
    const s = respond(fd, socket, status, code, this.#routing.limits.drainTimeoutMs, () => { pending.delete(entry) })
    const entry: PendingEntry = { kind: 'drain', shed: () => { s.destroy() } }
    pending.add(entry)
    this.#connLog.finish(conn, `status-${status}`, undefined, code, reason)
  }

  /** The client left before the head was complete: close quietly. */
  #gone (conn: Conn, why: string): void {
    if (conn.fd >= 0) native.close(conn.fd)
    conn.socket?.destroy()
    conn.release()
    this.#log.debug({ conn: conn.id, client: conn.clientAddress, why, code: 'BATON_ERR_CLIENT_GONE' }, 'client left')
  }

  #wait (conn: Conn, seen: number): void {
    const limits = this.#routing.limits
    let w: HeadWait
    try {
      w = new HeadWait(conn.fd, seen, this.#waitBuf, limits.maxHeaderBytes, limits.headerTimeoutMs, this.#onWaitDone)
    } catch (err) {
      this.#gone(conn, (err as Error).message)
      return
    }
    this.#hold(conn, w)
  }

  /** Counts a head wait in #pending; shedding cancels it and closes the client without an answer. */
  #hold (conn: Conn, w: HeadWait | SocketHeadWait): void {
    const entry: PendingEntry = {
      kind: 'head',
      shed: () => {
        w.cancel()
        this.#waiting.delete(w)
        if (conn.fd >= 0) native.close(conn.fd)
        conn.socket?.destroy()
        conn.release()
        this.#connLog.finish(conn, 'shed', undefined, 'BATON_ERR_PENDING_LIMIT', 'limits.maxPendingConns reached')
      },
    }
    this.#waiting.set(w, { conn, entry })
    this.#pending.add(entry)
  }

  #waitDone (w: HeadWait | SocketHeadWait, r: HeadWaitResult): void {
    const { conn, entry } = this.#waiting.get(w)!
    this.#waiting.delete(w)
    this.#pending.delete(entry)
    if (w instanceof SocketHeadWait) conn.consumed = w.consumed
    this.#waitResult(conn, r)
  }

  #waitResult (conn: Conn, r: HeadWaitResult): void {
    if (r.kind === 'timeout') this.#answer(conn, 408, 'BATON_ERR_HEADER_TIMEOUT', 'head not complete in time')
    else if (r.kind === 'gone') this.#gone(conn, 'closed mid-head')
    else if (r.kind !== 'incomplete') this.#sniffed(conn, r)
  }

  /** Shutdown: close every client the dispatcher still owns (heads arriving, answers draining); write pending access lines. */
  close (): void {
    this.#pending.shedAll()
    this.#connLog.flush()
  }
}
