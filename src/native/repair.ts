// The checked wrappers of the addon's TCP_REPAIR calls (native/src/repair_dump.cc, repair_restore.cc):
// native.repairDump, repairClose, repairOff, repairRestore, repairRestoreWire, repairGo, tcpInfo. It never
// loads anything: binding.ts hands it the addon module (as it does for splice-relay.ts). The scalars cross
// the boundary in one Uint32Array whose layout is REPAIR_FIELDS, the same order as native/src/repair.h;
// repairRestoreWire passes the wire state itself (repair_state.cc decodes it) and gets four numbers back.
import assert from 'node:assert'
import net from 'node:net'

import { BatonNativeError } from '../errors'
import { assertFd, assertInt, ipv4ToU32 } from './asserts'
import { errnoName } from './errno'
import type { NativeApi, RestoredFlow, TcpInfo, TcpRepairState } from './types'

/** The Uint32Array layout shared with native/src/repair.h (enum baton__repair_field). */
const REPAIR_FIELDS = ['family', 'localPort', 'peerPort', 'options', 'sndWscale', 'rcvWscale', 'mssClamp',
  'timestamp', 'sndWl1', 'sndWnd', 'maxWindow', 'rcvWnd', 'rcvWup', 'rcvNxt', 'writeSeq', 'unsentBytes'] as const
type RepairField = typeof REPAIR_FIELDS[number]
const TIMESTAMP_INDEX = REPAIR_FIELDS.indexOf('timestamp')
/** Default forward move of the restored TCP timestamp (pitfall 4: the peer's PAWS tolerates 1 tick). */
export const TIMESTAMP_SLACK_MS = 2
const U32 = 0xffffffff
const TCP_MAX_WSCALE = 14
const U32_FIELDS = ['timestamp', 'sndWl1', 'sndWnd', 'maxWindow', 'rcvWnd', 'rcvWup', 'rcvNxt', 'writeSeq'] as const

/** The functions of the addon this file calls, as the C side defines them. */
export interface RepairRaw {
  BATON_REPAIR_FIELD_COUNT: number
  baton_repair_dump (fd: number, fields: Uint32Array): [string, string, Buffer, Buffer]
  baton_repair_close (fd: number): void
  baton_repair_off (fd: number, probe: boolean): void
  baton_repair_restore (local: string, peer: string, fields: Uint32Array, rq: Buffer, sq: Buffer): number
  baton_repair_restore_wire (buf: Buffer, offset: number, timestampSlackMs: number, vipAddress: number, vipPort: number,
    out: Uint32Array): number
  baton_repair_go (fd: number, unsent: Buffer, probe: boolean, transparent: boolean): number
  baton_tcp_info (fd: number, out: Uint32Array): number
}

type RepairApi = Pick<NativeApi, 'repairDump' | 'repairClose' | 'repairOff' | 'repairRestore' | 'repairRestoreWire' |
  'repairGo' | 'tcpInfo'>

/** The never-sent tail of a dumped send queue: what repairGo sends after the restore. */
export function unsentOf (state: TcpRepairState): Buffer {
  return state.sendQueue.subarray(state.sendQueue.length - state.unsentBytes)
}

/** TCP_TIMESTAMP moved forward by ms (bit 0 = microsecond clock, kept as is), modulo 2^32. */
export function advanceTimestamp (ts: number, ms: number): number {
  return (ts + ((ts & 1) === 1 ? ms * 1000 : ms)) >>> 0
}

/** assertInt without building its message unless it fails (assertInt's template runs on every call). */
function checkInt (n: unknown, min: number, max: number, what: string): void {
  if (!(Number.isInteger(n) && (n as number) >= min && (n as number) <= max)) assertInt(n, min, max, what)
}

/** A state's invariants; a failure is a bug of the caller (decodeMigrateState never yields such a state). */
export function assertRepairState (s: TcpRepairState): void {
  if (s.family !== 4 && s.family !== 6) assert.fail(`family must be 4 or 6, got ${String(s.family)}`)
  if (net.isIP(s.localAddress) !== s.family || net.isIP(s.peerAddress) !== s.family) {
    assert.fail(`addresses must be numeric IPv${s.family}, got ${String(s.localAddress)} and ${String(s.peerAddress)}`)
  }
  checkInt(s.localPort, 1, 65535, 'localPort')
  checkInt(s.peerPort, 1, 65535, 'peerPort')
  checkInt(s.options, 0, 255, 'options')
  checkInt(s.sndWscale, 0, TCP_MAX_WSCALE, 'sndWscale')
  checkInt(s.rcvWscale, 0, TCP_MAX_WSCALE, 'rcvWscale')
  checkInt(s.mssClamp, 0, 65535, 'mssClamp')
  for (const f of U32_FIELDS) checkInt(s[f], 0, U32, f)
  if (!Buffer.isBuffer(s.recvQueue) || !Buffer.isBuffer(s.sendQueue)) assert.fail('recvQueue and sendQueue must be Buffers')
  checkInt(s.unsentBytes, 0, s.sendQueue.length, 'unsentBytes')
}


