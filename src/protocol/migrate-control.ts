// The migrate control protocol: one persistent TCP connection from the dispatcher to each `baton agent`
// (forward/migrate.ts at one end, agent/ at the other). A stream of frames, each
//
//   u32be length (of what follows: type + payload) | u8 type | payload
//
// Before both sides proved the shared secret, a frame may be at most PRE_AUTH_MAX_BYTES long and only HELLO,
// AUTH and ACCEPTED are read; anything else closes the connection. Afterwards at most MAX_FRAME_BYTES.
// All integers are big-endian. Strings are UTF-8, length-prefixed with a u8.
//
// Handshake (both directions, so neither side talks to an impostor):
//   HELLO     type=1 | u8 version=1 | u8 role (1 = dispatcher, 2 = agent) | 32 B nonce | 8 B instance
//             Sent by each side as soon as the connection is up. nonce: fresh random bytes per connection.
//             instance: random per agent process (the dispatcher sends zeros): a dispatcher that reconnects
//             to the same agent process keeps refreshing the flows it migrated there.
//   AUTH      type=2 | 32 B proof = HMAC-SHA256(secret, "baton-migrate/1" | u8 role | own nonce | peer nonce)
//             Sent by each side once it has the peer's HELLO. The role in the MAC keeps a peer from
//             reflecting one side's proof back to it; fresh nonces on both sides keep a recorded proof
//             from being replayed.
//   ACCEPTED  type=3, no payload. The agent, once the dispatcher's AUTH verified: migrations may start.
//   The dispatcher checks the agent's AUTH before it sends its own and before anything else; the agent reads
//   nothing but the dispatcher's AUTH after its HELLO. A wrong proof closes the connection (logged,
//   BATON_ERR_MIGRATE_AUTH); nothing is restored for a peer that did not prove the secret.
//
// Work, dispatcher -> agent:
//   MIGRATE   type=10 | u32 id | f64 sentAt | f64 deadline | u8 n | service | u8 m | route | state
//             (protocol/migrate-state.ts, the rest; the dispatcher's addon writes it after encodeMigratePrefix). id: the dispatcher's connection id (the HANDOFF's connId on
//             the agent's host). sentAt and deadline are the dispatcher's clock (performance.now(), ms): the
//             flow is already steered to the agent's host when MIGRATE leaves, and the agent restores it, lets it
//             go and hands it to its back end at once, unless by its estimate of the dispatcher's clock
//             (agent/clock.ts, from the sentAt of PINGs and MIGRATEs) the deadline has passed: then it refuses
//             (READY ok=0), because the dispatcher may have given the connection up and restored it itself.
//   PING      type=15 | u32 seq | f64 now   Sent when the link is up (before any MIGRATE) and every
//             migrate.timeoutMs; no PONG within 2 x timeoutMs = the agent is down. now: the dispatcher's clock.
// agent -> dispatcher:
//   READY     type=11 | u32 id | u8 ok (1 = restored and handed to the back end; 0 = refused, nothing was
//             restored) | reason (the rest, UTF-8, at most 512 bytes, empty when ok). Answers go in the order
//             of the MIGRATEs.
//   CLOSED    type=13 | u16 count | count x u32 id   Migrated connections that ended on the agent's host.
//   LOAD      type=14 | u32 active | u8 backendUp (1 = the local back end's handoff channel is up)
//             Sent on every change and at least every 5 s: a back end that is not connected takes nothing.
//   PONG      type=16 | u32 seq   The PING's seq, at once.
//
// Versions: HELLO carries VERSION; a peer with another version is closed (BATON_ERR_MIGRATE_CONTROL). A
// message of an unknown type or a wrong length closes the connection too: both ends ship together.
// Decoders never throw: they return null for a malformed payload.
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { TcpRepairState } from '../native/types'
import { migrateStateBytes, writeMigrateState } from './migrate-state'

export const VERSION = 2
export const MSG_HELLO = 1
export const MSG_AUTH = 2
export const MSG_ACCEPTED = 3
export const MSG_MIGRATE = 10
export const MSG_READY = 11
export const MSG_CLOSED = 13
export const MSG_LOAD = 14
export const MSG_PING = 15
export const MSG_PONG = 16

