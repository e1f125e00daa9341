// Forwarding method `handoff` (same host): the client's fd goes to the back end over its SEQPACKET channel
// with SCM_RIGHTS, and the back end answers the client directly. This file owns every handoff channel (one
// per attached server); the channel state machine is handoff-channel.ts. The dispatcher's copy of a sent fd
// is closed in exactly one place: HandoffChannel, right after the sendmsg that carried it succeeded.
import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import {
  encodeHandoff, encodeRoutes, HANDOFF_STICKY, LATENCY_BOUNDS, LATENCY_BUCKETS, MAX_CARRY_BYTES, MAX_CONSUMED_BYTES,
  MAX_MESSAGE_BYTES, type CheckAddress,
} from '../protocol/handoff'
import { HandoffChannel } from './handoff-channel'
import type { ForwardConn, Forwarder, ForwarderOptions, ForwardServer, ForwardSink, HealthInput, RequestTimes } from './types'

/** How long a removed server's channel stays open for its back end to hand kept-alive connections back. */
const RETIRE_MS = 30_000

export class HandoffForwarder<C extends ForwardConn<S>, S extends ForwardServer> implements Forwarder<C, S> {
  readonly method = 'handoff' as const
  readonly reportsLiveness = true
  readonly active = 0
  readonly #sink: ForwardSink<C, S>
  readonly #health: HealthInput<S>
  readonly #log: Logger
  readonly #opts: ForwarderOptions
  readonly #allowedUids: ReadonlySet<number>
  readonly #channels = new Map<S, HandoffChannel<C>>()
  /** Where each back end said its http.Server answers (HELLO), for active checks. */
  readonly #checkAddresses = new Map<S, CheckAddress>()
  readonly #meta = Buffer.allocUnsafe(MAX_MESSAGE_BYTES)
  /** For a HANDOFF that carries consumed bytes (a connection that moved); made on first use. */
  #carry: Buffer | undefined
  /** The routes as ROUTES messages, sent to every channel (and again on reload). */
  #routes: readonly Buffer[] | undefined
  /** Channels of servers that left, open a while longer for hand-backs (detach). */
  readonly #retiring = new Set<HandoffChannel<C>>()
  /** Keyed `service\0server`; kept when a server leaves, as counters are. */
  readonly #times = new Map<string, RequestTimes>()

  /** Channels accept peers running as root or as this process's uid (SO_PEERCRED). */
  constructor (sink: ForwardSink<C, S>, health: HealthInput<S>, opts: ForwarderOptions, log: Logger) {
    this.#sink = sink
    this.#health = health
    this.#opts = opts
    this.#log = log
    this.#allowedUids = new Set([0, process.getuid?.() ?? 0])
  }

