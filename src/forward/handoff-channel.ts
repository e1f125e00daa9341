// The dispatcher's end of one handoff channel: a connected SOCK_SEQPACKET socket to a back end that runs
// baton/backend. Sends client fds (SCM_RIGHTS) with a HANDOFF message, reads FEEDBACK, and reports the
// channel's state. Owns exactly one fd (the channel) and, while queued, the client fds in its queue.
//
// Failure rules (research/handoff-mechanics.md): the sender owns a client fd until sendmsg succeeds. EAGAIN
// queues in FIFO order (once anything is queued, everything behind it is queued too) and drains on
// WRITABLE. Any other send error or an EOF means the back end is gone: the channel goes down at once, queued
// clients go back to the dispatcher to be sent elsewhere, and a reconnect is scheduled with backoff.
//
// Liveness (handoff-heartbeat.ts): the channel PINGs every channelTimeoutMs / 4. Only a PONG counts as an
// answer: it proves the back end read everything sent before its PING, where a FEEDBACK only shows that its
// event loop runs. A back end that does not answer for channelTimeoutMs, or leaves a queued client unsent
// that long, is unresponsive (stopped, blocked, not reading its channel): the channel reports down() but
// stays open (a stopped process's listen backlog would take a reconnect at once, and the server would flap),
// hands queued clients back once each has waited channelTimeoutMs, and reports up() at the next PONG.
// Clients sent before it was noticed wait in the back end's socket and go on when the back end does. A
// channel is up from its connect, so a back end already stopped then is noticed like any other.
import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import type { PollerHandle } from '../native/types'
import {
  CAP_HANDBACK, decodeCaps, decodeHandback, decodeHello, decodeLatency, decodeReport, encodeRebalance, FEEDBACK_BYTES,
  HEARTBEAT_BYTES, LATENCY_BUCKETS, MAX_CARRY_BYTES, MSG_CAPS, MSG_FEEDBACK, MSG_GOODBYE, MSG_HANDBACK, MSG_HELLO,
  MSG_LATENCY, MSG_PONG, MSG_REPORT, REBALANCE_BYTES, type CheckAddress, type Handback, type ReportState,
} from '../protocol/handoff'
import { Heartbeat } from './handoff-heartbeat'

export interface HandoffChannelHooks<T> {
  /** New connections may go: the channel connected (the peer passed the credentials check), or answers again. */
  up (why: string): void
  /**
   * No new connections until up() again. connectionsLost: the channel itself closed (the back end process
   * died or dropped us), so every connection it held is gone; false when the back end said goodbye or stopped
   * answering (the channel stays open).
   */
  down (err: BatonError, connectionsLost: boolean): void
  feedback (dActive: number, dInactive: number, closed: number): void
  /** The back end said where its http.Server answers (for active health checks). */
  hello (addr: CheckAddress): void
  /** Request times the back end measured (LATENCY): counts per LATENCY_BOUNDS bucket (reused array), their sum. */
  latency? (counts: Float64Array, sum: number): void
  /** The back end's own word on its state and weight (undefined = unchanged). */
  report (state: ReportState | undefined, percent: number | undefined): void
  /** A queued client was sent after all: the back end owns it now and the channel closed our copy. */
  sent (item: T): void
  /** A queued client could not be sent: it is the dispatcher's again (its fd is still open). */
  unsent (item: T, err: BatonError): void
  /** The routes to send (ROUTES messages) as the channel connects; undefined = none. */
  routes? (): readonly Buffer[] | undefined
  /** A connection came back (HANDBACK): the hook owns `fd` from here. */
  handback? (fd: number, h: Handback): void
}

/** `tick`: the heartbeat tick it was queued at (a client waits at most channelTimeoutMs in the queue). */
interface Queued<T> { readonly fd: number; readonly meta: Buffer; readonly item: T; readonly tick: number }

const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5000
const MAX_RECV_PER_WAKEUP = 256

/** Reads on every channel are synchronous: one receive buffer for all, large enough for a HANDBACK. */
const recvBuf = Buffer.allocUnsafe(MAX_CARRY_BYTES)

export class HandoffChannel<T> {
  readonly path: string
  readonly #hooks: HandoffChannelHooks<T>
  readonly #log: Logger
  readonly #allowedUids: ReadonlySet<number>
  readonly #recvBuf = recvBuf
  readonly #ctlBuf = Buffer.allocUnsafe(REBALANCE_BYTES)
  readonly #recvOut = new Int32Array(2)
  readonly #latency = new Float64Array(LATENCY_BUCKETS)
  readonly #timeoutMs: number
  readonly #hb: Heartbeat
  #fd = -1
  #poller: PollerHandle | undefined
  #queue: Queued<T>[] = []
  #ready = false // connected, not draining and responsive: new connections may be sent
  #draining = false // the back end said GOODBYE
  #responsive = false // it answered within channelTimeoutMs
  #ponged = false // a PONG came on this connection (a back end from before PING never answers)
  #caps = 0 // what the back end said it can do (CAPS), on this connection
  #closed = false
  #routesSent = false
  #retireTimer: NodeJS.Timeout | undefined
  #retryMs = RECONNECT_MIN_MS
  #retryTimer: NodeJS.Timeout | undefined

