// HTTP/1.1 message framing for relays that watch request boundaries (conn.watch): where each request and
// each response ends, so a relay can stop before a request that moves and let the responses before it
// finish. A streaming byte machine, no buffering: heads are read byte by byte (only the first line's start
// and the values of Content-Length, Transfer-Encoding and Upgrade are kept), bodies are counted (Content-
// Length) or walked (chunked: sizes, extensions, data, trailers). native/src/splice_http.cc is the same
// machine in C++ for the splice relay; keep the two in step.
//
// Request heads reaching this framer were accepted by sniffHead (the first by the dispatcher, each later one
// by the relay before it is forwarded), so their framing headers are already unambiguous. Anything the
// framer cannot follow (a bad chunk line, a response without a status) is an error: the relay resets the
// connection rather than guess where the next request starts.

/** Request kinds, queued per forwarded request so that its response can be framed (RFC 9112 6.3). */
export const REQ_HEAD = 1
export const REQ_CONNECT = 2
export const REQ_UPGRADE = 4

// Head states.
const H_LINE = 0 // inside a line (the first line or a header value/name)
const H_CR = 1 // a CR inside the head: LF must follow
// Body states.
const B_NONE = 10 // between messages: the next byte starts a head
const B_LENGTH = 11
const B_CHUNK_SIZE = 12
const B_CHUNK_EXT = 13
const B_CHUNK_SIZE_LF = 14
const B_CHUNK_DATA = 15
const B_CHUNK_DATA_CR = 16
const B_CHUNK_DATA_LF = 17
const B_TRAILER = 18 // at the start of a trailer line
const B_TRAILER_LINE = 19
const B_TRAILER_LF = 20
const B_TRAILER_END_LF = 21
const B_CLOSE = 30 // the response ends when the server closes
const B_TUNNEL = 31 // 101 or CONNECT 2xx: no more HTTP

// Header names the framer keeps (lower case), by index.
const NAMES = ['content-length', 'transfer-encoding', 'upgrade'] as const
const N_CL = 0
const N_TE = 1
const N_UPGRADE = 2
const NAME_CODES = NAMES.map((n) => Array.from(n, (c) => c.charCodeAt(0)))
const MAX_VALUE = 256
const MAX_HEX_DIGITS = 15

const CR = 0x0d
const LF = 0x0a
const COLON = 0x3a

export class FramingError extends Error {}

/**
 * One direction's framer. feed() consumes bytes and stops right after a message ends (so the caller acts
 * at each boundary); `ended` then says a message ended there and `final` whether it was a final response.
 * Responses take their request's kind from `pending` (shared with the request framer, which pushes one
 * kind per request head it reads). Hot path for relayed keep-alive: no allocation per byte or per message.
 */
export class MessageFramer {
  readonly #request: boolean
  readonly #pending: number[]
  #state = B_NONE
  #left = 0 // B_LENGTH, B_CHUNK_DATA: bytes still to come
  #hex = 0 // digits of the chunk size so far
  // Head scratch, reset per message.
  #lineStart = true
  #lineNo = 0
  #first = 0 // first line: the method's first byte (request) / the status code (response)
  #firstLen = 0
  #nameIdx = -1 // NAMES index still matching the current header name, -1 none, -2 not a name any more
  #namePos = 0
  #inValue = false
  #value = ''
  #clSeen = false
  #cl = 0
  #teSeen = false
  #teChunked = false
  #upgrade = false
  #methodHead = false
  #methodConnect = false
  /** After feed(): a message ended at the returned offset. */
  ended = false
  /** After feed() with ended: a final response (not 1xx), or any request. */
  final = false
  /** The kinds (REQ_*) of the request whose head was read last (request framers). */
  lastKind = 0
  /** The status of the response head read last (response framers). */
  status = 0

  constructor (request: boolean, pending: number[]) {
    this.#request = request
    this.#pending = pending
  }

