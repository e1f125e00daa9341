// MIGRATE state: a dumped TCP connection on its way from the dispatcher to the agent that restores it.
// Binary, big-endian, versioned; the control channel frames and authenticates it, this file only lays out
// the state. This file is the layout's definition and its reference codec: on the hot paths the addon
// writes it (moveOut, native/src/repair_state.cc) and reads it (repairRestoreWire, the same file), and
// test/native/migrate-out.test.ts and repair-wire.test.ts hold the addon to this file byte for byte and
// verdict for verdict. Change them together.
//
//   off  size  field
//     0     2  magic 0x42 0x4d ("BM")
//     2     1  version = 1 (a decoder refuses any other)
//     3     1  family: 4 or 6 (address sizes below: 4 or 16 bytes)
//     4     1  options: tcpi_options (1 timestamps, 2 SACK, 4 window scale; other bits carried, unused)
//     5     1  sndWscale (0..14)
//     6     1  rcvWscale (0..14)
//     7     1  reserved, 0
//     8     2  mssClamp
//    10     2  localPort (1..65535)
//    12     2  peerPort (1..65535)
//    14     2  reserved, 0
//    16     4  timestamp: TCP_TIMESTAMP as dumped (the restore adds its own slack)
//    20     4  sndWl1     \
//    24     4  sndWnd      |
//    28     4  maxWindow   | struct tcp_repair_window
//    32     4  rcvWnd      |
//    36     4  rcvWup     /
//    40     4  rcvNxt: sequence number after the receive queue's last byte
//    44     4  writeSeq: sequence number after the send queue's last byte
//    48     4  unsentBytes: the send queue's never-sent tail (<= sendQueue length)
//    52     4  recvQueue length (<= MAX_QUEUE_BYTES)
//    56     4  sendQueue length (<= MAX_QUEUE_BYTES)
//    60  4|16  local address
//     .  4|16  peer address
//     .     .  recvQueue bytes, then sendQueue bytes; nothing after them
//
// decodeMigrateState never throws: a truncated, oversized, trailing-byte or unknown-version buffer comes
// back as { ok: false, reason } and nothing is restored from it.
import type { TcpRepairState } from '../native/types'

export const MIGRATE_STATE_VERSION = 1
const MAGIC = 0x424d
const HEADER_BYTES = 60
/** A larger queue is refused: no dispatcher socket holds that much (tcp_rmem/tcp_wmem maxima are ~6 MiB). */
export const MAX_QUEUE_BYTES = 64 * 1024 * 1024

export type MigrateStateResult = { ok: true; state: TcpRepairState } | { ok: false; reason: string }

function writeAddress (buf: Buffer, off: number, family: 4 | 6, address: string): number {
  if (family === 4) {
    let octet = 0
    for (let i = 0; i < address.length; i++) {
      const c = address.charCodeAt(i)
      if (c === 46) { buf[off++] = octet; octet = 0 } else octet = octet * 10 + c - 48 // '.' or a digit
    }
    buf[off++] = octet
    return off
  }
  const groups = expandIPv6(address)
  for (const g of groups) { buf.writeUInt16BE(g, off); off += 2 }
  return off
}

/** '::1' -> eight 16-bit groups (handles '::' and an embedded dotted IPv4 tail). */
function expandIPv6 (address: string): number[] {
  let text = address
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4?.[1] !== undefined) {
    const [a = 0, b = 0, c = 0, d = 0] = v4[1].split('.').map(Number)
    text = text.slice(0, v4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16)
  }
  const [head = '', tail] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? 0 : 8 - h.length - t.length
  return [...h, ...new Array<string>(zeros).fill('0'), ...t].map((g) => parseInt(g, 16))
}

