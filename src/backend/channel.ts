// The back end's end of one handoff channel (one per connected dispatcher). Receives client fds, adopts each
// as a net.Socket on the http.Server, tracks each connection's state and reports counter deltas to the
// dispatcher once per event-loop turn: active = a request in flight, inactive = idle keep-alive. Answers
// each PING with a PONG from the poll callback that read it (never from a timer): a back end whose event
// loop is blocked, or whose process is stopped, does not answer, and the dispatcher takes it out of rotation.
// Each open connection is reported on exactly one channel at a time. When its channel closes (the dispatcher
// stopped, restarted or reconnected) it becomes an orphan of the host; a surviving channel that has been
// pinged takes the orphans over at once, or else the next channel to connect does, in answer to its first
// PING: a FEEDBACK with their current active and inactive counts, sent before the PONG. A new dispatcher
// (whose counters start at 0) thus counts the connections it now hears about from its first pick, and their
// later closes count down there, never twice anywhere.
import type http from 'node:http'
import net from 'node:net'
import {
  CAP_HANDBACK, decodeHandoff, decodeRebalance, encodeCaps, encodeFeedback, encodeHandback, encodeHello, encodeLatency,
  encodePong, encodeReport, FEEDBACK_BYTES, HANDOFF_STICKY, LATENCY_BUCKETS, latencyBucket, LATENCY_BYTES, MAX_CARRY_BYTES,
  MAX_MESSAGE_BYTES, MSG_GOODBYE, MSG_REBALANCE, MSG_ROUTES, ROUTES_FIRST, ROUTES_LAST,
  type CheckAddress, type HandoffMeta, type ReportState,
} from '../protocol/handoff'
import type { ErrorCode } from '../errors'
import { native } from '../native/binding'
import { responseBytes } from '../protocol/answers'
import type { PollerHandle } from '../native/types'
import { hookParser, mayShed, movedBytes, pauseReported, RouteCheck, socketFd, upgradeReported, type Move, type WatchedConn } from './reroute'

/** How often request times are reported at most (see #scheduleLatency). */
const LATENCY_FLUSH_MS = 500
const MAX_RECV_PER_WAKEUP = 256
/** A HANDBACK that finds the channel full is tried again this often, up to HANDBACK_GIVE_UP_MS. */
const HANDBACK_RETRY_MS = 10
const HANDBACK_GIVE_UP_MS = 2000
/** How long a connection answered here (refuse) stays open after the answer, for the client to read it. */
const REFUSE_LINGER_MS = 1000
/** The largest routes table a back end accepts (ROUTES fragments joined). */
const MAX_ROUTES_BYTES = 16 * 1024 * 1024

/** Reads on every channel are synchronous: one receive buffer for all, large enough for a HANDOFF with bytes. */
const recvBuf = Buffer.allocUnsafe(MAX_CARRY_BYTES)
/** And one for HANDBACKs. */
const handbackBuf = Buffer.allocUnsafe(MAX_CARRY_BYTES)

/** Per handed-off connection. Attached to the socket under kConn. */
export interface ConnRecord extends WatchedConn {
  readonly meta: HandoffMeta
  readonly socket: net.Socket
  /** The channel that reports this connection now (changes when its first channel closes). */
  channel: BackendChannel
  inflight: number
  active: boolean
  /** The socket closed: its responses' late 'close' events must not count again. */
  closed: boolean
}

export const kConn = Symbol('baton.handoff')
const kRecord = Symbol('baton.handoff.response')
const kStartedAt = Symbol('baton.handoff.startedAt')

/** A response of a handed-off connection: its record and start time ride on it, so its close needs no closure. */
interface TrackedResponse extends http.ServerResponse {
  [kRecord]?: ConnRecord | undefined
  [kStartedAt]?: number
}

/**
 * The http.Server emits 'request' (index.ts calls this before the application's listeners): a request on a
 * handed-off connection is counted on the channel that reports the connection now. Hot path: one symbol
 * lookup for a connection that did not come by handoff; no closure and no listener array per request.
 */
export function requestStarted (req: http.IncomingMessage, res: http.ServerResponse): void {
  const rec = (req.socket as unknown as Record<symbol, ConnRecord | undefined> | null)?.[kConn]
  if (rec !== undefined) rec.channel.requestStarted(rec, res as TrackedResponse)
}

/** A tracked response's 'close'; `this` is the response. Counted once even if 'close' came twice. */
function onResponseClose (this: TrackedResponse): void {
  const rec = this[kRecord]
  if (rec === undefined) return
  this[kRecord] = undefined
  rec.channel.requestEnded(rec, this[kStartedAt] ?? -1)
}