  /** channelTimeoutMs: limits.channelTimeoutMs, the bound on silence and on waiting in the send queue. */
  constructor (path: string, hooks: HandoffChannelHooks<T>, log: Logger, allowedUids: ReadonlySet<number>,
    channelTimeoutMs: number) {
    this.path = path
    this.#hooks = hooks
    this.#log = log
    this.#allowedUids = allowedUids
    this.#timeoutMs = channelTimeoutMs
    this.#hb = new Heartbeat(channelTimeoutMs, () => this.#onTick())
  }

  /** True while new connections may be sent. */
  get ready (): boolean { return this.#ready }
  /** The back end answered a PING on this connection: what it says first (HELLO, REPORT) has arrived. */
  get answered (): boolean { return this.#ponged }
  get queued (): number { return this.#queue.length }
  /** The back end checks later requests and takes HANDOFFs with consumed bytes (it sent CAPS_HANDBACK). */
  get handsBack (): boolean { return (this.#caps & CAP_HANDBACK) !== 0 }
  /** The back end was sent routes: HANDOFFs carry flags (a back end that does not know them ignores them). */
  get routed (): boolean { return this.#routesSent }

  /**
   * Sends routes (ROUTES messages). A back end that knows them answers CAPS once; one that does not reports
   * the messages and reads on. Not sent while disconnected: open() sends the latest.
   */
  sendRoutes (msgs: readonly Buffer[]): void {
    if (this.#fd < 0) return
    for (const m of msgs) {
      const rc = native.sendMsg(this.#fd, m, m.length)
      if (rc !== 0) {
        // A full channel: the back end keeps its older table; the next open() or reload sends it again.
        this.#log.warn({ path: this.path, err: native.errnoName(-rc), code: 'BATON_ERR_CHANNEL_DOWN' }, 'routes not sent to back end')
        return
      }
    }
    this.#routesSent = true
  }

  /** Asks the back end to have `count` kept-alive connections move at their next request (REBALANCE). */
  rebalance (count: number): void {
    if (this.#fd < 0 || !this.handsBack) return
    native.sendMsg(this.#fd, this.#ctlBuf, encodeRebalance(this.#ctlBuf, count))
  }

  /**
   * The server left its service: nothing new is sent, but the channel stays open for `ms` so the back end
   * hands its kept-alive connections back at their next request (asked every second: a connection becomes
   * movable once it stayed limits.moveIntervalMs), then closes. Feedback and hand-backs go on meanwhile.
   */
  retire (ms: number): void {
    if (this.#closed || this.#retireTimer !== undefined) return
    this.#draining = true
    this.#ready = false
    const ask = (): void => { this.rebalance(0xffffffff) }
    ask()
    const every = setInterval(ask, 1000)
    every.unref()
    this.#retireTimer = setTimeout(() => { clearInterval(every); this.close() }, ms)
    this.#retireTimer.unref()
  }

  /** Connects now; on failure the channel stays down and retries with backoff. */
  open (): void {
    if (this.#closed || this.#fd >= 0) return
    try {
      this.#fd = native.seqpacketConnect(this.path)
      const cred = native.peerCred(this.#fd)
      if (!this.#allowedUids.has(cred.uid)) {
        throw new BatonError('BATON_ERR_CHANNEL_PEER',
          `handoff peer at ${this.path} runs as uid ${cred.uid} (pid ${cred.pid}), not an allowed uid`,
          { source: 'backend' })
      }
      this.#poller = native.createPoller(this.#fd, (status, events) => this.#onPoll(status, events))
      this.#poller.start(native.constants.READABLE | native.constants.DISCONNECT)
      this.#poller.unref()
    } catch (err) {
      this.#teardown()
      const retryMs = this.#scheduleReconnect()
      const e = err instanceof BatonError && err.code === 'BATON_ERR_CHANNEL_PEER'
        ? err
        : new BatonError('BATON_ERR_CHANNEL_DOWN', `cannot connect to ${this.path}`, { cause: err, source: 'backend' })
      this.#log.warn({ path: this.path, err: e.message, code: e.code, retryMs }, 'handoff channel not connected')
      return
    }
    this.#ready = true
    this.#draining = false
    this.#responsive = true
    this.#ponged = false
    this.#caps = 0
    this.#routesSent = false
    this.#retryMs = RECONNECT_MIN_MS
    this.#hb.start()
    // A PING at once, not a tick later: the back end answers it with HELLO and REPORT, so active checks know
    // its address, and a drained back end's word holds, from the start. EAGAIN cannot happen on a new socket.
    this.#hb.ping(this.#fd)
    const routes = this.#hooks.routes?.()
    if (routes !== undefined) this.sendRoutes(routes)
    this.#log.info({ path: this.path }, 'handoff channel up')
    this.#hooks.up('channel connected')
  }

  /**
   * Hands `fd` over. Returns 0 when sent (the channel closed the caller's copy: the back end owns the client),
   * 1 when queued (the channel owns the fd until sent() or unsent(), at most channelTimeoutMs), or -errno when
   * the channel failed or is not ready (the caller still owns the fd; the channel is down now). Hot path: the
   * clock is not read, and a queued client records the heartbeat's tick count.
   */
  send (fd: number, meta: Buffer, metaLen: number, item: T): number {
    if (!this.#ready) return -native.constants.ECONNRESET
    if (this.#queue.length === 0) {
      const rc = native.sendFd(this.#fd, fd, meta, metaLen)
      if (rc === 0) {
        native.close(fd)
        return 0
      }
      if (rc !== -native.constants.EAGAIN) {
        this.#fail(new BatonError('BATON_ERR_HANDOFF_FAILED', `sendmsg to ${this.path}: ${native.errnoName(-rc)}`,
          { source: 'backend', retryable: true }))
        return rc
      }
      this.#poller!.start(native.constants.READABLE | native.constants.WRITABLE | native.constants.DISCONNECT)
    }
    this.#queue.push({ fd, meta: Buffer.from(meta.subarray(0, metaLen)), item, tick: this.#hb.tick })
    return 1
  }

  close (): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#retryTimer)
    clearTimeout(this.#retireTimer)
    this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', 'dispatcher closing', { source: 'internal' }), false)
  }

  #onPoll (status: number, events: number): void {
    if (status < 0) {
      this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', `poll ${this.path}: ${native.errnoName(-status)}`,
        { source: 'backend', retryable: true }))
      return
    }
    if ((events & native.constants.WRITABLE) !== 0) this.#drain()
    if (this.#fd >= 0 && (events & (native.constants.READABLE | native.constants.DISCONNECT)) !== 0) this.#read()
  }

  #drain (): void {
    while (this.#queue.length > 0) {
      const q = this.#queue[0]!
      const rc = native.sendFd(this.#fd, q.fd, q.meta, q.meta.length)
      if (rc === -native.constants.EAGAIN) return
      if (rc !== 0) {
        this.#fail(new BatonError('BATON_ERR_HANDOFF_FAILED', `sendmsg to ${this.path}: ${native.errnoName(-rc)}`,
          { source: 'backend', retryable: true }))
        return
      }
      this.#queue.shift()
      native.close(q.fd)
      this.#hooks.sent(q.item)
    }
    this.#poller?.start(native.constants.READABLE | native.constants.DISCONNECT)
  }

  #read (): void {
    for (let i = 0; i < MAX_RECV_PER_WAKEUP && this.#fd >= 0; i++) {
      const n = native.recvMsg(this.#fd, this.#recvBuf, this.#recvOut)
      const fd = this.#recvOut[0]!
      if (fd >= 0) { // only a HANDBACK carries one
        const h = n > 0 && this.#recvBuf[0] === MSG_HANDBACK && this.#recvOut[1] === 0 ? decodeHandback(this.#recvBuf, n) : null
        if (h !== null && this.#hooks.handback !== undefined) this.#hooks.handback(fd, h)
        else {
          native.close(fd)
          this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: protocol error (a descriptor with type ${this.#recvBuf[0]}, ${n} bytes)`,
            { source: 'backend', retryable: true }))
          return
        }
        continue
      }
      if (n === -native.constants.EAGAIN) return
      if (n <= 0) {
        const why = n === 0 ? 'back end closed the channel' : native.errnoName(-n)
        this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: ${why}`, { source: 'backend', retryable: true }))
        return
      }
      this.#onMessage(n)
    }
  }

  #onMessage (n: number): void {
    const b = this.#recvBuf
    if (b[0] === MSG_FEEDBACK && n === FEEDBACK_BYTES) {
      this.#hooks.feedback(b.readInt32LE(5), b.readInt32LE(9), b.readUInt32LE(1))
    } else if (b[0] === MSG_PONG && n === HEARTBEAT_BYTES) {
      this.#ponged = true
      this.#hb.heard()
      if (!this.#responsive) this.#answeredAgain()
    } else if (b[0] === MSG_LATENCY) {
      this.#latency.fill(0)
      const sum = decodeLatency(b, n, this.#latency)
      if (sum < 0) {
        this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: protocol error (bad LATENCY, ${n} bytes)`,
          { source: 'backend', retryable: true }))
        return
      }
      this.#hooks.latency?.(this.#latency, sum)
    } else if (b[0] === MSG_REPORT && decodeReport(b, n) !== null) {
      const r = decodeReport(b, n)!
      this.#hooks.report(r.state, r.percent)
    } else if (b[0] === MSG_CAPS && decodeCaps(b, n) >= 0) {
      this.#caps = decodeCaps(b, n)
    } else if (b[0] === MSG_HELLO && decodeHello(b, n) !== null) {
      this.#hooks.hello(decodeHello(b, n)!)
    } else if (b[0] === MSG_GOODBYE && n === 1) {
      this.#draining = true
      this.#notReady(new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: back end is draining`, { source: 'backend' }))
    } else {
      this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: protocol error (type ${b[0]}, ${n} bytes)`,
        { source: 'backend', retryable: true }))
    }
  }

  /** Every channelTimeoutMs / 4 while connected: read what waits (a late tick is not silence), judge, ping. */
  #onTick (): void {
    this.#read()
    if (this.#fd < 0) return
    const hb = this.#hb
    if (this.#responsive && hb.silent) {
      this.#unresponsive(`no answer to a heartbeat in ${this.#timeoutMs} ms` +
        (this.#ponged ? '' : ' (none ever came on this connection; a baton/backend from before PING never answers)'))
    } else if (this.#responsive && this.#queue.length > 0 && hb.expired(this.#queue[0]!.tick)) {
      this.#unresponsive(`a client waited ${this.#timeoutMs} ms in the send queue`)
    }
    this.#expireQueued()
    const rc = hb.ping(this.#fd)
    if (rc < 0 && rc !== -native.constants.EAGAIN) { // EAGAIN: not sent, so not answered: silence counts on
      this.#fail(new BatonError('BATON_ERR_CHANNEL_DOWN', `ping ${this.path}: ${native.errnoName(-rc)}`,
        { source: 'backend', retryable: true }))
    }
  }

  #unresponsive (why: string): void {
    this.#responsive = false
    const err = new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: ${why}`, { source: 'backend' })
    this.#log.warn({ path: this.path, err: err.message, code: err.code }, 'handoff channel unresponsive')
    this.#notReady(err)
  }

  #answeredAgain (): void {
    this.#responsive = true
    this.#log.info({ path: this.path }, 'handoff channel answers again')
    if (this.#draining) return
    this.#ready = true
    this.#hooks.up('back end answers again')
  }

  /** The channel stays open but takes nothing new (draining or unresponsive). */
  #notReady (err: BatonError): void {
    if (!this.#ready) return
    this.#ready = false
    this.#hooks.down(err, false)
  }

  /** Hands back queued clients that waited channelTimeoutMs, unsent: the data path tries another server. */
  #expireQueued (): void {
    const q = this.#queue
    let n = 0
    while (n < q.length && this.#hb.expired(q[n]!.tick)) n++
    if (n === 0) return
    const expired = q.splice(0, n)
    if (q.length === 0) this.#poller?.start(native.constants.READABLE | native.constants.DISCONNECT)
    const err = new BatonError('BATON_ERR_CHANNEL_DOWN', `${this.path}: not sent within ${this.#timeoutMs} ms`,
      { source: 'backend', retryable: true })
    for (const e of expired) this.#hooks.unsent(e.item, err)
  }

  #fail (err: BatonError, reconnect = true): void {
    const wasUp = this.#fd >= 0
    const wasReady = this.#ready
    this.#teardown()
    const queue = this.#queue
    this.#queue = []
    if (wasUp && reconnect) this.#log.warn({ path: this.path, err: err.message, code: err.code }, 'handoff channel down')
    if (wasReady || wasUp) this.#hooks.down(err, wasUp)
    for (const q of queue) this.#hooks.unsent(q.item, err)
    if (reconnect && !this.#closed) this.#scheduleReconnect()
  }

  #teardown (): void {
    this.#ready = false
    this.#hb.stop()
    this.#poller?.close()
    this.#poller = undefined
    if (this.#fd >= 0) native.close(this.#fd)
    this.#fd = -1
  }

  /** Returns the delay until the next attempt (0: none, the channel is closed or one is already due). */
  #scheduleReconnect (): number {
    if (this.#closed || this.#retireTimer !== undefined || this.#retryTimer !== undefined) return 0
    const delayMs = this.#retryMs
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.open()
    }, delayMs)
    this.#retryTimer.unref()
    this.#retryMs = Math.min(delayMs * 2, RECONNECT_MAX_MS)
    return delayMs
  }
}