export const ROLE_DISPATCHER = 1
export const ROLE_AGENT = 2
export type Role = typeof ROLE_DISPATCHER | typeof ROLE_AGENT

export const NONCE_BYTES = 32
export const INSTANCE_BYTES = 8
export const PROOF_BYTES = 32
/** Before authentication: HELLO is the largest frame. */
export const PRE_AUTH_MAX_BYTES = 64
/** A state carries both socket queues; a dispatcher's receive queue holds the request (and what followed). */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024
export const MAX_REASON_BYTES = 512
/** CLOSED carries at most this many ids per frame. */
export const MAX_CLOSED_IDS = 4096
const LABEL = Buffer.from('baton-migrate/1')
const HEAD = 5

/** One frame: a header and a payload of `payloadLen` bytes, ready to write. */
function frame (type: number, payloadLen: number): Buffer {
  const b = Buffer.allocUnsafe(HEAD + payloadLen)
  b.writeUInt32BE(1 + payloadLen, 0)
  b[4] = type
  return b
}

export function encodeHello (role: Role, nonce: Buffer, instance: Buffer): Buffer {
  const b = frame(MSG_HELLO, 2 + NONCE_BYTES + INSTANCE_BYTES)
  b[5] = VERSION
  b[6] = role
  nonce.copy(b, 7, 0, NONCE_BYTES)
  instance.copy(b, 7 + NONCE_BYTES, 0, INSTANCE_BYTES)
  return b
}

export interface Hello { readonly version: number; readonly role: number; readonly nonce: Buffer; readonly instance: Buffer }

/** A HELLO of any version (the caller refuses another one, naming it). */
export function decodeHello (p: Buffer): Hello | null {
  if (p.length !== 2 + NONCE_BYTES + INSTANCE_BYTES) return null
  return { version: p[0]!, role: p[1]!, nonce: p.subarray(2, 2 + NONCE_BYTES), instance: p.subarray(2 + NONCE_BYTES) }
}

/** HMAC-SHA256(secret, LABEL | role | own nonce | peer nonce): what `role` sends to prove the secret. */
export function proofOf (secret: string, role: Role, ownNonce: Buffer, peerNonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(LABEL).update(Buffer.of(role)).update(ownNonce).update(peerNonce).digest()
}

/** Whether `proof` (an AUTH payload) came from a `peerRole` that knows the secret, answering our nonce. */
export function verifyProof (secret: string, peerRole: Role, peerNonce: Buffer, ownNonce: Buffer, proof: Buffer): boolean {
  if (proof.length !== PROOF_BYTES) return false
  return timingSafeEqual(proofOf(secret, peerRole, peerNonce, ownNonce), proof)
}

export function encodeAuth (proof: Buffer): Buffer {
  const b = frame(MSG_AUTH, PROOF_BYTES)
  proof.copy(b, HEAD)
  return b
}

export function encodeAccepted (): Buffer { return frame(MSG_ACCEPTED, 0) }

/** What a MIGRATE says besides the state: the connection, and the dispatcher's clock (ms) when sent and its deadline. */
export interface MigrateHead {
  readonly id: number; readonly sentAt: number; readonly deadline: number; readonly service: string; readonly route: string
}
export interface Migrate extends MigrateHead { readonly state: Buffer }

/** MIGRATE around an encoded state (encodeMigrateState). Names longer than 255 bytes are cut (they are labels). */
export function encodeMigrate (head: MigrateHead, state: Buffer): Buffer {
  const [b, off] = migrateFrame(head, state.length)
  state.copy(b, off)
  return b
}

/**
 * The same frame with the state written straight into it (no buffer of its own, no copy): the
 * dispatcher's hot path, byte for byte what encodeMigrate(head, encodeMigrateState(state)) gives.
 */
export function encodeMigrateOf (head: MigrateHead, state: TcpRepairState): Buffer {
  const [b, off] = migrateFrame(head, migrateStateBytes(state))
  writeMigrateState(b, off, state)
  return b
}

