// The handoff channel's messages (AF_UNIX SOCK_SEQPACKET: one message per sendmsg, boundaries kept).
//
// dispatcher -> back end, with the client's fd attached (SCM_RIGHTS):
//   HANDOFF  u8 type=1 | u8 version=1 | u32le connId | u8 n | service (n bytes utf8) | u8 m | route (m bytes)
//            [ | u8 flags | consumed bytes (the rest of the message) ]
//            The optional tail goes only to a back end that announced CAP_HANDBACK. flags: HANDOFF_STICKY =
//            the service keeps kept-alive connections where they are (keepAlive: sticky), so the back end
//            checks no later request. consumed: bytes already taken from the client's socket (a connection
//            that moved: the head of the request that moved it, and whatever followed); the back end's
//            http.Server reads them before anything from the socket.
//   ROUTES   u8 type=10 | u8 flags (1 = first fragment, 2 = last) | utf8 JSON fragment, no fd
//            The compiled routes (request/route-table.ts), in fragments of at most ROUTES_FRAGMENT_BYTES;
//            sent to a back end with CAP_HANDBACK when it announced it, and again after every reload.
//   REBALANCE u8 type=12 | u32le count, no fd
//            Hand back up to `count` kept-alive connections at their next request boundary (the service's
//            weights changed and this server holds more than its share).
// back end -> dispatcher, no fd:
//   FEEDBACK u8 type=2 | u32le closed | i32le dActive | i32le dInactive
//            Counter deltas for the connections this channel handed over, coalesced per event-loop turn:
//            active = a request in flight, inactive = idle keep-alive. `closed` connections ended. Also
//            for connections another channel handed over and then closed: the back end reports those on
//            one surviving channel (counted up as they are, before its first PONG when it connects).
//   GOODBYE  u8 type=3   The back end takes no new connections (draining); existing ones continue.
// Heartbeat (liveness), no fd:
//   PING     u8 type=4 | u32le seq   dispatcher -> back end, every limits.channelTimeoutMs / 4.
//   PONG     u8 type=5 | u32le seq   back end -> dispatcher: the PING's seq, sent at once by the code that
//            reads the channel (never by a timer), so a back end that is stopped, blocked or not reading its
//            channel does not answer. A back end never sends PONG unasked.
// Back-end reports, no fd, sent only to a dispatcher that has pinged (an older one would close the channel):
//   HELLO    u8 type=6 | u8 kind (1 = TCP, 2 = Unix path) | u16le port | u8 n | host or path (n bytes)
//            Where the back end's own http.Server answers, for the dispatcher's active health checks.
//            Sent once per channel, in answer to its first PING (the dispatcher pings as it connects) and
//            before that PONG: a dispatcher with the PONG knows whether a HELLO came. Never sent by a back end
//            that listens nowhere but on its handoff socket: its checks then fail.
//   REPORT   u8 type=7 | u8 state (0 = unchanged, 1 = ready, 2 = drain, 3 = maint) | u8 percent (0..100,
//            255 = unchanged)   The back end's own word on its state and weight (HAProxy's agent-check);
//            the latest is sent before the first PONG (if the back end set one) and on every change.
//   CAPS     u8 type=9 | u32le capabilities   What this back end can do (CAP_HANDBACK: it checks each later
//            request on a kept-alive connection against ROUTES and hands the connection back). Sent once per
//            channel, before the first PONG.
//   HANDBACK u8 type=11 | u8 reason (1 = reroute, 2 = rebalance) | u32le connId | u16le client port |
//            u16le local port | u8 n | client address | u8 m | local address | consumed bytes (the rest),
//            with the client's fd attached (SCM_RIGHTS); the addresses are the socket's own (as Node read them). The connection comes back at a request boundary: the
//            responses before it were written, `consumed` starts with the next request's head (as the back
//            end's parser read it) followed by every byte read after it; the socket holds the rest. The
//            dispatcher routes that request anew and hands the connection on (or answers it).
//   LATENCY  u8 type=8 | u8 n=14 | f64le sum (seconds) | n × u32le count   Request times on this channel's
//            connections since the last LATENCY, each from the http.Server's 'request' to the response's
//            'close': count[i] = requests with time ≤ LATENCY_BOUNDS[i] (and above the bound before it), the
//            last = above 10 s. Sent at most every 500 ms (they only feed /metrics; a message per
//            event-loop turn would cost the dispatcher a read per request batch), and only while some request
//            ended; 66 bytes.
//
// Versions: HANDOFF carries PROTOCOL_VERSION; the other messages are known by type and exact length. The
// dispatcher closes the channel on any message it does not know. The back end reports one it does not know
// (onError) and reads on, so a message added for the back end does not cut an older back end off.
// PING/PONG joined version 1 later, and every back end must answer PING: a baton/backend from before them
// reports each PING as a message without a descriptor and never answers, so a newer dispatcher keeps its
// channel open but takes it out of rotation as unresponsive. Upgrade back ends before the dispatcher; a
// newer back end works with an older dispatcher, which never pings.
import { bucketOf } from './buckets'