  /** Request times the back ends reported, keyed `service\0server`. */
  get requestTimes (): ReadonlyMap<string, RequestTimes> { return this.#times }

  /** Opens the server's channel now (Unix connects complete at once); failures retry with backoff. */
  attach (server: S): void {
    if (this.#channels.has(server)) return
    const path = server.target.path!
    const sink = this.#sink
    const health = this.#health
    const ch = new HandoffChannel<C>(path, {
      up: (why) => { health.channel(server, true, why) },
      down: (err, connectionsLost) => {
        // A closed channel: the process that said HELLO and REPORT may be gone; the next one says its own.
        if (connectionsLost) this.#checkAddresses.delete(server)
        health.channel(server, false, err.message, connectionsLost)
        if (connectionsLost) sink.lost(server)
      },
      feedback: (dActive, dInactive, closed) => { sink.feedback(server, dActive, dInactive, closed) },
      latency: (counts, sum) => {
        const key = `${server.service}\0${server.id}`
        let t = this.#times.get(key)
        if (t === undefined) this.#times.set(key, t = { bounds: LATENCY_BOUNDS, counts: new Float64Array(LATENCY_BUCKETS), sum: 0 })
        for (let i = 0; i < LATENCY_BUCKETS; i++) t.counts[i]! += counts[i]!
        t.sum += sum
      },
      hello: (addr) => { if (this.#channels.get(server) === ch) this.#checkAddresses.set(server, addr) },
      report: (state, percent) => { health.agent(server, state, percent) },
      sent: (conn) => { sink.handedOff(conn) },
      unsent: (conn, err) => { sink.failed(conn, err) },
      routes: () => this.#routes,
      handback: (fd, h) => {
        sink.returned(server, {
          fd, socket: undefined, clientAddress: h.clientAddress, clientPort: h.clientPort,
          localAddress: h.localAddress, localPort: h.localPort,
        }, h.consumed, h.reason, h.connId)
      },
    }, this.#log.child({ svc: server.service, backend: server.id }), this.#allowedUids, this.#opts.channelTimeoutMs)
    this.#channels.set(server, ch)
    ch.open()
  }

  /**
   * The server left. A back end that hands connections back keeps its channel for RETIRE_MS so its kept-alive
   * connections move to the servers that remain (HandoffChannel.retire); other channels close now. Either
   * way the back end keeps the connections it does not hand back and finishes them; queued clients come back.
   */
  detach (server: S): void {
    const ch = this.#channels.get(server)
    if (ch === undefined) return
    this.#channels.delete(server)
    this.#checkAddresses.delete(server)
    if (!ch.handsBack) { ch.close(); return }
    this.#retiring.add(ch)
    ch.retire(RETIRE_MS)
    setTimeout(() => { this.#retiring.delete(ch) }, RETIRE_MS + 1000).unref()
  }

  /**
   * Where the back end's own http.Server answers, once it said so over its channel; 'pending' until it answered
   * its first PING (its HELLO comes before that PONG); then undefined if it said nothing (nowhere to check).
   */
  checkAddress (server: S): CheckAddress | 'pending' | undefined {
    const addr = this.#checkAddresses.get(server)
    if (addr !== undefined) return addr
    return this.#channels.get(server)?.answered === false ? 'pending' : undefined
  }

  /**
   * The routes back ends check later requests against (request/route-table.ts JSON): sent to every channel
   * now and to each that connects later.
   */
  setRoutes (json: string): void {
    this.#routes = encodeRoutes(json)
    for (const ch of this.#channels.values()) ch.sendRoutes(this.#routes)
  }

  /** Asks the server's back end to have `count` kept-alive connections move at their next request. */
  rebalance (server: S, count: number): void {
    this.#channels.get(server)?.rebalance(count)
  }

  /** Whether the server's back end takes connections back and checks later requests. */
  handsBack (server: S): boolean {
    return this.#channels.get(server)?.handsBack === true
  }

  /** Hot path. Sent: handedOff() now. Queued (EAGAIN): handedOff() or failed() later. Failed: failed() now. */
  forward (conn: C): void {
    const server = conn.server!
    const ch = this.#channels.get(server)
    const consumed = conn.consumed
    let meta: Buffer = this.#meta
    let len: number
    if (consumed !== undefined && consumed.length > 0) {
      // A connection that moved: only a back end that said it reads consumed bytes may take it.
      if (ch?.handsBack !== true || consumed.length > MAX_CONSUMED_BYTES) {
        this.#sink.failed(conn, new BatonError('BATON_ERR_HANDOFF_FAILED',
          `handoff to ${server.id}: its back end cannot take a connection with bytes already read (baton/backend too old)`,
          { source: 'backend', retryable: true }))
        return
      }
      meta = this.#carry ??= Buffer.allocUnsafe(MAX_CARRY_BYTES)
      len = encodeHandoff(meta, conn.id, conn.service, conn.route, conn.watch ? 0 : HANDOFF_STICKY, consumed)
    } else {
      len = ch?.routed === true
        ? encodeHandoff(meta, conn.id, conn.service, conn.route, conn.watch ? 0 : HANDOFF_STICKY)
        : encodeHandoff(meta, conn.id, conn.service, conn.route)
    }
    const rc = ch === undefined ? -native.constants.ECONNRESET : ch.send(conn.fd, meta, len, conn)
    if (rc === 0) this.#sink.handedOff(conn)
    else if (rc < 0) {
      this.#sink.failed(conn, new BatonError('BATON_ERR_HANDOFF_FAILED',
        `handoff to ${server.id}: ${native.errnoName(-rc)}`, { source: 'backend', retryable: true }))
    }
  }

  async close (): Promise<void> {
    for (const ch of this.#channels.values()) ch.close()
    for (const ch of this.#retiring) ch.close()
    this.#retiring.clear()
    this.#channels.clear()
  }
}