/**
 * A MIGRATE frame up to where its state starts (`u32 length | type | id | sentAt | deadline | service |
 * route`), for the addon to append the dumped state to (NftSetHandle.moveOut): the dispatcher's hot path.
 * The length field is 0 here; whoever appends the state writes it (the big-endian length of what follows
 * it), so prefix + encodeMigrateState(state) with that length is encodeMigrateOf(head, state).
 */
export function encodeMigratePrefix (head: MigrateHead): Buffer {
  const [b] = migrateFrame(head, 0) // a frame with no state: its length is where the state starts
  b.writeUInt32BE(0, 0)
  return b
}

/**
 * Writes a connection's id, sentAt and deadline into a prefix of encodeMigratePrefix (any head's), in place,
 * and returns it: the dispatcher keeps one prefix per service and route and stamps it per connection, since
 * moveOut copies it into the frame (no allocation, no string encoding per connection).
 */
export function stampMigratePrefix (prefix: Buffer, id: number, sentAt: number, deadline: number): Buffer {
  prefix.writeUInt32BE(id >>> 0, HEAD)
  prefix.writeDoubleBE(sentAt, HEAD + 4)
  prefix.writeDoubleBE(deadline, HEAD + 12)
  return prefix
}

const MIGRATE_FIXED = 4 + 8 + 8 // id, sentAt, deadline

/** A MIGRATE frame with its head written; returns it and where the state goes. */
function migrateFrame (head: MigrateHead, stateBytes: number): [Buffer, number] {
  const { service, route } = head
  let sn = Buffer.byteLength(service)
  let rn = Buffer.byteLength(route)
  const cut = sn > 255 || rn > 255 // rare: cut to 255 bytes as Buffer.from(...).subarray does
  const sb = cut ? Buffer.from(service).subarray(0, 255) : undefined
  const rb = cut ? Buffer.from(route).subarray(0, 255) : undefined
  if (cut) { sn = sb!.length; rn = rb!.length }
  const b = frame(MSG_MIGRATE, MIGRATE_FIXED + 2 + sn + rn + stateBytes)
  b.writeUInt32BE(head.id >>> 0, HEAD)
  b.writeDoubleBE(head.sentAt, HEAD + 4)
  b.writeDoubleBE(head.deadline, HEAD + 12)
  let at = HEAD + MIGRATE_FIXED
  b[at++] = sn
  if (cut) sb!.copy(b, at); else b.write(service, at, sn, 'utf8')
  at += sn
  b[at++] = rn
  if (cut) rb!.copy(b, at); else b.write(route, at, rn, 'utf8')
  return [b, at + rn]
}

/** The state is a view into p (decodeMigrateState checks it). */
export function decodeMigrate (p: Buffer): Migrate | null {
  const f = MIGRATE_FIXED
  if (p.length < f + 2) return null
  const id = p.readUInt32BE(0)
  const sentAt = p.readDoubleBE(4)
  const deadline = p.readDoubleBE(12)
  if (!Number.isFinite(sentAt) || !Number.isFinite(deadline)) return null
  const n = p[f]!
  if (p.length < f + 2 + n) return null
  const service = p.toString('utf8', f + 1, f + 1 + n)
  const m = p[f + 1 + n]!
  const at = f + 2 + n + m
  if (p.length < at) return null
  return { id, sentAt, deadline, service, route: p.toString('utf8', f + 2 + n, at), state: p.subarray(at) }
}

export interface Ready { readonly id: number; readonly ok: boolean; readonly reason: string }

export function encodeReady (id: number, ok: boolean, reason = ''): Buffer {
  const r = Buffer.from(reason).subarray(0, MAX_REASON_BYTES)
  const b = frame(MSG_READY, 5 + r.length)
  b.writeUInt32BE(id >>> 0, HEAD)
  b[HEAD + 4] = ok ? 1 : 0
  r.copy(b, HEAD + 5)
  return b
}