export interface BackendChannelHost {
  /** Adopt the socket (server.emit('connection')). */
  adopt (socket: net.Socket): void
  allowHalfOpen: boolean
  /** The channel closed; its open connections are in `orphans` now. */
  closed (ch: BackendChannel): void
  /** Open connections whose channel closed, waiting for a channel to report them (shared by all channels). */
  readonly orphans: Set<ConnRecord>
  error (err: Error): void
  /** Where the http.Server answers, for the dispatcher's health checks (undefined: nowhere to say). */
  checkAddress (): CheckAddress | undefined
  /** The back end's own state and weight percentage (handle.setState / setWeight), undefined = not set. */
  report (): { readonly state: ReportState | undefined; readonly percent: number | undefined }
  /** Another channel that can take a connection back, when this one cannot (closed, or no routes yet). */
  handbackChannel (): BackendChannel | undefined
}

export class BackendChannel {
  readonly fd: number
  readonly #host: BackendChannelHost
  readonly #poller: PollerHandle
  readonly #buf = recvBuf
  readonly #out = new Int32Array(2)
  readonly #msg = Buffer.allocUnsafe(FEEDBACK_BYTES)
  /** HELLO and REPORT (rare: not the feedback buffer, which a pending flush may hold). */
  readonly #out2 = Buffer.allocUnsafe(MAX_MESSAGE_BYTES)
  #dActive = 0
  #dInactive = 0
  #closedConns = 0
  /** Request times since the last LATENCY (LATENCY_BOUNDS buckets), counted only once the dispatcher pinged. */
  readonly #latCounts = new Float64Array(LATENCY_BUCKETS)
  #latSum = 0
  #latN = 0
  readonly #lat = Buffer.allocUnsafe(LATENCY_BYTES)
  #flushScheduled = false
  readonly #flushSoon = (): void => { this.#flush() }
  #latTimer: NodeJS.Timeout | undefined
  /** The dispatcher pinged: it knows HELLO and REPORT (an older one, which never pings, would not). */
  #pinged = false
  /** The open connections this channel reports. */
  readonly #records = new Set<ConnRecord>()
  #eof = false
  #released = false
  /** This dispatcher's routes (ROUTES); undefined until they came, or when they could not be used. */
  #check: RouteCheck | undefined
  /** ROUTES fragments of a table still arriving. */
  #routeParts: Buffer[] | undefined
  #routeBytes = 0
  #capsSent = false
  /** How many of this channel's connections should be marked to shed at their next request (REBALANCE). */
  #shedWanted = 0

  constructor (fd: number, host: BackendChannelHost) {
    this.fd = fd
    this.#host = host
    this.#poller = native.createPoller(fd, (status, events) => this.#onPoll(status, events))
    this.#poller.start(native.constants.READABLE | native.constants.DISCONNECT)
    this.#poller.unref()
  }