export const MSG_HANDOFF = 1
export const MSG_FEEDBACK = 2
export const MSG_GOODBYE = 3
export const MSG_PING = 4
export const MSG_PONG = 5
export const MSG_HELLO = 6
export const MSG_REPORT = 7
export const MSG_LATENCY = 8
export const MSG_CAPS = 9
export const MSG_ROUTES = 10
export const MSG_HANDBACK = 11
export const MSG_REBALANCE = 12
/** CAPS: the back end checks later requests against ROUTES and hands connections back. */
export const CAP_HANDBACK = 1
export const CAPS_BYTES = 5
export const REBALANCE_BYTES = 5
/** HANDOFF flags. */
export const HANDOFF_STICKY = 1
export const HANDBACK_REROUTE = 1
export const HANDBACK_REBALANCE = 2
export type HandbackReason = 'reroute' | 'rebalance'
/** Bytes already consumed that a HANDOFF or HANDBACK may carry (a head up to Node's limit plus one read). */
export const MAX_CONSUMED_BYTES = 128 * 1024
/** The largest HANDOFF or HANDBACK: a receive buffer for either must be this large. */
export const MAX_CARRY_BYTES = MAX_CONSUMED_BYTES + 1024
export const ROUTES_FRAGMENT_BYTES = 32 * 1024
export const ROUTES_FIRST = 1
export const ROUTES_LAST = 2
/** LATENCY's bucket bounds, seconds (upper, inclusive); one more bucket above the last. */
export const LATENCY_BOUNDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
export const LATENCY_BUCKETS = LATENCY_BOUNDS.length + 1
export const LATENCY_BYTES = 10 + 4 * LATENCY_BUCKETS
export const REPORT_BYTES = 3
export const REPORT_STATES = ['', 'ready', 'drain', 'maint'] as const
export type ReportState = 'ready' | 'drain' | 'maint'
export const PROTOCOL_VERSION = 1
export const FEEDBACK_BYTES = 13
/** PING and PONG. */
export const HEARTBEAT_BYTES = 5
/** Largest message either side sends or expects. */
export const MAX_MESSAGE_BYTES = 1024

export interface HandoffMeta {
  readonly connId: number
  readonly service: string
  readonly route: string
  /** HANDOFF_* bits; absent from a HANDOFF without the tail. */
  readonly flags?: number
  /** Bytes already consumed from the client, to be read first (a copy). */
  readonly consumed?: Buffer
}

/**
 * Writes a HANDOFF message into buf; returns its length. Names are capped at 255 bytes. buf must hold
 * MAX_MESSAGE_BYTES, or MAX_CARRY_BYTES when `consumed` is given (at most MAX_CONSUMED_BYTES of it).
 * flags and consumed only for a back end with CAP_HANDBACK (flags undefined: no tail).
 */
export function encodeHandoff (buf: Buffer, connId: number, service: string, route: string, flags?: number,
  consumed?: Buffer): number {
  buf[0] = MSG_HANDOFF
  buf[1] = PROTOCOL_VERSION
  buf.writeUInt32LE(connId >>> 0, 2)
  let off = 6
  off = writeShortString(buf, off, service)
  off = writeShortString(buf, off, route)
  if (flags === undefined && consumed === undefined) return off
  buf[off++] = flags ?? 0
  if (consumed !== undefined) off += consumed.copy(buf, off, 0, Math.min(consumed.length, MAX_CONSUMED_BYTES))
  return off
}

