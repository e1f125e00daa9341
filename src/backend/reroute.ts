// Per-request routing on kept-alive connections, the back end's half (docs/keep-alive.md). The dispatcher
// routed the first request of a connection; each later one is checked here, against the routes the
// dispatcher sent over the channel (ROUTES), with the same rules (request/sniff.ts checkParsedHead, the
// same Router) applied to the head exactly as this process's parser (Node's llhttp) read it, so the route
// and the application can never disagree. A request that stays in this connection's service goes to the
// application as usual. One that routes elsewhere (or that the dispatcher would refuse, or that must move
// to shed load) never reaches the application: the connection goes back to the dispatcher after the
// responses before it were written, with that request's head and every byte read after it (HANDBACK).
//
// How the parser is stopped at that head: Node's http.Server gives each head to parser.onIncoming, whose
// return value goes back to llhttp's on_headers_complete. Returning HPE_PAUSED stops llhttp right after
// the head; Node reports the pause as a parse error ('clientError') whose rawPacket and bytesParsed locate
// the bytes read but not parsed. The socket stops reading at once, so nothing else is read from the kernel.
// The head itself is written again from what Node parsed (method, target, version, rawHeaders in order).
import type http from 'node:http'
import type { ErrorCode } from '../errors'
import type net from 'node:net'
import { MAX_CONSUMED_BYTES, type HandbackReason } from '../protocol/handoff'
import { nameIs } from '../request/headers'
import { Router } from '../request/route'
import { decodeRouteTable, type RouteTable } from '../request/route-table'
import { checkParsedHead, framingTabIn } from '../request/sniff'

/** llhttp's HPE_PAUSED: a callback that returns it pauses the parser (llhttp.h). */
const HPE_PAUSED = 21

/** A move under way: the parser stopped at `head`; `rest` (read after it) is known once Node reported the pause. */
export interface Move {
  readonly reason: HandbackReason
  readonly head: Buffer
  rest: Buffer | undefined
  /**
   * The request breaks a rule only this process can see (the raw bytes of its head, which its parser does
   * not keep): it is answered here, with the dispatcher's answer, instead of going back.
   */
  readonly answer?: { readonly status: number; readonly code: ErrorCode } | undefined
}

/** What the rerouter needs of a connection's record (backend/channel.ts ConnRecord). */
export interface WatchedConn {
  /** The service the dispatcher handed this connection to. */
  readonly service: string
  /** Heads parsed on this connection so far (the first was routed by the dispatcher). */
  heads: number
  /** performance.now() when this process adopted the connection. */
  readonly adoptedAt: number
  /** Marked to move at its next request to shed load (REBALANCE). */
  shed: boolean
  move: Move | undefined
  /** The last head checked on this connection that stays, or undefined (RouteCheck.verdict's memo). */
  stayed: CheckedHead | undefined
}

/**
 * Everything a verdict reads of a head (method, target, version, every field as received) and the routes
 * it was judged by: a later head equal in all of them has the same verdict, so it is not checked again.
 * One per connection, rewritten in place (no allocation per request once its field list has grown).
 */
interface CheckedHead {
  check: RouteCheck
  method: string
  url: string
  major: number
  minor: number
  /** A copy: the application may change req.rawHeaders. */
  raw: string[]
}

/** One dispatcher's routes, compiled (per channel: two dispatchers may differ during a takeover). */
export class RouteCheck {
  readonly router: Router<string>
  readonly moveIntervalMs: number
  readonly maxHeaderBytes: number

  constructor (table: RouteTable) {
    this.router = new Router(table.routes, (name) => name)
    this.moveIntervalMs = table.moveIntervalMs
    this.maxHeaderBytes = table.maxHeaderBytes
  }

  /** The compiled table in `json`, or why it cannot be used. */
  static parse (json: string): RouteCheck | string {
    const t = decodeRouteTable(json)
    return typeof t === 'string' ? t : new RouteCheck(t)
  }

