// One migrate control connection (protocol/migrate-control.ts), either end: the dispatcher's forwarder
// (forward/migrate.ts) connects one per agent server, `baton agent` (agent/) accepts them. This file frames
// the stream, runs the challenge-response handshake in both directions, and hands authenticated messages to
// its owner. Owns exactly its socket: close() or any error destroys it, and closed() is called once.
//
// Nothing but HELLO, AUTH and ACCEPTED is read before the peer proved the secret, and frames are limited to
// PRE_AUTH_MAX_BYTES until then, so a peer without the secret can make this end hold 64 bytes and a timer.
// The secret never crosses the wire; the connection is not encrypted (see docs/migrate-forward.md: the control
// network must be trusted against on-path attackers, as the flows it steers are).
import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import { BatonError } from '../errors'
import { native } from '../native/binding'
import {
  decodeHello, encodeAccepted, encodeAuth, encodeHello, FrameReader, type Hello, INSTANCE_BYTES, MAX_FRAME_BYTES,
  MSG_ACCEPTED, MSG_AUTH, MSG_HELLO, NONCE_BYTES, proofOf, ROLE_AGENT, ROLE_DISPATCHER, type Role, verifyProof, VERSION,
} from '../protocol/migrate-control'

export interface LinkHooks {
  /** Both sides proved the secret (the dispatcher: the agent sent ACCEPTED). `peer` is the peer's HELLO. */
  ready (peer: Hello): void
  /** An authenticated frame; the payload is valid for as long as the caller keeps it. */
  message (type: number, payload: Buffer): void
  /** The connection is gone (once). err.code: MIGRATE_AUTH, MIGRATE_CONTROL. */
  closed (err: BatonError): void
}

type Phase = 'hello' | 'auth' | 'accepted' | 'ready' | 'closed'

export class ControlLink {
  readonly role: Role
  readonly #peerRole: Role
  readonly #socket: Socket
  readonly #secret: string
  readonly #hooks: LinkHooks
  readonly #nonce = randomBytes(NONCE_BYTES)
  readonly #reader = new FrameReader()
  #peerNonce: Buffer | undefined
  #peerHello: Hello | undefined
  #phase: Phase = 'hello'
  #timer: NodeJS.Timeout | undefined