export function decodeHandoff (buf: Buffer, len: number): HandoffMeta | null {
  if (len < 8 || buf[0] !== MSG_HANDOFF || buf[1] !== PROTOCOL_VERSION) return null
  const connId = buf.readUInt32LE(2)
  const n = buf[6]!
  if (7 + n + 1 > len) return null
  const service = buf.toString('utf8', 7, 7 + n)
  const m = buf[7 + n]!
  const end = 8 + n + m
  if (end > len) return null
  const route = buf.toString('utf8', 8 + n, end)
  if (end === len) return { connId, service, route }
  const flags = buf[end]!
  return end + 1 === len
    ? { connId, service, route, flags }
    : { connId, service, route, flags, consumed: Buffer.from(buf.subarray(end + 1, len)) }
}

export function encodeCaps (buf: Buffer, caps: number): number {
  buf[0] = MSG_CAPS
  buf.writeUInt32LE(caps >>> 0, 1)
  return CAPS_BYTES
}

/** The capabilities in a CAPS message, or -1 when it is not one. */
export function decodeCaps (buf: Buffer, len: number): number {
  return len === CAPS_BYTES && buf[0] === MSG_CAPS ? buf.readUInt32LE(1) : -1
}

export function encodeRebalance (buf: Buffer, count: number): number {
  buf[0] = MSG_REBALANCE
  buf.writeUInt32LE(Math.max(0, Math.min(count, 0xffffffff)) >>> 0, 1)
  return REBALANCE_BYTES
}

export function decodeRebalance (buf: Buffer, len: number): number {
  return len === REBALANCE_BYTES && buf[0] === MSG_REBALANCE ? buf.readUInt32LE(1) : -1
}

/** Splits the routes JSON into ROUTES messages (each a fresh Buffer). */
export function encodeRoutes (json: string): Buffer[] {
  const bytes = Buffer.from(json, 'utf8')
  const out: Buffer[] = []
  for (let off = 0; off === 0 || off < bytes.length; off += ROUTES_FRAGMENT_BYTES) {
    const part = bytes.subarray(off, off + ROUTES_FRAGMENT_BYTES)
    const msg = Buffer.allocUnsafe(2 + part.length)
    msg[0] = MSG_ROUTES
    msg[1] = (off === 0 ? ROUTES_FIRST : 0) | (off + ROUTES_FRAGMENT_BYTES >= bytes.length ? ROUTES_LAST : 0)
    part.copy(msg, 2)
    out.push(msg)
  }
  return out
}

export interface Handback {
  readonly reason: HandbackReason
  readonly connId: number
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
  /** A copy. */
  readonly consumed: Buffer
}

/** Writes a HANDBACK (the fd goes beside it); buf must hold MAX_CARRY_BYTES. */
export function encodeHandback (buf: Buffer, h: Handback): number {
  buf[0] = MSG_HANDBACK
  buf[1] = h.reason === 'reroute' ? HANDBACK_REROUTE : HANDBACK_REBALANCE
  buf.writeUInt32LE(h.connId >>> 0, 2)
  buf.writeUInt16LE(h.clientPort & 0xffff, 6)
  buf.writeUInt16LE(h.localPort & 0xffff, 8)
  let off = writeShortString(buf, 10, h.clientAddress)
  off = writeShortString(buf, off, h.localAddress)
  return off + h.consumed.copy(buf, off, 0, Math.min(h.consumed.length, MAX_CONSUMED_BYTES))
}

export function decodeHandback (buf: Buffer, len: number): Handback | null {
  if (len < 12 || buf[0] !== MSG_HANDBACK || (buf[1] !== HANDBACK_REROUTE && buf[1] !== HANDBACK_REBALANCE)) return null
  const n = buf[10]!
  if (11 + n + 1 > len) return null
  const m = buf[11 + n]!
  const end = 12 + n + m
  if (end > len) return null
  return {
    reason: buf[1] === HANDBACK_REROUTE ? 'reroute' : 'rebalance',
    connId: buf.readUInt32LE(2),
    clientPort: buf.readUInt16LE(6),
    localPort: buf.readUInt16LE(8),
    clientAddress: buf.toString('utf8', 11, 11 + n),
    localAddress: buf.toString('utf8', 12 + n, end),
    consumed: Buffer.from(buf.subarray(end, len)),
  }
}

