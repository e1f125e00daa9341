// The migrate control protocol (src/protocol/migrate-control.ts): framing over a byte stream, each message's
// round trip, the challenge-response proofs, and hostile input (oversized lengths, truncated or padded
// payloads, reflected proofs). Pure: no sockets.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  decodeClosed, decodeHello, decodeLoad, decodeMigrate, decodePing, decodeReady, decodeU32, encodeAccepted, encodeAuth, encodeClosed,
  encodeHello, encodeLoad, encodeMigrate, encodeMigrateOf, encodeMigratePrefix, encodePing, encodeReady, encodeU32, FrameReader, MAX_CLOSED_IDS, MAX_FRAME_BYTES,
  MSG_ACCEPTED, MSG_AUTH, MSG_CLOSED, MSG_HELLO, MSG_LOAD, MSG_MIGRATE, MSG_PING, MSG_PONG, MSG_READY,
  NONCE_BYTES, PRE_AUTH_MAX_BYTES, proofOf, ROLE_AGENT, ROLE_DISPATCHER, stampMigratePrefix, verifyProof, VERSION,
} from '../../../src/protocol/migrate-control'
import { encodeMigrateState } from '../../../src/protocol/migrate-state'
import type { TcpRepairState } from '../../../src/native/types'

/** Every frame in `bytes`, fed in pieces of `step` bytes. */
function frames (bytes: Buffer, step: number, limit = MAX_FRAME_BYTES): Array<{ type: number; payload: Buffer } | { error: string }> {
  const r = new FrameReader(limit)
  const out: Array<{ type: number; payload: Buffer } | { error: string }> = []
  for (let i = 0; i < bytes.length; i += step) {
    r.push(bytes.subarray(i, i + step))
    for (let f = r.next(); f !== null; f = r.next()) {
      out.push('error' in f ? f : { type: f.type, payload: Buffer.from(f.payload) })
      if ('error' in f) return out
    }
  }
  return out
}

const SECRET = 'a-shared-secret-of-enough-length'

const HEAD = { id: 42, sentAt: 1234.5678, deadline: 1734.5678, service: 'web', route: 'route-0' }

