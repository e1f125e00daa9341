// Waiting for a request head that has not fully arrived, until an absolute deadline (limits.headerTimeoutMs:
// one timer, set when the wait starts, never restarted by the client's bytes).
// HeadWait (native path): one uv_poll on the client fd with SO_RCVLOWAT = bytes seen + 1, so a partial head
// wakes us once per new segment instead of spinning on a level-triggered poll (research: pitfall 15). The
// poll is closed before anything else touches the fd, and SO_RCVLOWAT goes back to 1 (it is shared with
// whoever gets the socket). SocketHeadWait: the same for a net.Socket client (JS listener, no addon).
import type net from 'node:net'
import { native } from '../native/binding'
import type { PollerHandle } from '../native/types'
import { sniffHead } from '../request/sniff'
import type { SniffResult } from '../request/types'

/** 'gone': the client closed or reset before the head was complete. */
export type HeadWaitResult = SniffResult | { readonly kind: 'timeout' } | { readonly kind: 'gone' }

const TIMEOUT: HeadWaitResult = { kind: 'timeout' }
const GONE: HeadWaitResult = { kind: 'gone' }

export class HeadWait {
  readonly fd: number
  readonly #buf: Buffer
  readonly #maxHeaderBytes: number
  readonly #done: (w: HeadWait, r: HeadWaitResult) => void
  readonly #poller: PollerHandle
  readonly #timer: NodeJS.Timeout
  #seen: number
  #finished = false

  /** buf: a scratch buffer of maxHeaderBytes, shared by all waits (peek and sniff are synchronous). */
  constructor (fd: number, seen: number, buf: Buffer, maxHeaderBytes: number, timeoutMs: number,
    done: (w: HeadWait, r: HeadWaitResult) => void) {
    this.fd = fd
    this.#seen = seen
    this.#buf = buf
    this.#maxHeaderBytes = maxHeaderBytes
    this.#done = done
    if (seen > 0) native.setRcvLowat(fd, seen + 1)
    this.#poller = native.createPoller(fd, (status, events) => this.#onPoll(status, events))
    this.#poller.start(native.constants.READABLE | native.constants.DISCONNECT)
    this.#timer = setTimeout(() => this.#finish(TIMEOUT), timeoutMs)
  }

  /** Stops waiting without a result (dispatcher shutdown). The caller still owns the fd. */
  cancel (): void {
    if (this.#finished) return
    this.#finished = true
    this.#stop()
  }

  #onPoll (status: number, events: number): void {
    if (this.#finished) return
    if (status < 0) { this.#finish(GONE); return }
    const n = native.peek(this.fd, this.#buf)
    if (n === -native.constants.EAGAIN) {
      if ((events & native.constants.DISCONNECT) !== 0) this.#finish(GONE)
      return
    }
    if (n <= 0) { this.#finish(GONE); return }
    const r = sniffHead(this.#buf, n, this.#maxHeaderBytes)
    if (r.kind !== 'incomplete') { this.#finish(r); return }
    // The peer half-closed (or reset) with a partial head: nothing more will complete it.
    if ((events & native.constants.DISCONNECT) !== 0) { this.#finish(GONE); return }
    if (n !== this.#seen) {
      this.#seen = n
      native.setRcvLowat(this.fd, n + 1)
    }
  }

  #finish (r: HeadWaitResult): void {
    if (this.#finished) return
    this.#finished = true
    this.#stop()
    this.#done(this, r)
  }

  #stop (): void {
    this.#poller.close()
    clearTimeout(this.#timer)
    if (this.#seen > 0) {
      try { native.setRcvLowat(this.fd, 1) } catch { /* the socket may already be dead; harmless */ }
    }
  }
}

/**
 * The same wait for a client that is a net.Socket (the JS listener, without the addon): the head is read,
 * not peeked, so the bytes read so far are kept in `consumed` for the forwarder to send first. Bounded by
 * the same absolute timeout and size limit. The caller owns the socket throughout.
 */
export class SocketHeadWait {
  readonly socket: net.Socket
  consumed: Buffer = Buffer.alloc(0)
  readonly #maxHeaderBytes: number
  readonly #done: (w: SocketHeadWait, r: HeadWaitResult) => void
  readonly #timer: NodeJS.Timeout
  readonly #onData = (chunk: Buffer): void => { this.#data(chunk) }
  readonly #onEnd = (): void => { this.#finish(GONE) }
  #finished = false

  constructor (socket: net.Socket, maxHeaderBytes: number, timeoutMs: number,
    done: (w: SocketHeadWait, r: HeadWaitResult) => void) {
    this.socket = socket
    this.#maxHeaderBytes = maxHeaderBytes
    this.#done = done
    this.#timer = setTimeout(() => { this.#finish(TIMEOUT) }, timeoutMs)
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('error', this.#onEnd)
  }

  cancel (): void {
    if (this.#finished) return
    this.#finished = true
    this.#stop()
  }

  #data (chunk: Buffer): void {
    this.consumed = this.consumed.length === 0 ? chunk : Buffer.concat([this.consumed, chunk])
    const max = this.#maxHeaderBytes
    const r = sniffHead(this.consumed, Math.min(this.consumed.length, max), max)
    if (r.kind !== 'incomplete') this.#finish(r)
  }

  #finish (r: HeadWaitResult): void {
    if (this.#finished) return
    this.#finished = true
    this.#stop()
    this.#done(this, r)
  }

  #stop (): void {
    clearTimeout(this.#timer)
    this.socket.off('data', this.#onData)
    this.socket.off('end', this.#onEnd)
    this.socket.off('error', this.#onEnd)
    this.socket.pause()
  }
}
