// The checked wrappers of the addon's TCP_REPAIR calls (native/src/repair_dump.cc, repair_restore.cc):
// native.repairDump, repairClose, repairOff, repairRestore, repairGo, tcpInfo. It never loads anything:
// binding.ts hands it the addon module (as it does for splice-relay.ts). The scalars cross the boundary
// in one Uint32Array whose layout is REPAIR_FIELDS, the same order as native/src/repair.h.
import assert from 'node:assert'
import net from 'node:net'

import { BatonNativeError } from '../errors'
import { assertFd, assertInt } from './asserts'
import { errnoName } from './errno'
import type { NativeApi, TcpInfo, TcpRepairState } from './types'

/** The Uint32Array layout shared with native/src/repair.h (enum baton__repair_field). */
const REPAIR_FIELDS = ['family', 'localPort', 'peerPort', 'options', 'sndWscale', 'rcvWscale', 'mssClamp',
  'timestamp', 'sndWl1', 'sndWnd', 'maxWindow', 'rcvWnd', 'rcvWup', 'rcvNxt', 'writeSeq', 'unsentBytes'] as const
type RepairField = typeof REPAIR_FIELDS[number]

/** Default forward move of the restored TCP timestamp (pitfall 4: the peer's PAWS tolerates 1 tick). */
export const TIMESTAMP_SLACK_MS = 2
const U32 = 0xffffffff
const TCP_MAX_WSCALE = 14

/** The functions of the addon this file calls, as the C side defines them. */
export interface RepairRaw {
  BATON_REPAIR_FIELD_COUNT: number
  baton_repair_dump (fd: number, fields: Uint32Array): [string, string, Buffer, Buffer]
  baton_repair_close (fd: number): void
  baton_repair_off (fd: number, probe: boolean): void
  baton_repair_restore (local: string, peer: string, fields: Uint32Array, rq: Buffer, sq: Buffer): number
  baton_repair_go (fd: number, unsent: Buffer, probe: boolean): number
  baton_tcp_info (fd: number, out: Uint32Array): number
}

type RepairApi = Pick<NativeApi, 'repairDump' | 'repairClose' | 'repairOff' | 'repairRestore' | 'repairGo' | 'tcpInfo'>

/** The never-sent tail of a dumped send queue: what repairGo sends after the restore. */
export function unsentOf (state: TcpRepairState): Buffer {
  return state.sendQueue.subarray(state.sendQueue.length - state.unsentBytes)
}

/** TCP_TIMESTAMP moved forward by ms (bit 0 = microsecond clock, kept as is), modulo 2^32. */
export function advanceTimestamp (ts: number, ms: number): number {
  return (ts + ((ts & 1) === 1 ? ms * 1000 : ms)) >>> 0
}

/** A state's invariants; a failure is a bug of the caller (decodeMigrateState never yields such a state). */
export function assertRepairState (s: TcpRepairState): void {
  assert(s.family === 4 || s.family === 6, `family must be 4 or 6, got ${String(s.family)}`)
  for (const [what, host] of [['localAddress', s.localAddress], ['peerAddress', s.peerAddress]] as const) {
    assert(net.isIP(host) === s.family, `${what} must be a numeric IPv${s.family} address, got ${String(host)}`)
  }
  assertInt(s.localPort, 1, 65535, 'localPort')
  assertInt(s.peerPort, 1, 65535, 'peerPort')
  assertInt(s.options, 0, 255, 'options')
  assertInt(s.sndWscale, 0, TCP_MAX_WSCALE, 'sndWscale')
  assertInt(s.rcvWscale, 0, TCP_MAX_WSCALE, 'rcvWscale')
  assertInt(s.mssClamp, 0, 65535, 'mssClamp')
  for (const f of ['timestamp', 'sndWl1', 'sndWnd', 'maxWindow', 'rcvWnd', 'rcvWup', 'rcvNxt', 'writeSeq'] as const) {
    assertInt(s[f], 0, U32, f)
  }
  assert(Buffer.isBuffer(s.recvQueue) && Buffer.isBuffer(s.sendQueue), 'recvQueue and sendQueue must be Buffers')
  assertInt(s.unsentBytes, 0, s.sendQueue.length, 'unsentBytes')
}

function throwErrno (step: string, rc: number): never {
  throw new BatonNativeError(step, -rc, errnoName(rc))
}

export function makeRepairApi (raw: RepairRaw, mapErrors: <T>(fn: () => T) => T): RepairApi {
  assert(raw.BATON_REPAIR_FIELD_COUNT === REPAIR_FIELDS.length, 'repair.h and REPAIR_FIELDS disagree')
  const fields = new Uint32Array(REPAIR_FIELDS.length) // scratch: every call fills it completely
  const info = new Uint32Array(10)

  return {
    repairDump (fd: number): TcpRepairState {
      assertFd(fd)
      fields.fill(0)
      const [localAddress, peerAddress, recvQueue, sendQueue] = mapErrors(() => raw.baton_repair_dump(fd, fields))
      const out: Record<string, unknown> = { localAddress, peerAddress, recvQueue, sendQueue }
      REPAIR_FIELDS.forEach((name, i) => { out[name] = fields[i] })
      return out as unknown as TcpRepairState
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
      assertInt(timestampSlackMs, 0, 1000, 'timestampSlackMs')
      REPAIR_FIELDS.forEach((name: RepairField, i) => { fields[i] = state[name] })
      fields[REPAIR_FIELDS.indexOf('timestamp')] = advanceTimestamp(state.timestamp, timestampSlackMs)
      return mapErrors(() => raw.baton_repair_restore(state.localAddress, state.peerAddress, fields,
        state.recvQueue, state.sendQueue))
    },

    repairGo (fd: number, unsent: Buffer, windowProbe = true): number {
      assertFd(fd)
      assert(Buffer.isBuffer(unsent), 'unsent must be a Buffer')
      return mapErrors(() => raw.baton_repair_go(fd, unsent, windowProbe))
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