describe('migrate control framing', () => {
  const state = randomBytes(300)
  const stream = Buffer.concat([
    encodeHello(ROLE_AGENT, Buffer.alloc(NONCE_BYTES, 7), Buffer.from('01234567')),
    encodeAuth(Buffer.alloc(32, 9)),
    encodeAccepted(),
    encodeMigrate(HEAD, state),
    encodeReady(42, true),
    encodeReady(43, false, 'restore: EADDRNOTAVAIL'),
    encodePing(7, 123456.789),
    encodeU32(MSG_PONG, 43),
    encodeClosed([1, 2, 0xffffffff]),
    encodeLoad(17, true),
    encodePing(5, 0.5),
  ])

  it.each([1, 3, 7, 64, stream.length])('cuts a stream into frames fed %i bytes at a time', (step) => {
    const got = frames(stream, step)
    expect(got.map((f) => ('type' in f ? f.type : -1))).toEqual([
      MSG_HELLO, MSG_AUTH, MSG_ACCEPTED, MSG_MIGRATE, MSG_READY, MSG_READY, MSG_PING, MSG_PONG, MSG_CLOSED, MSG_LOAD, MSG_PING])
    const p = (i: number): Buffer => (got[i] as { payload: Buffer }).payload
    expect(decodeHello(p(0))).toMatchObject({ version: VERSION, role: ROLE_AGENT, nonce: Buffer.alloc(NONCE_BYTES, 7), instance: Buffer.from('01234567') })
    expect(p(1)).toEqual(Buffer.alloc(32, 9))
    expect(p(2).length).toBe(0)
    const m = decodeMigrate(p(3))!
    expect({ ...m, state: Buffer.from(m.state) }).toEqual({ ...HEAD, state })
    expect(decodeReady(p(4))).toEqual({ id: 42, ok: true, reason: '' })
    expect(decodeReady(p(5))).toEqual({ id: 43, ok: false, reason: 'restore: EADDRNOTAVAIL' })
    expect(decodePing(p(6))).toEqual({ seq: 7, at: 123456.789 })
    expect(decodeU32(p(7))).toBe(43)
    expect(decodePing(p(10))).toEqual({ seq: 5, at: 0.5 })
    expect(decodeClosed(p(8))).toEqual([1, 2, 0xffffffff])
    expect(decodeLoad(p(9))).toEqual({ active: 17, backendUp: true })
  })

  it('refuses a frame over the limit before reading it, and a zero length', () => {
    const big = encodeMigrate({ ...HEAD, id: 1 }, Buffer.alloc(100))
    expect(frames(big, big.length, PRE_AUTH_MAX_BYTES)).toEqual([{ error: `frame of ${big.length - 4} bytes (limit ${PRE_AUTH_MAX_BYTES})` }])
    const huge = Buffer.from([0xff, 0xff, 0xff, 0xff, MSG_MIGRATE])
    expect(frames(huge, 5)).toEqual([{ error: `frame of ${0xffffffff} bytes (limit ${MAX_FRAME_BYTES})` }])
    expect(frames(Buffer.from([0, 0, 0, 0, 1]), 5)).toEqual([{ error: `frame of 0 bytes (limit ${MAX_FRAME_BYTES})` }])
  })

  it('waits for the rest of a frame, holding only what came', () => {
    const r = new FrameReader()
    const hello = encodeHello(ROLE_DISPATCHER, randomBytes(NONCE_BYTES), Buffer.alloc(8))
    r.push(hello.subarray(0, 10))
    expect(r.next()).toBeNull()
    expect(r.buffered).toBe(10)
    r.push(hello.subarray(10))
    expect(r.next()).toMatchObject({ type: MSG_HELLO })
    expect(r.next()).toBeNull()
    expect(r.buffered).toBe(0)
  })

  it('decoders return null for malformed payloads and never throw', () => {
    expect(decodeHello(Buffer.alloc(41))).toBeNull()
    const clock = Buffer.alloc(16) // sentAt, deadline: 0, 0
    expect(decodeMigrate(Buffer.concat([Buffer.from([0, 0, 0, 1]), clock, Buffer.from([5, 65])]))).toBeNull()    // service longer than the payload
    expect(decodeMigrate(Buffer.concat([Buffer.from([0, 0, 0, 1]), clock, Buffer.from([1, 65, 9])]))).toBeNull() // route longer than the payload
    expect(decodeMigrate(Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from('7ff8000000000000', 'hex'), Buffer.alloc(8), Buffer.from([0, 0])]))).toBeNull() // sentAt NaN
    expect(decodeMigrate(Buffer.concat([Buffer.from([0, 0, 0, 1]), clock, Buffer.from([0, 0])]))).toMatchObject({ id: 1, service: '', route: '' })
    expect(decodePing(Buffer.alloc(4))).toBeNull()
    expect(decodePing(Buffer.concat([Buffer.alloc(4), Buffer.from('7ff0000000000000', 'hex')]))).toBeNull() // now = Infinity
    expect(decodeReady(Buffer.from([0, 0, 0, 1, 2]))).toBeNull()              // ok neither 0 nor 1
    expect(decodeReady(Buffer.from([0, 0, 0, 1, 1, 65]))).toBeNull()          // ok with a reason
    expect(decodeReady(Buffer.alloc(600))).toBeNull()                         // reason over 512 bytes
    expect(decodeU32(Buffer.alloc(5))).toBeNull()
    expect(decodeClosed(Buffer.from([0, 2, 0, 0, 0, 1]))).toBeNull()          // says 2 ids, holds 1
    expect(decodeClosed(Buffer.from([0xff, 0xff]))).toBeNull()                // over MAX_CLOSED_IDS
    expect(decodeLoad(Buffer.from([0, 0, 0, 1, 2]))).toBeNull()
    expect(() => encodeClosed(new Array(MAX_CLOSED_IDS + 1).fill(1))).toThrow(RangeError)
    for (let i = 0; i < 2000; i++) {
      const junk = randomBytes(i % 64)
      for (const d of [decodeHello, decodeMigrate, decodePing, decodeReady, decodeU32, decodeClosed, decodeLoad]) expect(() => d(junk)).not.toThrow()
    }
  })
})