  /**
   * undefined: the request stays; else why the connection moves. Per later request: a head equal to the
   * last one that stayed (CheckedHead) costs a comparison; any other is checked in full, allocating its
   * RequestHead, and, when it stays, the memo's copy of its fields.
   */
  verdict (req: http.IncomingMessage, conn: WatchedConn): HandbackReason | undefined {
    const method = req.method ?? ''
    const url = req.url ?? ''
    const raw = req.rawHeaders
    const last = conn.stayed
    if (last === undefined || last.check !== this || !sameHead(last, method, url, req, raw)) {
      const size = headSize(method, url, raw)
      if (size > this.maxHeaderBytes) return 'reroute' // the dispatcher answers 431
      const r = checkParsedHead(method, url, req.httpVersionMajor, req.httpVersionMinor, raw, size)
      if (r.kind !== 'ok') return 'reroute'
      const m = this.router.match(r.head)
      if (m === null || m.route.service !== conn.service) return 'reroute'
      remember(conn, this, method, url, req, raw)
    }
    return conn.shed ? 'rebalance' : undefined
  }
}

/** Makes the head that stayed the connection's CheckedHead. */
function remember (conn: WatchedConn, check: RouteCheck, method: string, url: string, req: http.IncomingMessage, raw: readonly string[]): void {
  const m = conn.stayed
  if (m === undefined) {
    conn.stayed = { check, method, url, major: req.httpVersionMajor, minor: req.httpVersionMinor, raw: raw.slice() }
    return
  }
  m.check = check
  m.method = method
  m.url = url
  m.major = req.httpVersionMajor
  m.minor = req.httpVersionMinor
  if (m.raw.length !== raw.length) m.raw = raw.slice()
  else for (let i = 0; i < raw.length; i++) m.raw[i] = raw[i]!
}

/** Whether the head is the one `last` describes, field for field (strings compare by content). */
function sameHead (last: CheckedHead, method: string, url: string, req: http.IncomingMessage, raw: readonly string[]): boolean {
  if (last.url !== url || last.method !== method || last.major !== req.httpVersionMajor || last.minor !== req.httpVersionMinor) return false
  const prev = last.raw
  if (prev.length !== raw.length) return false
  for (let i = 0; i < raw.length; i++) if (prev[i] !== raw[i]) return false
  return true
}

interface NodeParser {
  onIncoming: ((req: http.IncomingMessage, keepAlive: boolean) => number) | null
  getCurrentBuffer?: () => Buffer
}

/** A verdict that the back end answers itself (see Move.answer). */
export const FRAMING_TAB = Object.freeze({ status: 400, code: 'BATON_ERR_BAD_REQUEST' as ErrorCode })

interface StreamHandle { reading?: boolean; readStop?: () => number; readStart?: () => number; fd?: number }

/**
 * Hooks the parser of a socket the http.Server just took ('connection' ran synchronously). `check()`
 * returns the route check that applies now (undefined: none, the request goes on); `moving(conn)` is
 * called once the parser stopped at a request that moves. False when the socket has no parser to hook
 * (then nothing is checked: the connection stays, as with keepAlive: sticky).
 */
export function hookParser (socket: net.Socket, conn: WatchedConn, check: () => RouteCheck | undefined): boolean {
  const parser = (socket as unknown as { parser?: NodeParser }).parser
  const incoming = parser?.onIncoming
  if (parser == null || typeof incoming !== 'function') return false
  parser.onIncoming = function onIncoming (req, keepAlive) {
    if (++conn.heads > 1 && conn.move === undefined) {
      const rc = check()
      const why = rc?.verdict(req, conn)
      // Node trims a framing header's value: HTAB in it (refused on a first head) shows only in the bytes.
      // (Not req.headers: Node builds that object on first use, which the application may never make.)
      const answer = rc !== undefined && hasFramingField(req.rawHeaders) &&
        typeof parser.getCurrentBuffer === 'function' && framingTabIn(parser.getCurrentBuffer()) ? FRAMING_TAB : undefined
      if (why !== undefined || answer !== undefined) {
        stopReading(socket)
        conn.move = { reason: why ?? 'reroute', head: serializeHead(req), rest: undefined, answer }
        return HPE_PAUSED
      }
    }
    return incoming.call(this, req, keepAlive)
  }
  return true
}

