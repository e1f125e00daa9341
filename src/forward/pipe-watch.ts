// The JavaScript relay of a watched connection (conn.watch: the service's keepAlive is `reroute`): both
// directions framed (http-framing.ts), so that every request after the first is checked before it reaches
// the server. At each later request boundary the client's bytes wait in `#held` until sniffHead has the
// whole head and the data path's nextRequest() said where it goes. Same server: it is forwarded. Another:
// nothing more goes up, the responses to the requests already forwarded finish (by their framing), the
// upstream is closed, and the client returns to the data path with the bytes read from that head on. A
// response framed by close means the connection cannot move: it ends as an unwatched relay would. After a
// 101 or a CONNECT 2xx the relay stops watching (a tunnel). pipe.ts keeps stream.pipeline for conn.watch
// false, so an unwatched relay costs nothing new.
import type net from 'node:net'

import { ERRNO, errnoOf } from '../native/errno'
import { REJECT, sniffHead } from '../request/sniff'
import { FramingError, MessageFramer, REQ_CONNECT, REQ_UPGRADE } from './http-framing'
import type { ForwardConn, ForwardServer, ForwardSink, ForwardStats, MoveReason } from './types'

const EPROTO = ERRNO.EPROTO ?? 71
const ETIMEDOUT = ERRNO.ETIMEDOUT ?? 110

/** How a watched relay ended: its stats, and when it stopped before a request that moves, that request. */
export interface WatchEnd {
  readonly stats: ForwardStats
  readonly moved: { readonly consumed: Buffer; readonly reason: MoveReason } | undefined
}

export class WatchedPipe<C extends ForwardConn<S>, S extends ForwardServer> {
  readonly #client: net.Socket
  readonly #upstream: net.Socket
  readonly #conn: C
  readonly #sink: ForwardSink<C, S>
  readonly #maxHeaderBytes: number
  readonly #onEnd: (end: WatchEnd) => void
  /** Request kinds forwarded whose final response head has not come yet. */
  readonly #pending: number[] = []
  readonly #req: MessageFramer
  readonly #res: MessageFramer
  /** Client bytes read and not forwarded: a later head waiting to be complete or judged, or what follows it. */
  #held: Buffer | undefined
  #requests = 0
  #tunnel = false
  #waitUpgrade = false
  #moving: MoveReason | undefined
  #discard = false
  #clientEnded = false
  #serverEnded = false
  #bytesUp = 0
  #finished = false
  /** A write returned false: its 'drain' listener is registered (once, not per write). */
  #upBlocked = false
  #downBlocked = false