describe('MIGRATE written straight from a state (the dispatcher\'s hot path)', () => {
  const state: TcpRepairState = {
    family: 4, localAddress: '10.99.1.100', localPort: 80, peerAddress: '10.99.1.10', peerPort: 40001,
    options: 7, sndWscale: 7, rcvWscale: 7, mssClamp: 1448, timestamp: 123456, sndWl1: 1, sndWnd: 65535, maxWindow: 65535,
    rcvWnd: 65535, rcvWup: 100, rcvNxt: 100, writeSeq: 1, recvQueue: Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    sendQueue: Buffer.from('partial'), unsentBytes: 3,
  }

  it.each([['web', 'route-0'], ['sérvice', ''], ['s'.repeat(300), 'ü'.repeat(200)]])('is byte for byte encodeMigrate(encodeMigrateState) (%#)', (svc, route) => {
    const head = { id: 7, sentAt: 99.25, deadline: 599.25, service: svc, route }
    expect(encodeMigrateOf(head, state)).toEqual(encodeMigrate(head, encodeMigrateState(state)))
  })

  // The addon (NftSetHandle.moveOut) appends the state to this prefix and writes the length: the same frame.
  it.each([['web', 'route-0'], ['sérvice', ''], ['s'.repeat(300), 'ü'.repeat(200)]])('prefix + state, length patched, is encodeMigrateOf (%#)', (svc, route) => {
    const head = { id: 0xfffffffe, sentAt: 12345.678, deadline: 12845.678, service: svc, route }
    const prefix = encodeMigratePrefix(head)
    expect(prefix.readUInt32BE(0)).toBe(0) // the placeholder: a frame reader refuses it as it stands
    const frame = Buffer.concat([prefix, encodeMigrateState(state)])
    frame.writeUInt32BE(frame.length - 4, 0)
    expect(frame).toEqual(encodeMigrateOf(head, state))
    const m = decodeMigrate(frame.subarray(5))!
    expect(m.state).toEqual(encodeMigrateState(state))
    expect(frame.length - m.state.length).toBe(prefix.length) // the state starts where the prefix ends
    // The dispatcher's reused prefix: another connection's, stamped with this one's id and clock, is the same.
    const reused = encodeMigratePrefix({ ...head, id: 1, sentAt: 0, deadline: 0 })
    expect(stampMigratePrefix(reused, head.id, head.sentAt, head.deadline)).toEqual(prefix)
  })
})

describe('migrate control authentication', () => {
  const nD = randomBytes(NONCE_BYTES)
  const nA = randomBytes(NONCE_BYTES)

  it('verifies a proof from the peer that knows the secret, for our nonce', () => {
    const agentProof = proofOf(SECRET, ROLE_AGENT, nA, nD)
    expect(verifyProof(SECRET, ROLE_AGENT, nA, nD, agentProof)).toBe(true)
    const dispatcherProof = proofOf(SECRET, ROLE_DISPATCHER, nD, nA)
    expect(verifyProof(SECRET, ROLE_DISPATCHER, nD, nA, dispatcherProof)).toBe(true)
  })

  it('refuses a wrong secret, another nonce, a reflected proof, and a proof of the wrong size', () => {
    const agentProof = proofOf(SECRET, ROLE_AGENT, nA, nD)
    expect(verifyProof('another-secret-of-enough-length', ROLE_AGENT, nA, nD, agentProof)).toBe(false)
    expect(verifyProof(SECRET, ROLE_AGENT, nA, randomBytes(NONCE_BYTES), agentProof)).toBe(false) // replay on a new connection
    // A fake agent that sends the dispatcher's own nonce back cannot reuse the dispatcher's proof: the role differs.
    expect(verifyProof(SECRET, ROLE_AGENT, nD, nA, proofOf(SECRET, ROLE_DISPATCHER, nD, nA))).toBe(false)
    expect(verifyProof(SECRET, ROLE_AGENT, nA, nD, agentProof.subarray(0, 31))).toBe(false)
    expect(verifyProof(SECRET, ROLE_AGENT, nA, nD, Buffer.alloc(0))).toBe(false)
  })
})