/**
 * Node reported the pause as a parse error: `err.rawPacket` is the buffer being parsed, `err.bytesParsed`
 * where the head ended in it. True when it was our pause (the move now knows its bytes).
 */
export function pauseReported (conn: WatchedConn, err: unknown): boolean {
  const move = conn.move
  const e = err as { code?: unknown, rawPacket?: unknown, bytesParsed?: unknown } | null
  if (move === undefined || move.rest !== undefined || e?.code !== 'HPE_PAUSED') return false
  const raw = Buffer.isBuffer(e.rawPacket) ? e.rawPacket : undefined
  const at = typeof e.bytesParsed === 'number' ? e.bytesParsed : 0
  move.rest = raw !== undefined && at < raw.length ? Buffer.from(raw.subarray(at)) : Buffer.alloc(0)
  return true
}

/**
 * A moving request that llhttp read as an upgrade (Upgrade header, CONNECT): Node does not report the pause
 * as an error but hands the head to 'upgrade' / 'connect' with `bodyHead`, the bytes read after it. True
 * when it was our move (the move now knows its bytes).
 */
export function upgradeReported (conn: WatchedConn, bodyHead: unknown): boolean {
  const move = conn.move
  if (move === undefined || move.rest !== undefined) return false
  move.rest = Buffer.isBuffer(bodyHead) ? Buffer.from(bodyHead) : Buffer.alloc(0)
  return true
}

/** The bytes that go back with the connection, or undefined when they are more than a HANDBACK carries. */
export function movedBytes (move: Move): Buffer | undefined {
  const n = move.head.length + (move.rest?.length ?? 0)
  return n > MAX_CONSUMED_BYTES ? undefined : Buffer.concat([move.head, move.rest ?? Buffer.alloc(0)], n)
}

/** Whether enough time passed since the connection came here for it to move again to shed load. */
export function mayShed (conn: WatchedConn, check: RouteCheck | undefined, now: number): boolean {
  return check !== undefined && now - conn.adoptedAt >= check.moveIntervalMs
}

/** The socket's fd, for the HANDBACK (-1 when it has none any more). */
export function socketFd (socket: net.Socket): number {
  const fd = (socket as unknown as { _handle?: StreamHandle | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : -1
}

/**
 * Stops reading for good: the socket is about to leave this process, and not one more byte may be taken
 * from the kernel. Node itself resumes a socket it paused for pipelining backpressure (socketOnDrain), so
 * this handle's readStart is disabled too (the handle goes away with the socket).
 */
function stopReading (socket: net.Socket): void {
  const h = (socket as unknown as { _handle?: StreamHandle | null })._handle
  if (h == null || typeof h.readStop !== 'function') return
  h.reading = false
  h.readStop()
  h.readStart = () => 0
}

/** The length of the head serializeHead writes (as the dispatcher would measure it). */
function headSize (method: string, url: string, raw: readonly string[]): number {
  let n = method.length + url.length + 13 // ' ' + ' HTTP/1.1\r\n' + final CRLF
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2 // name + ': ' / value + CRLF
  return n
}

/** Whether a Content-Length or Transfer-Encoding field is among the flat [name, value, ...] list. */
function hasFramingField (raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.length
    if ((n === 14 || n === 17) && (nameIs(raw[i]!, 'content-length') || nameIs(raw[i]!, 'transfer-encoding'))) return true
  }
  return false
}

/** The head as Node parsed it, written again: request line, each field as received (latin1, as Node decoded it). */
export function serializeHead (req: http.IncomingMessage): Buffer {
  let s = `${req.method ?? ''} ${req.url ?? ''} HTTP/${req.httpVersion}\r\n`
  const raw = req.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) s += `${raw[i]!}: ${raw[i + 1]!}\r\n`
  return Buffer.from(s + '\r\n', 'latin1')
}