  /**
   * Takes `socket` (connecting or connected; an agent's accepted one). Sends HELLO once connected. A handshake
   * not done within handshakeTimeoutMs closes the link. `instance`: the agent process's id (zeros for a dispatcher).
   */
  constructor (socket: Socket, role: Role, secret: string, hooks: LinkHooks, handshakeTimeoutMs: number,
    instance: Buffer = Buffer.alloc(INSTANCE_BYTES)) {
    this.role = role
    this.#peerRole = role === ROLE_DISPATCHER ? ROLE_AGENT : ROLE_DISPATCHER
    this.#socket = socket
    this.#secret = secret
    this.#hooks = hooks
    socket.setNoDelay(true)
    const hello = encodeHello(role, this.#nonce, instance)
    if (socket.connecting) socket.once('connect', () => { socket.write(hello) })
    else socket.write(hello)
    socket.on('data', (chunk: Buffer) => { this.#onData(chunk) })
    socket.on('error', (err) => {
      this.#fail('BATON_ERR_MIGRATE_CONTROL', `control connection: ${(err as NodeJS.ErrnoException).code ?? err.message}`)
    })
    socket.on('close', () => { this.#fail('BATON_ERR_MIGRATE_CONTROL', 'control connection closed by the peer') })
    this.#timer = setTimeout(() => {
      this.#fail(this.#phase === 'hello' ? 'BATON_ERR_MIGRATE_CONTROL' : 'BATON_ERR_MIGRATE_AUTH',
        `control handshake not done within ${handshakeTimeoutMs} ms (${this.#phase})`)
    }, handshakeTimeoutMs)
    this.#timer.unref()
  }

  get ready (): boolean { return this.#phase === 'ready' }
  get remote (): string { return `${this.#socket.remoteAddress ?? '?'}:${this.#socket.remotePort ?? 0}` }

  /**
   * Writes a frame; false (nothing written) once the link is closed or not authenticated. With nothing
   * queued or corked ahead of it the frame goes straight to the kernel (the dispatcher's MIGRATE is on its
   * migration clock; the stream's bookkeeping cost about as much as the system call), and any rest, or an
   * error, through the stream, which then reports it as it would.
   */
  send (frame: Buffer): boolean {
    if (this.#phase !== 'ready') return false
    const s = this.#socket
    const fd = (s as unknown as { _handle?: { fd?: number } | null })._handle?.fd ?? -1
    if (fd >= 0 && s.writableLength === 0 && s.writableCorked === 0 && native.available) {
      const n = native.write(fd, frame)
      if (n === frame.length) return true
      if (n > 0) frame = frame.subarray(n)
    }
    s.write(frame)
    return true
  }

  /** Closes the link; closed() follows with `err` (once). */
  close (err = new BatonError('BATON_ERR_MIGRATE_CONTROL', 'control connection closed', { source: 'internal' })): void {
    this.#end(err)
  }

  /**
   * The agent handles a chunk's frames with its socket corked, so the READYs for a chunk of MIGRATEs leave in
   * one write, in order, as the chunk ends: under load one system call (and one packet for the dispatcher to
   * read) instead of one each. The dispatcher does not: its clock counts each GO as written when it is.
   */
  #onData (chunk: Buffer): void {
    if (this.#phase === 'closed') return
    this.#reader.push(chunk)
    if (this.role !== ROLE_AGENT) { this.#frames(); return }
    this.#socket.cork()
    try { this.#frames() } finally { this.#socket.uncork() }
  }

  #frames (): void {
    for (;;) {
      const f = this.#reader.next()
      if (f === null) return
      if ('error' in f) { this.#fail('BATON_ERR_MIGRATE_CONTROL', `protocol error: ${f.error}`); return }
      if (this.#phase === 'ready') this.#hooks.message(f.type, f.payload)
      else this.#handshake(f.type, f.payload)
      if ((this.#phase as Phase) === 'closed') return
    }
  }

  /**
   * The agent answers the dispatcher's HELLO with its AUTH; the dispatcher checks it before it sends its own;
   * the agent checks that and says ACCEPTED. Anything out of order closes the link.
   */
  #handshake (type: number, payload: Buffer): void {
    if (this.#phase === 'hello' && type === MSG_HELLO) {
      const h = decodeHello(payload)
      if (h === null) { this.#fail('BATON_ERR_MIGRATE_CONTROL', `protocol error: bad HELLO (${payload.length} bytes)`); return }
      if (h.version !== VERSION) { this.#fail('BATON_ERR_MIGRATE_CONTROL', `peer speaks version ${h.version}, this end ${VERSION}`); return }
      if (h.role !== this.#peerRole) { this.#fail('BATON_ERR_MIGRATE_AUTH', `peer says role ${h.role}, expected ${this.#peerRole}`); return }
      this.#peerNonce = Buffer.from(h.nonce)
      this.#peerHello = { ...h, nonce: this.#peerNonce, instance: Buffer.from(h.instance) }
      if (this.role === ROLE_AGENT) this.#socket.write(encodeAuth(proofOf(this.#secret, this.role, this.#nonce, this.#peerNonce)))
      this.#phase = 'auth'
    } else if (this.#phase === 'auth' && type === MSG_AUTH) {
      if (!verifyProof(this.#secret, this.#peerRole, this.#peerNonce!, this.#nonce, payload)) {
        this.#fail('BATON_ERR_MIGRATE_AUTH', `${this.remote} did not prove the shared secret`)
        return
      }
      if (this.role === ROLE_DISPATCHER) {
        this.#socket.write(encodeAuth(proofOf(this.#secret, this.role, this.#nonce, this.#peerNonce!)))
        this.#phase = 'accepted'
        return
      }
      this.#socket.write(encodeAccepted())
      this.#authenticated()
    } else if (this.#phase === 'accepted' && type === MSG_ACCEPTED && payload.length === 0) {
      this.#authenticated()
    } else {
      this.#fail(type === MSG_AUTH || type === MSG_ACCEPTED ? 'BATON_ERR_MIGRATE_AUTH' : 'BATON_ERR_MIGRATE_CONTROL',
        `message type ${type} (${payload.length} bytes) during the handshake (${this.#phase})`)
    }
  }

  #authenticated (): void {
    clearTimeout(this.#timer)
    this.#phase = 'ready'
    this.#reader.limit = MAX_FRAME_BYTES
    this.#hooks.ready(this.#peerHello!)
  }

  #fail (code: 'BATON_ERR_MIGRATE_CONTROL' | 'BATON_ERR_MIGRATE_AUTH', message: string): void {
    this.#end(new BatonError(code, message, { source: 'backend', retryable: true }))
  }

  #end (err: BatonError): void {
    if (this.#phase === 'closed') return
    this.#phase = 'closed'
    clearTimeout(this.#timer)
    this.#socket.destroy()
    this.#hooks.closed(err)
  }
}