export function decodeReady (p: Buffer): Ready | null {
  if (p.length < 5 || p.length > 5 + MAX_REASON_BYTES || p[4]! > 1) return null
  const ok = p[4] === 1
  if (ok && p.length !== 5) return null
  return { id: p.readUInt32BE(0), ok, reason: p.toString('utf8', 5) }
}

/** PONG: one u32. */
export function encodeU32 (type: typeof MSG_PONG, n: number): Buffer {
  const b = frame(type, 4)
  b.writeUInt32BE(n >>> 0, HEAD)
  return b
}

export interface Ping { readonly seq: number; readonly at: number }

/** PING: its seq and the dispatcher's clock (ms), which the agent's clock estimate learns from. */
export function encodePing (seq: number, at: number): Buffer {
  const b = frame(MSG_PING, 12)
  b.writeUInt32BE(seq >>> 0, HEAD)
  b.writeDoubleBE(at, HEAD + 4)
  return b
}

export function decodePing (p: Buffer): Ping | null {
  if (p.length !== 12) return null
  const at = p.readDoubleBE(4)
  return Number.isFinite(at) ? { seq: p.readUInt32BE(0), at } : null
}

export function decodeU32 (p: Buffer): number | null {
  return p.length === 4 ? p.readUInt32BE(0) : null
}

export function encodeClosed (ids: readonly number[]): Buffer {
  if (ids.length > MAX_CLOSED_IDS) throw new RangeError(`CLOSED carries at most ${MAX_CLOSED_IDS} ids`)
  const b = frame(MSG_CLOSED, 2 + 4 * ids.length)
  b.writeUInt16BE(ids.length, HEAD)
  for (let i = 0; i < ids.length; i++) b.writeUInt32BE(ids[i]! >>> 0, HEAD + 2 + 4 * i)
  return b
}

export function decodeClosed (p: Buffer): number[] | null {
  if (p.length < 2) return null
  const n = p.readUInt16BE(0)
  if (n > MAX_CLOSED_IDS || p.length !== 2 + 4 * n) return null
  const ids: number[] = []
  for (let i = 0; i < n; i++) ids.push(p.readUInt32BE(2 + 4 * i))
  return ids
}

export interface Load { readonly active: number; readonly backendUp: boolean }

export function encodeLoad (active: number, backendUp: boolean): Buffer {
  const b = frame(MSG_LOAD, 5)
  b.writeUInt32BE(active >>> 0, HEAD)
  b[HEAD + 4] = backendUp ? 1 : 0
  return b
}

export function decodeLoad (p: Buffer): Load | null {
  if (p.length !== 5 || p[4]! > 1) return null
  return { active: p.readUInt32BE(0), backendUp: p[4] === 1 }
}

export type FrameResult = { readonly type: number; readonly payload: Buffer } | { readonly error: string } | null

/**
 * Cuts a byte stream into frames. push() each chunk, then call next() until it returns null (needs more
 * bytes). An { error } (a length of 0 or over the limit) is final: close the connection. The payload is a
 * view into the reader's buffer, valid until the next push().
 */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0)
  #off = 0
  /** The largest frame accepted now (PRE_AUTH_MAX_BYTES until the handshake is done). */
  limit: number

  constructor (limit = PRE_AUTH_MAX_BYTES) { this.limit = limit }

  /** Bytes held that do not yet make a frame. */
  get buffered (): number { return this.#buf.length - this.#off }

  push (chunk: Buffer): void {
    const rest = this.#buf.length - this.#off
    this.#buf = rest === 0 ? chunk : Buffer.concat([this.#buf.subarray(this.#off), chunk])
    this.#off = 0
  }

  next (): FrameResult {
    const b = this.#buf
    const avail = b.length - this.#off
    if (avail < 4) return null
    const len = b.readUInt32BE(this.#off)
    if (len === 0 || len > this.limit) return { error: `frame of ${len} bytes (limit ${this.limit})` }
    if (avail < 4 + len) return null
    const type = b[this.#off + 4]!
    const payload = b.subarray(this.#off + HEAD, this.#off + 4 + len)
    this.#off += 4 + len
    return { type, payload }
  }
}
