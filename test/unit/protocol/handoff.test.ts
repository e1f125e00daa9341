// Handoff channel messages: HANDOFF round trip and the heartbeat (PING -> PONG with the same seq; anything
// else is not a PING).
import { describe, expect, it } from 'vitest'

import {
  decodeHandoff, encodeHandoff, encodePing, encodePong, HEARTBEAT_BYTES, MAX_MESSAGE_BYTES, MSG_PING, MSG_PONG,
} from '../../../src/protocol/handoff'

describe('handoff messages', () => {
  it('round-trips a HANDOFF', () => {
    const buf = Buffer.alloc(MAX_MESSAGE_BYTES)
    const n = encodeHandoff(buf, 0xfffffffe, 'api', 'r1')
    expect(decodeHandoff(buf, n)).toEqual({ connId: 0xfffffffe, service: 'api', route: 'r1' })
  })

  it('answers a PING with a PONG carrying its seq, across the u32 wrap', () => {
    const ping = Buffer.alloc(16)
    const pong = Buffer.alloc(16)
    for (const seq of [1, 0x12345678, 2 ** 32 + 7]) {
      expect(encodePing(ping, seq)).toBe(HEARTBEAT_BYTES)
      expect([...ping.subarray(0, 1)]).toEqual([MSG_PING])
      expect(encodePong(pong, ping, HEARTBEAT_BYTES)).toBe(HEARTBEAT_BYTES)
      expect(pong[0]).toBe(MSG_PONG)
      expect(pong.readUInt32LE(1)).toBe(seq >>> 0)
    }
  })

  it('does not answer what is not a PING', () => {
    const ping = Buffer.alloc(16)
    const pong = Buffer.alloc(16)
    encodePing(ping, 1)
    expect(encodePong(pong, ping, HEARTBEAT_BYTES + 1)).toBe(-1) // wrong length
    expect(encodePong(pong, ping, 1)).toBe(-1)
    ping[0] = MSG_PONG
    expect(encodePong(pong, ping, HEARTBEAT_BYTES)).toBe(-1) // a PONG is never answered
  })
})