/** Throws the assertion that repairRestoreWire's arguments fail (messages are built only here). */
function refuseWire (buf: unknown, offset: unknown, vip: unknown, timestampSlackMs: unknown): never {
  assert(Buffer.isBuffer(buf), 'buf must be a Buffer')
  assertInt(offset, 0, Math.min(buf.length, U32), 'offset')
  assert(typeof vip === 'object' && vip !== null, 'vip must be { host, port }')
  assertInt((vip as { port: unknown }).port, 1, 65535, 'vip.port')
  assertInt(timestampSlackMs, 0, 1000, 'timestampSlackMs')
  assert.fail('repairRestoreWire: bad arguments')
}

function throwErrno (step: string, rc: number): never {
  throw new BatonNativeError(step, -rc, errnoName(rc))
}

export function makeRepairApi (raw: RepairRaw, mapErrors: <T>(fn: () => T) => T): RepairApi {
  assert(raw.BATON_REPAIR_FIELD_COUNT === REPAIR_FIELDS.length, 'repair.h and REPAIR_FIELDS disagree')
  const fields = new Uint32Array(REPAIR_FIELDS.length) // scratch: every call fills it completely
  const info = new Uint32Array(10)
  const wire = new Uint32Array(4) // repairRestoreWire's answer: peer address, peer port, unsent offset, length
  let vipHost: string | undefined // the last VIP host converted, and its u32: an agent has one VIP
  let vipU32 = 0

  return {
    repairDump (fd: number): TcpRepairState {
      assertFd(fd)
      const [localAddress, peerAddress, recvQueue, sendQueue] = mapErrors(() => raw.baton_repair_dump(fd, fields))
      const f = fields
      return { // one literal, in REPAIR_FIELDS order (a fixed shape)
        family: f[0] as 4 | 6, localAddress, localPort: f[1] ?? 0, peerAddress, peerPort: f[2] ?? 0,
        options: f[3] ?? 0, sndWscale: f[4] ?? 0, rcvWscale: f[5] ?? 0, mssClamp: f[6] ?? 0, timestamp: f[7] ?? 0,
        sndWl1: f[8] ?? 0, sndWnd: f[9] ?? 0, maxWindow: f[10] ?? 0, rcvWnd: f[11] ?? 0, rcvWup: f[12] ?? 0,
        rcvNxt: f[13] ?? 0, writeSeq: f[14] ?? 0, recvQueue, sendQueue, unsentBytes: f[15] ?? 0,
      }
    },

    repairClose (fd: number): void {
      assertFd(fd)
      mapErrors(() => raw.baton_repair_close(fd))
    },

    repairOff (fd: number, windowProbe = true): void {
      assertFd(fd)
      mapErrors(() => raw.baton_repair_off(fd, windowProbe))
    },

    repairRestore (state: TcpRepairState, timestampSlackMs = TIMESTAMP_SLACK_MS): number {
      assertRepairState(state)
      checkInt(timestampSlackMs, 0, 1000, 'timestampSlackMs')
      for (let i = 0; i < REPAIR_FIELDS.length; i++) fields[i] = state[REPAIR_FIELDS[i] as RepairField]
      fields[TIMESTAMP_INDEX] = advanceTimestamp(state.timestamp, timestampSlackMs)
      return mapErrors(() => raw.baton_repair_restore(state.localAddress, state.peerAddress, fields,
        state.recvQueue, state.sendQueue))
    },

    repairRestoreWire (buf: Buffer, offset: number, vip: { readonly host: string; readonly port: number },
      timestampSlackMs = TIMESTAMP_SLACK_MS): RestoredFlow {
      if (!Buffer.isBuffer(buf) || !(Number.isInteger(offset) && offset >= 0 && offset <= buf.length && offset <= U32) ||
          typeof vip !== 'object' || vip === null || !(Number.isInteger(vip.port) && vip.port >= 1 && vip.port <= 65535) ||
          !(Number.isInteger(timestampSlackMs) && timestampSlackMs >= 0 && timestampSlackMs <= 1000)) {
        refuseWire(buf, offset, vip, timestampSlackMs)
      }
      if (vip.host !== vipHost || vipHost === undefined) {
        vipU32 = ipv4ToU32(vip.host, 'vip.host')
        vipHost = vip.host
      }
      const fd = mapErrors(() => raw.baton_repair_restore_wire(buf, offset, timestampSlackMs, vipU32, vip.port, wire))
      const a = wire[0] ?? 0
      const at = wire[2] ?? 0
      return {
        fd,
        peerAddress: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`,
        peerPort: wire[1] ?? 0,
        unsent: buf.subarray(at, at + (wire[3] ?? 0)),
      }
    },

    repairGo (fd: number, unsent: Buffer, windowProbe = true, transparent = false): number {
      assertFd(fd)
      assert(Buffer.isBuffer(unsent), 'unsent must be a Buffer')
      return mapErrors(() => raw.baton_repair_go(fd, unsent, windowProbe, transparent))
    },

    tcpInfo (fd: number): TcpInfo {
      assertFd(fd)
      const rc = raw.baton_tcp_info(fd, info)
      if (rc < 0) throwErrno('getsockopt(TCP_INFO)', rc)
      const [state, options, sndWscale, rcvWscale, sndMss, rcvMss, rttUs, rtoUs, totalRetrans, sndCwnd] = info
      return { state, options, sndWscale, rcvWscale, sndMss, rcvMss, rttUs, rtoUs, totalRetrans, sndCwnd } as TcpInfo
    },
  }
}