export function encodeFeedback (buf: Buffer, closed: number, dActive: number, dInactive: number): number {
  buf[0] = MSG_FEEDBACK
  buf.writeUInt32LE(closed >>> 0, 1)
  buf.writeInt32LE(dActive | 0, 5)
  buf.writeInt32LE(dInactive | 0, 9)
  return FEEDBACK_BYTES
}

export function encodePing (buf: Buffer, seq: number): number {
  buf[0] = MSG_PING
  buf.writeUInt32LE(seq >>> 0, 1)
  return HEARTBEAT_BYTES
}

/** The answer to the PING in ping[0..len): the same seq, or -1 when that is not a PING. */
export function encodePong (buf: Buffer, ping: Buffer, len: number): number {
  if (len !== HEARTBEAT_BYTES || ping[0] !== MSG_PING) return -1
  buf[0] = MSG_PONG
  buf.writeUInt32LE(ping.readUInt32LE(1), 1)
  return HEARTBEAT_BYTES
}

/** Where the back end answers HTTP: a TCP host and port, or a Unix socket path. */
export interface CheckAddress {
  readonly host?: string
  readonly port?: number
  readonly path?: string
}

export function encodeHello (buf: Buffer, addr: CheckAddress): number {
  buf[0] = MSG_HELLO
  buf[1] = addr.path !== undefined ? 2 : 1
  buf.writeUInt16LE(addr.port ?? 0, 2)
  return writeShortString(buf, 4, addr.path ?? addr.host ?? '')
}

export function decodeHello (buf: Buffer, len: number): CheckAddress | null {
  if (len < 5 || buf[0] !== MSG_HELLO || 5 + buf[4]! !== len) return null
  const text = buf.toString('utf8', 5, len)
  if (buf[1] === 2) return { path: text }
  return buf[1] === 1 ? { host: text, port: buf.readUInt16LE(2) } : null
}

/** state/percent undefined = unchanged. */
export function encodeReport (buf: Buffer, state: ReportState | undefined, percent: number | undefined): number {
  buf[0] = MSG_REPORT
  buf[1] = state === undefined ? 0 : REPORT_STATES.indexOf(state)
  buf[2] = percent === undefined ? 255 : Math.max(0, Math.min(100, Math.round(percent)))
  return REPORT_BYTES
}

export function decodeReport (buf: Buffer, len: number): { state: ReportState | undefined; percent: number | undefined } | null {
  if (len !== REPORT_BYTES || buf[0] !== MSG_REPORT || buf[1]! > 3 || (buf[2]! > 100 && buf[2] !== 255)) return null
  return { state: buf[1] === 0 ? undefined : REPORT_STATES[buf[1]!] as ReportState, percent: buf[2] === 255 ? undefined : buf[2] }
}

/** The bucket index of a request time in seconds. */
export function latencyBucket (s: number): number {
  return bucketOf(LATENCY_BOUNDS, s)
}

/** counts: LATENCY_BUCKETS entries. */
export function encodeLatency (buf: Buffer, counts: ArrayLike<number>, sum: number): number {
  buf[0] = MSG_LATENCY
  buf[1] = LATENCY_BUCKETS
  buf.writeDoubleLE(sum, 2)
  for (let i = 0; i < LATENCY_BUCKETS; i++) buf.writeUInt32LE(Math.min(counts[i]!, 0xffffffff) >>> 0, 10 + 4 * i)
  return LATENCY_BYTES
}

/** Adds the LATENCY in buf[0..len) into counts (LATENCY_BUCKETS entries); returns its sum, or -1 when it is not one. */
export function decodeLatency (buf: Buffer, len: number, counts: Float64Array): number {
  if (len !== LATENCY_BYTES || buf[0] !== MSG_LATENCY || buf[1] !== LATENCY_BUCKETS) return -1
  const sum = buf.readDoubleLE(2)
  if (!(sum >= 0)) return -1
  for (let i = 0; i < LATENCY_BUCKETS; i++) counts[i]! += buf.readUInt32LE(10 + 4 * i)
  return sum
}

function writeShortString (buf: Buffer, off: number, s: string): number {
  const n = buf.write(s, off + 1, 255, 'utf8')
  buf[off] = n
  return off + 1 + n
}