  /** Between messages, with no byte of the next one read. */
  get atBoundary (): boolean { return this.#state === B_NONE }
  /** The message in flight ends when the server closes (responses only). */
  get untilClose (): boolean { return this.#state === B_CLOSE }
  /** 101 or CONNECT 2xx went by: the connection is no longer HTTP. */
  get tunnel (): boolean { return this.#state === B_TUNNEL }

  /** Consumes buf[off, end) up to the end of one message; returns where it stopped. Throws FramingError. */
  feed (buf: Uint8Array, off: number, end: number): number {
    this.ended = false
    let i = off
    while (i < end) {
      const s = this.#state
      if (s === B_LENGTH || s === B_CHUNK_DATA) {
        const n = Math.min(this.#left, end - i)
        i += n
        this.#left -= n
        if (this.#left === 0) {
          if (s === B_CHUNK_DATA) this.#state = B_CHUNK_DATA_CR
          else { this.#done(); return i }
        }
        continue
      }
      if (s === B_CLOSE || s === B_TUNNEL) return end
      if (s === H_LINE && this.#skipping()) { // the rest of a line nothing is kept of: to its CR (or a bare LF)
        while (i < end && buf[i] !== CR && buf[i] !== LF) i++
        if (i === end) break
      }
      const c = buf[i++]!
      if (s < B_NONE || s === B_NONE) {
        if (this.#headByte(c)) return i
      } else if (this.#bodyByte(c)) {
        return i
      }
    }
    return i
  }

  /** Inside a line whose remaining bytes change nothing: a header value not kept, or the first line past what is read of it. */
  #skipping (): boolean {
    if (this.#lineStart) return false
    if (this.#lineNo === 0) return this.#firstLen > (this.#request ? 8 : 12)
    return this.#inValue && this.#nameIdx === -2
  }

  #done (): void {
    this.#state = B_NONE
    this.ended = true
  }

  /** One head byte; true when the message ended (a head without a body). */
  #headByte (c: number): boolean {
    if (this.#state === B_NONE) this.#startHead()
    if (this.#state === H_CR) {
      if (c !== LF) throw new FramingError('CR without LF in a head')
      this.#state = H_LINE
      if (this.#lineStart) return this.#headEnd() // the blank line
      this.#endLine()
      return false
    }
    if (c === CR) {
      this.#state = H_CR
      return false
    }
    if (c === LF) throw new FramingError('LF without CR in a head')
    if (this.#lineNo === 0) this.#firstByte(c)
    else this.#fieldByte(c)
    this.#lineStart = false
    return false
  }

  #startHead (): void {
    this.#state = H_LINE
    this.#lineStart = true
    this.#lineNo = 0
    this.#first = this.#firstLen = 0
    this.#nameIdx = -1
    this.#namePos = 0
    this.#inValue = false
    this.#clSeen = this.#teSeen = this.#teChunked = this.#upgrade = false
    this.#methodHead = this.#methodConnect = false
    this.#cl = 0
  }

  /** The first line: a request's method (HEAD, CONNECT), a response's three status digits. */
  #firstByte (c: number): void {
    const k = this.#firstLen++
    if (this.#request) {
      // 'HEAD ' and 'CONNECT ': compare as we go; #first = bitmask of candidates still matching.
      if (k === 0) this.#first = (c === 0x48 ? 1 : 0) | (c === 0x43 ? 2 : 0)
      else {
        if ((this.#first & 1) !== 0 && (k > 4 || c !== 'HEAD '.charCodeAt(k))) this.#first &= ~1
        if ((this.#first & 2) !== 0 && (k > 7 || c !== 'CONNECT '.charCodeAt(k))) this.#first &= ~2
        if (k === 4 && (this.#first & 1) !== 0) this.#methodHead = true
        if (k === 7 && (this.#first & 2) !== 0) this.#methodConnect = true
      }
    } else if (k >= 9 && k <= 11) {
      const d = c - 0x30
      if (d < 0 || d > 9) throw new FramingError('bad status code')
      this.#first = this.#first * 10 + d
    }
  }

  #fieldByte (c: number): void {
    if (this.#lineStart) {
      this.#nameIdx = -1
      this.#namePos = 0
      this.#inValue = false
      this.#value = ''
    }
    if (this.#inValue) {
      if (this.#nameIdx >= 0) {
        if (this.#value.length >= MAX_VALUE) throw new FramingError('framing header value too long')
        this.#value += String.fromCharCode(c)
      }
      return
    }
    if (c === COLON) {
      this.#inValue = true
      if (this.#nameIdx >= 0 && this.#namePos !== NAMES[this.#nameIdx]!.length) this.#nameIdx = -2
      return
    }
    const lc = c >= 0x41 && c <= 0x5a ? c | 0x20 : c
    if (this.#namePos === 0) {
      this.#nameIdx = -2
      for (let k = 0; k < NAMES.length; k++) if (NAME_CODES[k]![0] === lc) { this.#nameIdx = k; break }
    } else if (this.#nameIdx >= 0 && NAME_CODES[this.#nameIdx]![this.#namePos] !== lc) {
      this.#nameIdx = -2
    }
    this.#namePos++
  }

  /** A header line ended: take its value if it is one the framer keeps. */
  #endLine (): void {
    const idx = this.#lineNo === 0 ? -1 : this.#nameIdx
    this.#lineNo++
    this.#lineStart = true
    if (idx < 0 || !this.#inValue) return
    const v = this.#value.trim()
    if (idx === N_CL) {
      if (!/^[0-9]{1,15}$/.test(v)) throw new FramingError('bad Content-Length')
      const n = Number(v)
      if (this.#clSeen && n !== this.#cl) throw new FramingError('conflicting Content-Length')
      this.#clSeen = true
      this.#cl = n
    } else if (idx === N_TE) {
      this.#teSeen = true
      const comma = v.lastIndexOf(',')
      this.#teChunked = v.slice(comma + 1).trim().toLowerCase() === 'chunked'
    } else if (idx === N_UPGRADE) {
      this.#upgrade = true
    }
  }

  /** The blank line: pick the body's framing; true when the message has no body (it ended here). */
  #headEnd (): boolean {
    if (this.#lineNo === 0) throw new FramingError('empty line where a head should start')
    this.final = true
    if (this.#request) return this.#requestHeadEnd()
    const status = this.#first
    this.status = status
    if (this.#firstLen < 12 || status < 100) throw new FramingError('bad status line')
    if (status < 200 && status !== 101) { // informational: another response to the same request follows
      this.final = false
      this.#done()
      return true
    }
    const kind = this.#pending.shift() ?? 0
    if (status === 101 || ((kind & REQ_CONNECT) !== 0 && status < 300)) {
      this.#state = B_TUNNEL
      this.ended = true
      return true
    }
    if ((kind & REQ_HEAD) !== 0 || status === 204 || status === 304) { this.#done(); return true }
    if (this.#teSeen) return this.#body(this.#teChunked ? B_CHUNK_SIZE : B_CLOSE)
    if (this.#clSeen) return this.#length()
    this.#state = B_CLOSE
    return false
  }

  #requestHeadEnd (): boolean {
    this.lastKind = (this.#methodHead ? REQ_HEAD : 0) | (this.#methodConnect ? REQ_CONNECT : 0) |
      (this.#upgrade ? REQ_UPGRADE : 0)
    this.#pending.push(this.lastKind)
    if (this.#teSeen) {
      if (!this.#teChunked) throw new FramingError('request Transfer-Encoding other than chunked')
      return this.#body(B_CHUNK_SIZE)
    }
    if (this.#clSeen) return this.#length()
    this.#done()
    return true
  }

  #length (): boolean {
    if (this.#cl === 0) { this.#done(); return true }
    this.#left = this.#cl
    this.#state = B_LENGTH
    return false
  }

  #body (state: number): boolean {
    this.#state = state
    this.#hex = 0
    this.#left = 0
    return false
  }

  /** One byte of a chunked body outside chunk data; true when the body (and the message) ended. */
  #bodyByte (c: number): boolean {
    switch (this.#state) {
      case B_CHUNK_SIZE: {
        const d = hexDigit(c)
        if (d >= 0) {
          if (++this.#hex > MAX_HEX_DIGITS) throw new FramingError('chunk size too large')
          this.#left = this.#left * 16 + d
          return false
        }
        if (this.#hex === 0) throw new FramingError('chunk size missing')
        if (c === CR) { this.#state = B_CHUNK_SIZE_LF; return false }
        if (c === 0x3b || c === 0x20 || c === 0x09) { this.#state = B_CHUNK_EXT; return false }
        throw new FramingError('bad chunk size')
      }
      case B_CHUNK_EXT:
        if (c === CR) this.#state = B_CHUNK_SIZE_LF
        else if (c === LF || (c < 0x20 && c !== 0x09) || c === 0x7f) throw new FramingError('bad chunk extension')
        return false
      case B_CHUNK_SIZE_LF:
        if (c !== LF) throw new FramingError('CR without LF after a chunk size')
        this.#hex = 0
        if (this.#left === 0) { this.#state = B_TRAILER; return false }
        this.#state = B_CHUNK_DATA
        return false
      case B_CHUNK_DATA_CR:
        if (c !== CR) throw new FramingError('chunk data longer than its size')
        this.#state = B_CHUNK_DATA_LF
        return false
      case B_CHUNK_DATA_LF:
        if (c !== LF) throw new FramingError('CR without LF after chunk data')
        this.#state = B_CHUNK_SIZE
        return false
      case B_TRAILER:
        if (c === CR) { this.#state = B_TRAILER_END_LF; return false }
        if (c === LF) throw new FramingError('LF without CR in trailers')
        this.#state = B_TRAILER_LINE
        return false
      case B_TRAILER_LINE:
        if (c === CR) this.#state = B_TRAILER_LF
        else if (c === LF) throw new FramingError('LF without CR in trailers')
        return false
      case B_TRAILER_LF:
        if (c !== LF) throw new FramingError('CR without LF in trailers')
        this.#state = B_TRAILER
        return false
      case B_TRAILER_END_LF:
        if (c !== LF) throw new FramingError('CR without LF after trailers')
        this.#done()
        return true
      default:
        throw new FramingError(`framer in state ${this.#state}`)
    }
  }
}

function hexDigit (c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  const l = c | 0x20
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1
}
