// `baton agent`: runs on a real server's host and takes migrated connections (forward: migrate) from the
// dispatcher. The dispatcher has already steered the flow here when its MIGRATE arrives (packets that come
// before the socket exists are dropped by `baton host realserver`'s table, not reset). For each MIGRATE the
// agent restores the socket on the VIP straight from the MIGRATE's bytes (native.repairRestoreWire: decode,
// VIP check and restore in one addon call, no TcpRepairState), marks it ready for that table (IP_TRANSPARENT)
// and lets it go (native.repairGo: out of repair mode, without a window probe), hands it to the local back end
// over the back end's handoff socket, exactly as a dispatcher on this host would (forward/handoff-channel.ts,
// HANDOFF + SCM_RIGHTS), so baton/backend does not change, and then answers READY. It reports the migrated
// connections that end (CLOSED, flows.ts) and its load (LOAD: tracked connections, whether its back end is
// connected).
//
// The one thing that must never happen is two live sockets for one flow. The dispatcher restores a
// connection itself when the agent refuses it, or when no READY came within its timeout; so the agent
// refuses (READY ok=0, nothing restored) whatever it cannot take whole: a wrong VIP, no back end, a failed
// restore, and a MIGRATE whose deadline passed by its estimate of the dispatcher's clock (clock.ts). Once a
// socket has left repair mode it is the agent's, whatever happens next (READY ok=1).
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { BatonError, BatonNativeError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import type { RestoredFlow } from '../native/types'
import { HandoffChannel } from '../forward/handoff-channel'
import { ControlLink } from '../forward/migrate-link'
import { encodeHandoff, MAX_MESSAGE_BYTES } from '../protocol/handoff'
import {
  decodeMigrate, decodePing, encodeClosed, encodeLoad, encodeReady, encodeU32, INSTANCE_BYTES, MAX_CLOSED_IDS,
  MSG_MIGRATE, MSG_PING, MSG_PONG, ROLE_AGENT,
} from '../protocol/migrate-control'
import { PeerClock } from './clock'
import { FlowTracker } from './flows'

export interface AgentOptions {
  readonly listen: { readonly host: string; readonly port: number }
  readonly secret: string
  /** The VIP:port the dispatcher listens on: the only local end a restored socket may have. */
  readonly vip: { readonly host: string; readonly port: number }
  /** The local back end's handoff socket (acceptHandoffs). */
  readonly handoff: string
  readonly log: Logger
  /** Poll /proc/net/tcp and report this often (default 500: a socket gone from two polls in a row has ended). */
  readonly pollMs?: number
}

/** One dispatcher's control connection and the agent's estimate of its clock. */
interface Peer { readonly link: ControlLink; readonly clock: PeerClock }

const LOAD_EVERY_MS = 5_000
const HANDSHAKE_MS = 5_000

export class Agent {
  readonly #opts: AgentOptions
  readonly #log: Logger
  readonly #instance = randomBytes(INSTANCE_BYTES)
  readonly #peers = new Set<Peer>()
  readonly #server: net.Server
  readonly #channel: HandoffChannel<number>
  readonly #tracker: FlowTracker
  readonly #meta = Buffer.allocUnsafe(MAX_MESSAGE_BYTES)
  #closedIds: number[] = []
  #poll: NodeJS.Timeout | undefined
  #lastLoad = ''
  #lastLoadAt = 0

  constructor (opts: AgentOptions) {
    this.#opts = opts
    this.#log = opts.log
    this.#tracker = new FlowTracker(opts.vip.host, opts.vip.port)
    this.#server = net.createServer((s) => { this.#accept(s) })
    this.#channel = new HandoffChannel<number>(opts.handoff, {
      up: () => { this.#sendLoad(true) },
      down: (err) => {
        this.#log.warn({ err: err.message, code: err.code }, 'back end not connected: refusing migrations')
        this.#sendLoad(true)
      },
      feedback: () => {},
      hello: () => {},
      report: () => {},
      sent: () => {},
      unsent: (id, err) => { this.#log.error({ conn: id, err: err.message, code: 'BATON_ERR_MIGRATE_FAILED' }, 'back end did not take a migrated connection') },
      handback: (fd) => { native.close(fd); this.#log.warn({ code: 'BATON_ERR_MIGRATE_FAILED' }, 'a back end handed a migrated connection back (not supported): closed') },
    }, opts.log.child({ backend: opts.handoff }), new Set([0, process.getuid?.() ?? 0]), 2000)
  }

  /** Connects the back end's channel, listens for dispatchers; resolves with the bound port. */
  async start (): Promise<number> {
    this.#channel.open()
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(this.#opts.listen.port, this.#opts.listen.host, () => { this.#server.off('error', reject); resolve() })
    })
    this.#poll = setInterval(() => { void this.#onPoll() }, this.#opts.pollMs ?? 500)
    this.#poll.unref()
    const port = (this.#server.address() as net.AddressInfo).port
    this.#log.info({ listen: `${this.#opts.listen.host}:${port}`, vip: `${this.#opts.vip.host}:${this.#opts.vip.port}`, handoff: this.#opts.handoff }, 'baton agent listening')
    return port
  }

  async close (): Promise<void> {
    clearInterval(this.#poll)
    for (const p of this.#peers) p.link.close()
    this.#channel.close()
    await new Promise<void>((resolve) => { this.#server.close(() => { resolve() }) })
  }

  #accept (socket: net.Socket): void {
    const peer: Peer = {
      clock: new PeerClock(),
      link: new ControlLink(socket, ROLE_AGENT, this.#opts.secret, {
        ready: () => {
          this.#peers.add(peer)
          this.#log.info({ dispatcher: peer.link.remote }, 'dispatcher connected')
          peer.link.send(encodeLoad(this.#tracker.size, this.#channel.ready))
        },
        message: (type, payload) => { this.#onMessage(peer, type, payload) },
        closed: (err) => {
          this.#peers.delete(peer)
          const log = err.code === 'BATON_ERR_MIGRATE_AUTH' ? this.#log.warn.bind(this.#log) : this.#log.info.bind(this.#log)
          log({ dispatcher: peer.link.remote, err: err.message, code: err.code }, 'dispatcher connection closed')
        },
      }, HANDSHAKE_MS, this.#instance),
    }
  }

  #onMessage (peer: Peer, type: number, payload: Buffer): void {
    if (type === MSG_MIGRATE) { this.#migrate(peer, payload); return }
    const ping = type === MSG_PING ? decodePing(payload) : null
    if (ping !== null) {
      peer.clock.sample(ping.at, performance.now())
      peer.link.send(encodeU32(MSG_PONG, ping.seq))
      return
    }
    peer.link.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `protocol error: message type ${type} (${payload.length} bytes)`, { source: 'backend' }))
  }

  /**
   * Restores the socket, lets it go, hands it to the back end and answers READY; or refuses with READY ok=0
   * having restored nothing (the dispatcher then serves the client itself).
   */
  #migrate (peer: Peer, payload: Buffer): void {
    const now = performance.now()
    const m = decodeMigrate(payload)
    if (m === null) {
      peer.link.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `protocol error: bad MIGRATE (${payload.length} bytes)`, { source: 'backend' }))
      return
    }
    const refuse = (why: string): void => {
      this.#log.warn({ conn: m.id, err: why, code: 'BATON_ERR_MIGRATE_FAILED' }, 'migration refused')
      peer.link.send(encodeReady(m.id, false, why))
    }
    // A MIGRATE's own stamp says nothing of its delay until a PING gave the clocks a reference.
    const known = peer.clock.now(now) !== undefined
    peer.clock.sample(m.sentAt, now)
    const theirs = peer.clock.now(now)!
    if (!known || theirs > m.deadline) {
      refuse(known ? `stale: ${(theirs - m.deadline).toFixed(1)} ms past its deadline` : 'no PING yet')
      return
    }
    if (!this.#channel.ready) { refuse('the back end is not connected'); return }
    // Decode, the VIP check and the restore in one addon call, from the MIGRATE's bytes: `bad state: ...` and
    // `flow is for A:P, this agent's VIP is V:Q` come back as they are, a failed step as `restore: ...`.
    let flow: RestoredFlow
    try {
      flow = native.repairRestoreWire(m.state, 0, this.#opts.vip)
    } catch (err) {
      refuse(err instanceof BatonNativeError ? `restore: ${err.message}` : (err as Error).message)
      return
    }
    const { fd, unsent } = flow
    let written: number
    try {
      // No window probe: the client, which waits for its answer, learns nothing from it, and its packet
      // would delay the hand-off by a transmit (the research ran 300 connections with NO_WP, pitfall 5:
      // fine with the window restored). The answer's first segment carries the ACK.
      written = native.repairGo(fd, unsent, false, true)
    } catch (err) {
      // Still in repair mode unless TCP_REPAIR=0 itself went through: close it without a sound either way.
      try { native.repairClose(fd) } catch { native.close(fd) }
      refuse(`leaving repair mode: ${(err as Error).message}`)
      return
    }
    // From here on the socket is live and the agent's: READY ok whatever happens to it.
    const client = `${flow.peerAddress}:${flow.peerPort}`
    if (written < unsent.length) {
      native.close(fd)
      this.#log.error({ conn: m.id, err: `${unsent.length - written} never-sent bytes did not fit the socket`, code: 'BATON_ERR_MIGRATE_FAILED' }, 'migrated connection lost')
    } else {
      const len = encodeHandoff(this.#meta, m.id, m.service, m.route)
      const rc = this.#channel.send(fd, this.#meta, len, m.id)
      if (rc < 0) {
        native.close(fd)
        this.#log.error({ conn: m.id, err: native.errnoName(-rc), code: 'BATON_ERR_MIGRATE_FAILED' }, 'back end did not take a migrated connection')
      }
    }
    peer.link.send(encodeReady(m.id, true))
    this.#tracker.add(client, { id: m.id })
  }

  /** Every pollMs: report ended flows and the load. */
  async #onPoll (): Promise<void> {
    for (const f of await this.#tracker.sweep()) this.#closedIds.push(f.id)
    if (this.#closedIds.length > 0 && this.#peers.size > 0) {
      const ids = this.#closedIds
      this.#closedIds = []
      for (let i = 0; i < ids.length; i += MAX_CLOSED_IDS) {
        const msg = encodeClosed(ids.slice(i, i + MAX_CLOSED_IDS))
        for (const p of this.#peers) p.link.send(msg)
      }
    }
    this.#sendLoad(false)
  }

  /** LOAD to every dispatcher when it changed, or `force`, or every LOAD_EVERY_MS. */
  #sendLoad (force: boolean): void {
    const key = `${this.#tracker.size}/${this.#channel.ready}`
    const now = Date.now()
    if (!force && key === this.#lastLoad && now - this.#lastLoadAt < LOAD_EVERY_MS) return
    this.#lastLoad = key
    this.#lastLoadAt = now
    const msg = encodeLoad(this.#tracker.size, this.#channel.ready)
    for (const p of this.#peers) p.link.send(msg)
  }
}