  get connections (): number { return this.#records.size }

  /** Tell the dispatcher to send nothing new; close once the last connection ends. */
  goodbye (): void {
    this.#msg[0] = MSG_GOODBYE
    native.sendMsg(this.fd, this.#msg, 1)
    this.#eof = true
    this.#maybeRelease()
  }

  /**
   * A request of `rec` reached the application (requestStarted below): counts it, times it if the
   * dispatcher pinged (it reads LATENCY then), and has its response's close end it. Hot path: no closure.
   */
  requestStarted (rec: ConnRecord, res: TrackedResponse): void {
    res[kRecord] = rec
    res[kStartedAt] = this.#pinged && !this.#released ? performance.now() : -1
    res.on('close', onResponseClose)
    if (rec.closed) return
    rec.inflight++
    if (!rec.active) {
      rec.active = true
      this.#delta(1, -1, 0)
    }
  }

  /** startedAt: performance.now() at the request's start, or -1 (not timed); its time goes into the next LATENCY. */
  requestEnded (rec: ConnRecord, startedAt: number): void {
    if (startedAt >= 0 && this.#pinged && !this.#released) {
      const s = (performance.now() - startedAt) / 1000
      this.#latCounts[latencyBucket(s)]!++
      this.#latSum += s
      this.#latN++
      this.#scheduleLatency()
    }
    if (rec.closed) return
    if (rec.inflight > 0) rec.inflight--
    if (rec.inflight === 0 && rec.active) {
      rec.active = false
      this.#delta(-1, 1, 0)
    }
    if (rec.move?.rest !== undefined && rec.inflight === 0) rec.channel.handBack(rec)
  }

  /** The route check for connections this channel reports (undefined: nothing is checked). */
  get check (): RouteCheck | undefined { return this.#released ? undefined : this.#check }

  /** True when a connection can go back to the dispatcher over this channel. */
  get takesHandbacks (): boolean { return !this.#released && this.#check !== undefined }

  /**
   * Node reported a parse error on a connection of this channel: when it is the pause that stops a move,
   * the move goes on (true: Node must not answer it). Called from the http.Server's 'clientError'.
   */
  paused (rec: ConnRecord, err: unknown): boolean {
    if (!pauseReported(rec, err)) return false
    rec.channel.handBack(rec)
    return true
  }

  /**
   * The same for a moving request with Upgrade, or a CONNECT: llhttp takes its upgrade path, so Node gives
   * the head to 'upgrade' / 'connect' with the bytes after it (bodyHead). True when it was a move.
   */
  upgradeStopped (rec: ConnRecord, bodyHead: unknown): boolean {
    if (!upgradeReported(rec, bodyHead)) return false
    rec.channel.handBack(rec)
    return true
  }

  /**
   * Hands the connection back once every response before the moving request is written (the kernel has
   * them), over this channel or, if it cannot, another. A client whose connection cannot go back gets 503.
   */
  handBack (rec: ConnRecord, since = performance.now()): void {
    const move = rec.move
    const socket = rec.socket
    if (move?.rest === undefined || rec.closed || rec.inflight > 0) return
    if (socket.writableLength > 0) {
      socket.once('drain', () => { rec.channel.handBack(rec, since) })
      return
    }
    if (move.answer !== undefined) { // a rule only this process can see: answered here, as the dispatcher would
      refuse(socket, move.answer.status, move.answer.code)
      return
    }
    const ch = this.takesHandbacks ? this : this.#host.handbackChannel()
    const bytes = movedBytes(move)
    const fd = socketFd(socket)
    if (ch === undefined || bytes === undefined || fd < 0) {
      this.#host.error(new Error(`handoff: connection ${rec.meta.connId} must move (${move.reason}) but ${
        fd < 0 ? 'its socket is gone' : bytes === undefined ? 'too many bytes were read' : 'no dispatcher takes it back'}`))
      refuse(socket, 503, 'BATON_ERR_HANDOFF_FAILED')
      return
    }
    const len = encodeHandback(handbackBuf, {
      reason: move.reason, connId: rec.meta.connId, consumed: bytes,
      clientAddress: socket.remoteAddress ?? '', clientPort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '', localPort: socket.localPort ?? 0,
    })
    const rc = native.sendFd(ch.fd, fd, handbackBuf, len)
    if (rc === 0) {
      socket.destroy() // only this process's descriptor: the dispatcher holds the connection now
      return
    }
    if (rc === -native.constants.EAGAIN && performance.now() - since < HANDBACK_GIVE_UP_MS) {
      setTimeout(() => { rec.channel.handBack(rec, since) }, HANDBACK_RETRY_MS).unref()
      return
    }
    this.#host.error(new Error(`handoff: connection ${rec.meta.connId} could not go back: ${native.errnoName(-rc)}`))
    refuse(socket, 503, 'BATON_ERR_HANDOFF_FAILED')
  }

  connectionClosed (rec: ConnRecord): void {
    if (rec.closed) return
    rec.closed = true
    if (rec.active) this.#delta(-1, 0, 1)
    else this.#delta(0, -1, 1)
    this.#records.delete(rec)
    if (this.#released) this.#host.orphans.delete(rec)
    this.#maybeRelease()
  }

  /**
   * Takes over the reporting of the host's orphans (counted as deltas, flushed like any other). False, and
   * nothing taken, when this channel cannot report: not pinged yet (an older dispatcher, or one whose first
   * PING has not arrived), closing, or closed.
   */
  inheritOrphans (): boolean {
    if (!this.#pinged || this.#eof || this.#released) return false
    const orphans = this.#host.orphans
    let active = 0
    for (const rec of orphans) {
      rec.channel = this
      this.#records.add(rec)
      if (rec.active) active++
    }
    if (orphans.size > 0) this.#delta(active, orphans.size - active, 0)
    orphans.clear()
    return true
  }

  #onPoll (status: number, events: number): void {
    if (status < 0) { this.#lostDispatcher(); return }
    if ((events & (native.constants.READABLE | native.constants.DISCONNECT)) === 0) return
    for (let i = 0; i < MAX_RECV_PER_WAKEUP; i++) {
      const n = native.recvMsg(this.fd, this.#buf, this.#out)
      const fd = this.#out[0]!
      if (n === -native.constants.EAGAIN) return
      if (n <= 0) { this.#lostDispatcher(); return }
      const meta = decodeHandoff(this.#buf, n)
      if (fd < 0 || meta === null || this.#out[1] !== 0) {
        if (fd < 0 && (this.#pong(n) || this.#control(n))) continue
        if (fd >= 0) native.close(fd)
        this.#host.error(new Error(`handoff channel: ${fd < 0 ? 'message without a descriptor' : 'bad message'}`))
        continue
      }
      this.#adopt(fd, meta)
    }
  }

  /**
   * Answers the PING in #buf at once; false when the message is not a PING. A PONG that does not fit
   * (EAGAIN: the dispatcher is not reading) is dropped: the dispatcher counts it as silence and pings again.
   */
  #pong (n: number): boolean {
    if (encodePong(this.#msg, this.#buf, n) < 0) return false
    if (!this.#pinged) { // HELLO, REPORT and the orphans' FEEDBACK go before the first PONG: with it, the dispatcher has heard them
      this.#pinged = true
      const addr = this.#host.checkAddress()
      if (addr !== undefined) native.sendMsg(this.fd, this.#out2, encodeHello(this.#out2, addr))
      this.sendReport()
      if (this.inheritOrphans()) this.#flush() // the FEEDBACK goes out of #msg: encode the PONG again below
    }
    const len = encodePong(this.#msg, this.#buf, n)
    native.sendMsg(this.fd, this.#msg, len)
    return true
  }

  /** ROUTES and REBALANCE; false when the message is neither. */
  #control (n: number): boolean {
    const b = this.#buf
    if (b[0] === MSG_ROUTES && n >= 2) {
      if ((b[1]! & ROUTES_FIRST) !== 0) { this.#routeParts = []; this.#routeBytes = 0 }
      if (this.#routeParts === undefined) return true // a fragment without its start: wait for the next table
      this.#routeBytes += n - 2
      if (this.#routeBytes > MAX_ROUTES_BYTES) {
        this.#routeParts = undefined
        this.#host.error(new Error(`handoff channel: routes table larger than ${MAX_ROUTES_BYTES} bytes; later requests are not checked`))
        return true
      }
      this.#routeParts.push(Buffer.from(b.subarray(2, n)))
      if ((b[1]! & ROUTES_LAST) !== 0) this.#routesArrived(Buffer.concat(this.#routeParts).toString('utf8'))
      return true
    }
    if (b[0] === MSG_REBALANCE) {
      const count = decodeRebalance(b, n)
      if (count < 0) return false
      this.#shedWanted = count
      this.#markShedding()
      return true
    }
    return false
  }

  #routesArrived (json: string): void {
    this.#routeParts = undefined
    const check = RouteCheck.parse(json)
    if (typeof check === 'string') {
      this.#host.error(new Error(`handoff channel: unusable routes (${check}); later requests are not checked`))
      return
    }
    this.#check = check
    if (!this.#capsSent) {
      this.#capsSent = true
      native.sendMsg(this.fd, this.#out2, encodeCaps(this.#out2, CAP_HANDBACK))
    }
  }

  /**
   * Marks connections to move at their next request until #shedWanted are marked (idle ones first, and
   * only those here for at least moveIntervalMs), or unmarks them when fewer are wanted.
   */
  #markShedding (): void {
    let marked = 0
    for (const rec of this.#records) if (rec.shed) marked++
    for (const rec of this.#records) {
      if (marked <= this.#shedWanted) break
      if (rec.shed) { rec.shed = false; marked-- }
    }
    const now = performance.now()
    for (const idleOnly of [true, false]) {
      for (const rec of this.#records) {
        if (marked >= this.#shedWanted) return
        if (rec.shed || rec.move !== undefined || (idleOnly && rec.inflight > 0) || !mayShed(rec, this.#check, now)) continue
        rec.shed = true
        marked++
      }
    }
  }

  /** Sends the back end's current report, if it set one and the dispatcher understands reports. */
  sendReport (): void {
    const r = this.#host.report()
    if (!this.#pinged || this.#released || (r.state === undefined && r.percent === undefined)) return
    native.sendMsg(this.fd, this.#out2, encodeReport(this.#out2, r.state, r.percent))
  }

  #adopt (fd: number, meta: HandoffMeta): void {
    let socket: net.Socket
    try {
      socket = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: this.#host.allowHalfOpen })
    } catch (err) {
      native.close(fd)
      this.#host.error(err as Error)
      return
    }
    // The dispatcher counted this connection as active when it sent it (LVS's bind).
    const rec: ConnRecord = {
      meta, socket, channel: this, inflight: 0, active: true, closed: false,
      service: meta.service, heads: 0, adoptedAt: performance.now(), shed: false, move: undefined as Move | undefined, stayed: undefined,
    }
    ;(socket as unknown as Record<symbol, ConnRecord>)[kConn] = rec
    this.#records.add(rec)
    socket.once('close', () => rec.channel.connectionClosed(rec)) // the channel reporting it then
    this.#host.adopt(socket)
    // A dispatcher that sends HANDOFF flags knows routes; a sticky service's connections are never checked.
    if (meta.flags !== undefined && (meta.flags & HANDOFF_STICKY) === 0) hookParser(socket, rec, () => rec.channel.check)
    // Bytes the dispatcher (or the back end before) already read: the parser reads them before the socket.
    if (meta.consumed !== undefined && meta.consumed.length > 0 && !socket.destroyed) socket.emit('data', meta.consumed)
  }

  #delta (a: number, i: number, c: number): void {
    this.#dActive += a
    this.#dInactive += i
    this.#closedConns += c
    this.#schedule()
  }

  #schedule (): void {
    if (!this.#flushScheduled && !this.#released) {
      this.#flushScheduled = true
      setImmediate(this.#flushSoon)
    }
  }

  #flush (): void {
    this.#flushScheduled = false
    if (this.#released) return
    if (this.#dActive !== 0 || this.#dInactive !== 0 || this.#closedConns !== 0) {
      const len = encodeFeedback(this.#msg, this.#closedConns, this.#dActive, this.#dInactive)
      const rc = native.sendMsg(this.fd, this.#msg, len)
      if (rc === 0) {
        this.#dActive = 0
        this.#dInactive = 0
        this.#closedConns = 0
      } else {
        // EAGAIN: keep the deltas (and the times, which go after them) and try again on a later turn.
        if (rc === -native.constants.EAGAIN) this.#retry()
        return
      }
    }
  }

  /**
   * Request times go out at most every LATENCY_FLUSH_MS, not once per event-loop turn as counters do: they
   * only feed /metrics, and a message per turn under keep-alive load would cost the dispatcher a read per
   * request batch.
   */
  #scheduleLatency (): void {
    if (this.#latTimer !== undefined || this.#released) return
    this.#latTimer = setTimeout(() => { this.#flushLatency() }, LATENCY_FLUSH_MS)
    this.#latTimer.unref()
  }

  #flushLatency (): void {
    this.#latTimer = undefined
    if (this.#latN === 0 || !this.#pinged || this.#released) return
    const rc = native.sendMsg(this.fd, this.#lat, encodeLatency(this.#lat, this.#latCounts, this.#latSum))
    if (rc === 0) {
      this.#latCounts.fill(0)
      this.#latSum = 0
      this.#latN = 0
    } else if (rc === -native.constants.EAGAIN) this.#scheduleLatency()
  }

  #retry (): void {
    this.#flushScheduled = true
    setTimeout(() => this.#flush(), 10).unref()
  }

  #lostDispatcher (): void {
    // Connections already adopted keep running; their reporting moves to another channel (host.closed).
    this.#eof = true
    this.#release()
  }

  #maybeRelease (): void {
    if (this.#eof && this.#records.size === 0) {
      this.#flush()
      this.#flushLatency()
      this.#release()
    }
  }

  #release (): void {
    if (this.#released) return
    this.#released = true
    this.#check = undefined
    clearTimeout(this.#latTimer)
    this.#latTimer = undefined
    this.#poller.close()
    native.close(this.fd)
    for (const rec of this.#records) this.#host.orphans.add(rec)
    this.#host.closed(this)
  }
}

/**
 * The request that moved is answered here (a rule only this process sees, or the connection cannot go
 * back: 503), with the dispatcher's own answer, after which the connection ends.
 */
function refuse (socket: net.Socket, status: number, code: ErrorCode): void {
  if (socket.destroyed) return
  socket.end(responseBytes(status, code))
  // Not at once: closing with the request's bytes unread sends a reset, which can cost the client the answer.
  setTimeout(() => { socket.destroy() }, REFUSE_LINGER_MS).unref()
}