  constructor (client: net.Socket, upstream: net.Socket, conn: C, sink: ForwardSink<C, S>, maxHeaderBytes: number,
    idleTimeoutMs: number, onEnd: (end: WatchEnd) => void) {
    this.#client = client
    this.#upstream = upstream
    this.#conn = conn
    this.#sink = sink
    this.#maxHeaderBytes = maxHeaderBytes
    this.#onEnd = onEnd
    this.#req = new MessageFramer(true, this.#pending)
    this.#res = new MessageFramer(false, this.#pending)
    client.on('data', this.#onClientData)
    client.on('end', this.#onClientEnd)
    client.on('error', this.#onError)
    client.on('finish', this.#check)
    upstream.on('data', this.#onServerData)
    upstream.on('end', this.#onServerEnd)
    upstream.on('error', this.#onError)
    upstream.on('finish', this.#check)
    if (idleTimeoutMs > 0) {
      client.setTimeout(idleTimeoutMs, this.#onIdle)
      upstream.setTimeout(idleTimeoutMs, this.#onIdle)
    }
    if (conn.consumed !== undefined && conn.consumed.length > 0) this.#onClientData(conn.consumed)
    if (!this.#finished && this.#moving === undefined && !this.#waitUpgrade) client.resume() // a returned socket comes paused
  }

  /** Resets both sides (SO_LINGER{1,0}) and ends with errno. Idempotent. */
  abort (errno: number): void {
    if (this.#finished) return
    for (const s of [this.#client, this.#upstream]) {
      try {
        s.resetAndDestroy()
      } catch {
        s.destroy() // not TCP (Unix stream upstream)
      }
    }
    this.#end(errno, undefined)
  }

  readonly #onError = (err: Error): void => { this.abort(errnoOf(err)) }
  readonly #onIdle = (): void => { this.abort(ETIMEDOUT) }

  readonly #onClientData = (chunk: Buffer): void => {
    if (this.#discard || this.#finished) return
    if (this.#tunnel) return this.#writeUp(chunk)
    this.#held = this.#held === undefined ? chunk : Buffer.concat([this.#held, chunk])
    this.#pumpUp()
  }

  /** Forwards held client bytes up to the next later head, which is judged first; stops where it must wait. */
  #pumpUp (): void {
    while (this.#held !== undefined && this.#moving === undefined && !this.#waitUpgrade && !this.#finished) {
      const held = this.#held
      if (this.#tunnel) {
        this.#held = undefined
        return this.#writeUp(held)
      }
      if (this.#req.atBoundary && this.#requests > 0 && !this.#judge(held)) return
      let stop: number
      try {
        stop = this.#req.feed(held, 0, held.length)
      } catch (err) {
        if (err instanceof FramingError) return this.abort(EPROTO)
        throw err
      }
      this.#held = stop < held.length ? held.subarray(stop) : undefined
      this.#writeUp(stop < held.length ? held.subarray(0, stop) : held)
      if (!this.#req.ended) continue
      this.#requests++
      if ((this.#req.lastKind & (REQ_CONNECT | REQ_UPGRADE)) !== 0) {
        this.#waitUpgrade = true // what follows may not be HTTP: wait for the response
        this.#client.pause()
      }
    }
    if (this.#clientEnded && this.#held === undefined && this.#moving === undefined && !this.#waitUpgrade) this.#shutUp()
  }

  /** A later head at held[0]: true when it stays (forward it); false to wait for more bytes, or when it moves. */
  #judge (held: Buffer): boolean {
    let r = sniffHead(held, held.length, this.#maxHeaderBytes)
    if (r.kind === 'incomplete') {
      if (!this.#clientEnded) return false
      r = REJECT.parse // the client ended inside a head: the data path answers it
    }
    const reason = this.#sink.nextRequest(this.#conn, r) ?? (r.kind === 'reject' ? 'reroute' : undefined)
    if (reason === undefined) return true
    this.#moving = reason
    this.#client.pause()
    this.#checkMoved()
    return false
  }

  #writeUp (b: Buffer): void {
    if (b.length === 0) return
    this.#bytesUp += b.length
    if (!this.#upstream.write(b) && !this.#upBlocked) {
      this.#upBlocked = true
      this.#client.pause()
      this.#upstream.once('drain', this.#resumeClient)
    }
  }

  readonly #resumeClient = (): void => {
    this.#upBlocked = false
    if (this.#moving === undefined && !this.#waitUpgrade && !this.#finished) this.#client.resume()
  }

  readonly #onClientEnd = (): void => {
    this.#clientEnded = true
    if (this.#discard || this.#tunnel) this.#shutUp()
    else this.#pumpUp()
    this.#check()
  }

  #shutUp (): void {
    if (!this.#upstream.writableEnded) this.#upstream.end()
  }

  readonly #onServerData = (chunk: Buffer): void => {
    if (this.#finished) return
    if (this.#tunnel) return this.#writeDown(chunk)
    let off = 0
    try {
      while (off < chunk.length && !this.#res.tunnel && !this.#res.untilClose) {
        if (this.#moving !== undefined && this.#pending.length === 0 && this.#res.atBoundary) break
        off = this.#res.feed(chunk, off, chunk.length)
      }
    } catch (err) {
      if (err instanceof FramingError) return this.abort(EPROTO)
      throw err
    }
    if (this.#res.tunnel) {
      this.#writeDown(chunk)
      return this.#startTunnel()
    }
    this.#writeDown(off < chunk.length && !this.#res.untilClose ? chunk.subarray(0, off) : chunk)
    if (this.#waitUpgrade && this.#pending.length === 0) { // the upgrade was answered without one
      this.#waitUpgrade = false
      this.#client.resume()
      this.#pumpUp()
    }
    this.#checkMoved()
  }

  #writeDown (b: Buffer): void {
    if (!this.#client.write(b) && !this.#downBlocked) {
      this.#downBlocked = true
      this.#upstream.pause()
      this.#client.once('drain', this.#resumeServer)
    }
  }

  readonly #resumeServer = (): void => {
    this.#downBlocked = false
    if (!this.#finished) this.#upstream.resume()
  }

  #startTunnel (): void {
    this.#tunnel = true
    this.#waitUpgrade = false
    const held = this.#held
    this.#held = undefined
    if (held !== undefined) this.#writeUp(held)
    if (this.#clientEnded) this.#shutUp()
    else this.#client.resume()
  }

  readonly #onServerEnd = (): void => {
    this.#serverEnded = true
    this.#client.end()
    if (this.#moving !== undefined || this.#waitUpgrade) {
      // Framed by close, or the server left: the connection cannot move. Drop what waited and read the client
      // to its end, so that closing it does not reset the responses it has not read yet.
      this.#moving = undefined
      this.#waitUpgrade = false
      this.#discard = true
      this.#held = undefined
      this.#shutUp()
      this.#client.resume()
    }
    this.#check()
  }

  /** Moving, and every response before the moving request went down whole: hand the client back. */
  #checkMoved (): void {
    const reason = this.#moving
    if (reason === undefined || this.#pending.length > 0 || !this.#res.atBoundary || this.#finished) return
    const client = this.#client
    this.#detach()
    this.#upstream.destroy()
    client.setTimeout(0)
    const parts: Buffer[] = this.#held !== undefined ? [this.#held] : []
    for (let b: Buffer | null; (b = client.read() as Buffer | null) !== null;) parts.push(b)
    this.#held = undefined
    this.#end(0, { consumed: parts.length === 1 ? parts[0]! : Buffer.concat(parts), reason })
  }

  #detach (): void {
    const c = this.#client
    const u = this.#upstream
    c.removeListener('data', this.#onClientData)
    c.removeListener('end', this.#onClientEnd)
    c.removeListener('error', this.#onError)
    c.removeListener('finish', this.#check)
    c.removeListener('drain', this.#resumeServer)
    c.removeListener('timeout', this.#onIdle)
    u.removeListener('data', this.#onServerData)
    u.removeListener('end', this.#onServerEnd)
    u.removeListener('finish', this.#check)
    u.removeListener('drain', this.#resumeClient)
    u.on('error', () => {}) // destroyed next; a late error must not go uncaught
    u.removeListener('error', this.#onError)
  }

  /** Both directions ended (each side's EOF seen and our end of it flushed): the relay is over. */
  readonly #check = (): void => {
    if (this.#finished || !this.#clientEnded || !this.#serverEnded) return
    if (!this.#client.writableFinished || !this.#upstream.writableFinished) return
    this.#client.destroy()
    this.#upstream.destroy()
    this.#end(0, undefined)
  }

  #end (errno: number, moved: WatchEnd['moved']): void {
    if (this.#finished) return
    this.#finished = true
    this.#onEnd({ stats: { bytesUp: this.#bytesUp, bytesDown: this.#upstream.bytesRead, errno }, moved })
  }
}
