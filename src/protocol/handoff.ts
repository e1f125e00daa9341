// The handoff channel's messages (AF_UNIX SOCK_SEQPACKET: one message per sendmsg, boundaries kept).
//
// dispatcher -> back end, with the client's fd attached (SCM_RIGHTS):
//   HANDOFF  u8 type=1 | u8 version=1 | u32le connId | u8 n | service (n bytes utf8) | u8 m | route (m bytes)
// back end -> dispatcher, no fd:
//   FEEDBACK u8 type=2 | u32le closed | i32le dActive | i32le dInactive
//            Counter deltas for the connections this channel handed over, coalesced per event-loop turn:
//            active = a request in flight, inactive = idle keep-alive. `closed` connections ended.
//   GOODBYE  u8 type=3   The back end takes no new connections (draining); existing ones continue.
// Anything else is a protocol error: the receiver closes the channel.

export const MSG_HANDOFF = 1
export const MSG_FEEDBACK = 2
export const MSG_GOODBYE = 3
export const PROTOCOL_VERSION = 1
export const FEEDBACK_BYTES = 13
/** Largest message either side sends or expects. */
export const MAX_MESSAGE_BYTES = 1024

export interface HandoffMeta {
  readonly connId: number
  readonly service: string
  readonly route: string
}

/** Writes a HANDOFF message into buf (MAX_MESSAGE_BYTES at least); returns its length. Names are capped at 255 bytes. */
export function encodeHandoff (buf: Buffer, connId: number, service: string, route: string): number {
  buf[0] = MSG_HANDOFF
  buf[1] = PROTOCOL_VERSION
  buf.writeUInt32LE(connId >>> 0, 2)
  let off = 6
  off = writeShortString(buf, off, service)
  off = writeShortString(buf, off, route)
  return off
}

export function decodeHandoff (buf: Buffer, len: number): HandoffMeta | null {
  if (len < 8 || buf[0] !== MSG_HANDOFF || buf[1] !== PROTOCOL_VERSION) return null
  const connId = buf.readUInt32LE(2)
  const n = buf[6]!
  if (7 + n + 1 > len) return null
  const service = buf.toString('utf8', 7, 7 + n)
  const m = buf[7 + n]!
  if (8 + n + m > len) return null
  const route = buf.toString('utf8', 8 + n, 8 + n + m)
  return { connId, service, route }
}

export function encodeFeedback (buf: Buffer, closed: number, dActive: number, dInactive: number): number {
  buf[0] = MSG_FEEDBACK
  buf.writeUInt32LE(closed >>> 0, 1)
  buf.writeInt32LE(dActive | 0, 5)
  buf.writeInt32LE(dInactive | 0, 9)
  return FEEDBACK_BYTES
}

function writeShortString (buf: Buffer, off: number, s: string): number {
  const n = buf.write(s, off + 1, 255, 'utf8')
  buf[off] = n
  return off + 1 + n
}
