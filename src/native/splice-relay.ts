// Typed, checked wrapper of the splice relay (native/src/splice_*.cc). The relay thread connects upstream,
// writes an optional prefix (PROXY header) and splices both directions; this side validates arguments
// (node:assert: a bad argument is a bug) and turns the addon's batched events into handler calls. Names
// match the C side (baton_relay_connect, ...). It never loads anything: binding.ts hands it the addon
// module and exposes it as native.createRelay(). `any` stays inside binding.ts and this file.
import assert from 'node:assert'

import { assertFd, assertInt } from './asserts'

export interface RelayOptions {
  /** Requested pipe capacity (F_SETPIPE_SZ); the kernel may round it or refuse (then 64 KiB). */
  readonly pipeSize: number
  readonly connectTimeoutMs: number
  /** 0 = no idle timeout. */
  readonly idleTimeoutMs: number
  /**
   * Idle pipes kept for reuse (each pipe is 2 fds). A connection holds a pipe per direction only while bytes
   * are in it, so an idle relay costs its two sockets; without a pipe (EMFILE) the relay copies instead.
   */
  readonly pipePoolMax: number
  /** Watched connections: a later head is passed to JS once whole, or once it is this long (then sniff says 431). */
  readonly maxHeaderBytes: number
}

export interface RelayStats {
  readonly relaying: number
  readonly connecting: number
  readonly total: number
  readonly failed: number
  readonly errors: number
  /** Pipes open (in use, i.e. holding bytes in flight, + pooled). */
  readonly pipes: number
  readonly pooled: number
  readonly bytesUp: number
  readonly bytesDown: number
}

/** Called on the JS thread, in the order the relay thread produced the events. Must not throw. */
export interface RelayHandler {
  /** Upstream connected, prefix queued: the relay owns its dup; origFd is the caller's fd, to close now. */
  established (id: number, origFd: number): void
  /** Connect failed (positive errno); the relay closed its dup and never read the client. */
  failed (id: number, errno: number): void
  /** A relayed connection ended; errno 0 = both directions ended cleanly, else both sides were reset. */
  closed (id: number, bytesUp: number, bytesDown: number, errno: number): void
  /**
   * A watched connection's later request head (bytes valid only during the call): nothing of it went up,
   * the client is not read until verdict(id, move) answers. Hot for relayed keep-alive.
   */
  head (id: number, bytes: Buffer): void
  /**
   * A watched connection stopped before a request that moves: the upstream is closed, the client's fd is the
   * handler's now, `consumed` (the handler's copy) starts with that request's head. consumed undefined: the
   * bytes did not fit the event buffer (cannot happen with the sizes here); the handler still owns fd.
   */
  returned (id: number, bytesUp: number, bytesDown: number, fd: number, consumed: Buffer | undefined): void
}

const EVENT_SLOTS = 256
/** Head and returned events' bytes; one event holds at most maxHeaderBytes + one 16 KiB read. */
const BYTES_SLACK = 64 * 1024
const STAT_NAMES = ['relaying', 'connecting', 'total', 'failed', 'errors', 'pipes', 'pooled', 'bytesUp', 'bytesDown'] as const

