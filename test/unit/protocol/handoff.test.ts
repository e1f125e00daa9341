// Handoff channel messages: HANDOFF round trip and the heartbeat (PING -> PONG with the same seq; anything
// else is not a PING).
import { describe, expect, it } from 'vitest'

import {
  decodeHandoff, decodeLatency, encodeHandoff, encodeLatency, encodePing, encodePong, HEARTBEAT_BYTES, LATENCY_BOUNDS,
  LATENCY_BUCKETS, LATENCY_BYTES, latencyBucket, MAX_MESSAGE_BYTES, MSG_PING, MSG_PONG,
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

  it('round-trips a LATENCY, adding its counts, and buckets times by the inclusive upper bound', () => {
    const buf = Buffer.alloc(MAX_MESSAGE_BYTES)
    const counts = Array.from({ length: LATENCY_BUCKETS }, (_, i) => i * 3)
    expect(encodeLatency(buf, counts, 1.25)).toBe(LATENCY_BYTES)
    expect(LATENCY_BYTES).toBe(66)
    const into = new Float64Array(LATENCY_BUCKETS).fill(1)
    expect(decodeLatency(buf, LATENCY_BYTES, into)).toBe(1.25)
    expect([...into]).toEqual(counts.map((c) => c + 1))
    expect(decodeLatency(buf, LATENCY_BYTES - 1, into)).toBe(-1)
    buf.writeDoubleLE(NaN, 2)
    expect(decodeLatency(buf, LATENCY_BYTES, into)).toBe(-1)
    expect(latencyBucket(0)).toBe(0)
    expect(latencyBucket(0.001)).toBe(0)
    expect(latencyBucket(0.0011)).toBe(1)
    expect(latencyBucket(0.2)).toBe(LATENCY_BOUNDS.indexOf(0.25))
    expect(latencyBucket(11)).toBe(LATENCY_BUCKETS - 1)
  })
})