function readAddress (buf: Buffer, off: number, family: 4 | 6): string {
  if (family === 4) return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`
  const groups: number[] = []
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + 2 * i))
  return compressIPv6(groups)
}

/** RFC 5952 text: lower case, the longest run (>= 2) of zero groups as '::' (the first of equal runs). */
function compressIPv6 (groups: number[]): string {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j === i ? i + 1 : j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best < 0) return hex.join(':')
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':')
}

/** The wire form of a state. The state must be well-formed (a dump's is); asserts nothing itself. */
export function encodeMigrateState (s: TcpRepairState): Buffer {
  const buf = Buffer.allocUnsafe(migrateStateBytes(s))
  writeMigrateState(buf, 0, s)
  return buf
}

/** How many bytes the wire form of `s` takes. */
export function migrateStateBytes (s: TcpRepairState): number {
  return HEADER_BYTES + 2 * (s.family === 4 ? 4 : 16) + s.recvQueue.length + s.sendQueue.length
}

/**
 * Writes the wire form of `s` into buf at off (migrateStateBytes(s) bytes must fit); returns the end. Hot:
 * the dispatcher writes the state straight into its MIGRATE frame, with no buffer of its own.
 */
export function writeMigrateState (buf: Buffer, off: number, s: TcpRepairState): number {
  buf.writeUInt16BE(MAGIC, off)
  buf[off + 2] = MIGRATE_STATE_VERSION
  buf[off + 3] = s.family
  buf[off + 4] = s.options
  buf[off + 5] = s.sndWscale
  buf[off + 6] = s.rcvWscale
  buf[off + 7] = 0
  buf.writeUInt16BE(s.mssClamp, off + 8)
  buf.writeUInt16BE(s.localPort, off + 10)
  buf.writeUInt16BE(s.peerPort, off + 12)
  buf.writeUInt16BE(0, off + 14)
  buf.writeUInt32BE(s.timestamp, off + 16)
  buf.writeUInt32BE(s.sndWl1, off + 20)
  buf.writeUInt32BE(s.sndWnd, off + 24)
  buf.writeUInt32BE(s.maxWindow, off + 28)
  buf.writeUInt32BE(s.rcvWnd, off + 32)
  buf.writeUInt32BE(s.rcvWup, off + 36)
  buf.writeUInt32BE(s.rcvNxt, off + 40)
  buf.writeUInt32BE(s.writeSeq, off + 44)
  buf.writeUInt32BE(s.unsentBytes, off + 48)
  buf.writeUInt32BE(s.recvQueue.length, off + 52)
  buf.writeUInt32BE(s.sendQueue.length, off + 56)
  let at = writeAddress(buf, off + HEADER_BYTES, s.family, s.localAddress)
  at = writeAddress(buf, at, s.family, s.peerAddress)
  at += s.recvQueue.copy(buf, at)
  return at + s.sendQueue.copy(buf, at)
}

/** Parses and checks a wire state. The queues are views into buf: do not reuse buf while the state lives. */
export function decodeMigrateState (buf: Buffer): MigrateStateResult {
  const bad = (reason: string): MigrateStateResult => ({ ok: false, reason })
  if (!Buffer.isBuffer(buf) || buf.length < 4) return bad('truncated: no header')
  if (buf.readUInt16BE(0) !== MAGIC) return bad('not a migrate state (bad magic)')
  if (buf[2] !== MIGRATE_STATE_VERSION) return bad(`unsupported version ${String(buf[2])} (this end reads ${MIGRATE_STATE_VERSION})`)
  if (buf.length < HEADER_BYTES) return bad(`truncated: ${buf.length} bytes, header is ${HEADER_BYTES}`)
  const family = buf[3]
  if (family !== 4 && family !== 6) return bad(`bad family ${String(family)}`)
  if (buf[7] !== 0 || buf.readUInt16BE(14) !== 0) return bad('reserved bytes are not 0')
  const sndWscale = buf[5] ?? 0
  const rcvWscale = buf[6] ?? 0
  if (sndWscale > 14 || rcvWscale > 14) return bad('window scale above 14')
  const localPort = buf.readUInt16BE(10)
  const peerPort = buf.readUInt16BE(12)
  if (localPort === 0 || peerPort === 0) return bad('port 0')
  const w = (i: number): number => buf.readUInt32BE(16 + 4 * i)
  const [unsentBytes, rqLen, sqLen] = [w(8), w(9), w(10)]
  if (rqLen > MAX_QUEUE_BYTES || sqLen > MAX_QUEUE_BYTES) return bad('queue larger than MAX_QUEUE_BYTES')
  if (unsentBytes > sqLen) return bad('unsentBytes larger than the send queue')
  const alen = family === 4 ? 4 : 16
  const total = HEADER_BYTES + 2 * alen + rqLen + sqLen
  if (buf.length < total) return bad(`truncated: ${buf.length} bytes of ${total}`)
  if (buf.length > total) return bad(`${buf.length - total} bytes after the state`)
  const localAddress = readAddress(buf, HEADER_BYTES, family)
  const peerAddress = readAddress(buf, HEADER_BYTES + alen, family)
  const q = HEADER_BYTES + 2 * alen
  return {
    ok: true,
    state: {
      family,
      localAddress,
      localPort,
      peerAddress,
      peerPort,
      options: buf[4] ?? 0,
      sndWscale,
      rcvWscale,
      mssClamp: buf.readUInt16BE(8),
      timestamp: w(0),
      sndWl1: w(1),
      sndWnd: w(2),
      maxWindow: w(3),
      rcvWnd: w(4),
      rcvWup: w(5),
      rcvNxt: w(6),
      writeSeq: w(7),
      recvQueue: buf.subarray(q, q + rqLen),
      sendQueue: buf.subarray(q + rqLen, total),
      unsentBytes,
    },
  }
}