export class NativeRelay {
  readonly #raw: any
  readonly #handle: unknown
  readonly #events: Float64Array
  readonly #stats: Float64Array
  readonly #handler: RelayHandler
  readonly #evEstablished: number
  readonly #evFailed: number
  readonly #evClosed: number
  readonly #evHead: number
  readonly #bytes: Buffer
  #verdicts = 0
  #closed = false
  #wakePending = false
  readonly #wake = (): void => {
    this.#wakePending = false
    this.#raw.baton_relay_wake(this.#handle)
  }

  #dispatching = false
  #closeDeferred = false

  /** raw: the addon module, from binding.ts only. Throws BatonNativeError (via binding.ts) if the thread cannot start. */
  constructor (raw: any, opts: RelayOptions, handler: RelayHandler) {
    assertInt(opts.pipeSize, 4096, 64 * 1024 * 1024, 'pipeSize')
    assertInt(opts.connectTimeoutMs, 1, 2 ** 31 - 1, 'connectTimeoutMs')
    assertInt(opts.idleTimeoutMs, 0, 2 ** 31 - 1, 'idleTimeoutMs')
    assertInt(opts.pipePoolMax, 0, 1 << 20, 'pipePoolMax')
    assertInt(opts.maxHeaderBytes, 256, 1 << 24, 'maxHeaderBytes')
    assert(typeof handler?.established === 'function' && typeof handler.failed === 'function' &&
      typeof handler.closed === 'function' && typeof handler.head === 'function' &&
      typeof handler.returned === 'function', 'handler must have established, failed, closed, head and returned')
    const c = raw.baton_relay_constants
    this.#raw = raw
    this.#handler = handler
    this.#evEstablished = c.EV_ESTABLISHED
    this.#evFailed = c.EV_FAILED
    this.#evClosed = c.EV_CLOSED
    this.#evHead = c.EV_HEAD
    this.#events = new Float64Array(EVENT_SLOTS * c.EVENT_WIDTH)
    this.#stats = new Float64Array(c.STATS_LENGTH)
    this.#bytes = Buffer.alloc(2 * opts.maxHeaderBytes + BYTES_SLACK)
    this.#handle = raw.baton_relay_create((count: number) => { this.#dispatch(count) }, this.#events,
      opts.pipeSize, opts.connectTimeoutMs, opts.idleTimeoutMs, opts.pipePoolMax, this.#bytes, opts.maxHeaderBytes)
  }

  /**
   * Queues a relay of clientFd to addr (from native.sockaddr() or native.sockaddrUnix()). 0 = queued, one event will follow (established
   * or failed); -errno = nothing happened (dup failed, or -ECANCELED after close()). The caller keeps
   * clientFd until established(). Hot path: one dup. The relay thread is signalled (one eventfd write) from
   * a setImmediate, so a burst of connects in one event-loop turn costs one wakeup instead of one each.
   */
  connect (clientFd: number, addr: Buffer, id: number, prefix: Buffer | undefined, consumed?: Buffer,
    watch = false): number {
    assertFd(clientFd, 'clientFd')
    assert(Buffer.isBuffer(addr) && addr.length > 2, 'addr must be a sockaddr Buffer')
    assert(Number.isSafeInteger(id), 'id must be a safe integer')
    assert(prefix === undefined || Buffer.isBuffer(prefix), 'prefix must be a Buffer')
    assert(consumed === undefined || Buffer.isBuffer(consumed), 'consumed must be a Buffer')
    const rc: number = this.#raw.baton_relay_connect(this.#handle, clientFd, addr, id, prefix ?? null,
      consumed ?? null, watch === true)
    if (rc !== 1) return rc
    if (!this.#wakePending) {
      this.#wakePending = true
      setImmediate(this.#wake)
    }
    return 0
  }

  /**
   * The answer to head(id): move = the request goes elsewhere (nothing more goes up; returned() follows once
   * the responses before it went down), else it is relayed. Called inside head() or later; one eventfd
   * write per batch of events wakes the relay thread.
   */
  verdict (id: number, move: boolean): void {
    if (this.#closed) return
    this.#raw.baton_relay_verdict(this.#handle, id, move)
    if (this.#dispatching) this.#verdicts++
    else this.#raw.baton_relay_wake(this.#handle)
  }

  stats (): RelayStats {
    this.#raw.baton_relay_stats(this.#handle, this.#stats)
    const out: Record<string, number> = {}
    STAT_NAMES.forEach((name, i) => { out[name] = this.#stats[i] ?? 0 })
    return out as unknown as RelayStats
  }

  /** Stops the thread: connects in flight fail (ECANCELED), relays are reset; their events arrive before this returns. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    // From inside a handler the event buffer is still being read: close once this batch is done.
    if (this.#dispatching) this.#closeDeferred = true
    else this.#raw.baton_relay_close(this.#handle)
  }

  #dispatch (count: number): void {
    this.#dispatching = true
    try {
      this.#dispatchBatch(count)
    } finally {
      this.#dispatching = false
    }
    if (this.#verdicts > 0) {
      this.#verdicts = 0
      if (!this.#closed) this.#raw.baton_relay_wake(this.#handle)
    }
    if (this.#closeDeferred) {
      this.#closeDeferred = false
      this.#raw.baton_relay_close(this.#handle)
    }
  }

  #dispatchBatch (count: number): void {
    const ev = this.#events
    const width = ev.length / EVENT_SLOTS
    for (let i = 0; i < count; i++) {
      const o = i * width
      const kind = ev[o] ?? 0
      const id = ev[o + 1] ?? 0
      try {
        if (kind === this.#evEstablished) this.#handler.established(id, ev[o + 2] ?? -1)
        else if (kind === this.#evFailed) this.#handler.failed(id, ev[o + 4] ?? 0)
        else if (kind === this.#evClosed) this.#handler.closed(id, ev[o + 2] ?? 0, ev[o + 3] ?? 0, ev[o + 4] ?? 0)
        else this.#bytesEvent(kind, id, o)
      } catch (err) {
        // A throwing handler is a bug; surface it as an uncaught exception without losing the other events.
        process.nextTick(() => { throw err })
      }
    }
  }

  /** head: the bytes are a view, valid during the call; returned: a copy, the handler keeps it. */
  #bytesEvent (kind: number, id: number, o: number): void {
    const ev = this.#events
    const off = ev[o + 6] ?? 0
    const len = ev[o + 7] ?? 0
    const view = len >= 0 ? this.#bytes.subarray(off, off + len) : undefined
    if (kind === this.#evHead) this.#handler.head(id, view ?? Buffer.alloc(0))
    else this.#handler.returned(id, ev[o + 2] ?? 0, ev[o + 3] ?? 0, ev[o + 5] ?? -1, view === undefined ? undefined : Buffer.from(view))
  }
}
