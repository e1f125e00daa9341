// `baton agent`: runs on a real server's host and takes migrated connections (forward: migrate) from the
// dispatcher. For each MIGRATE it restores the socket on the VIP (native.repairRestore, still in repair mode)
// and answers READY; on GO it leaves repair mode and hands the fd to the local back end over the back end's
// handoff socket, exactly as a dispatcher on this host would (forward/handoff-channel.ts, HANDOFF +
// SCM_RIGHTS), so baton/backend does not change. It reports the migrated connections that end (CLOSED,
// flows.ts) and its load (LOAD: tracked connections, whether its back end is connected).
//
// fd ownership: a restored socket is the agent's until GO hands it to the channel (which closes the agent's
// copy once sent), or until ABORT, a control connection that closes, or RESTORED_TTL_MS without GO: then it
// is closed in repair mode (no FIN, no RST: the dispatcher restored its own copy and serves the client).
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import { unsentOf } from '../native/repair'
import type { TcpRepairState } from '../native/types'
import { HandoffChannel } from '../forward/handoff-channel'
import { ControlLink } from '../forward/migrate-link'
import { encodeHandoff, MAX_MESSAGE_BYTES } from '../protocol/handoff'
import {
  decodeMigrate, decodeU32, encodeClosed, encodeLoad, encodeReady, encodeU32, INSTANCE_BYTES, MAX_CLOSED_IDS,
  MSG_ABORT, MSG_GO, MSG_MIGRATE, MSG_PING, MSG_PONG, ROLE_AGENT,
} from '../protocol/migrate-control'
import { decodeMigrateState } from '../protocol/migrate-state'
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

/** A restored socket waiting for GO. */
interface Restored { readonly fd: number; readonly state: TcpRepairState; readonly service: string; readonly route: string; readonly at: number }

/** One dispatcher's control connection and the sockets restored for it. */
interface Peer { readonly link: ControlLink; readonly restored: Map<number, Restored> }

const RESTORED_TTL_MS = 10_000
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
      restored: new Map(),
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
          for (const [id, r] of peer.restored) this.#drop(peer, id, r)
        },
      }, HANDSHAKE_MS, this.#instance),
    }
  }

  #onMessage (peer: Peer, type: number, payload: Buffer): void {
    if (type === MSG_MIGRATE) { this.#migrate(peer, payload); return }
    const n = decodeU32(payload)
    if (n !== null && type === MSG_GO) { this.#go(peer, n); return }
    if (n !== null && type === MSG_ABORT) {
      const r = peer.restored.get(n)
      if (r !== undefined) this.#drop(peer, n, r)
      return
    }
    if (n !== null && type === MSG_PING) { peer.link.send(encodeU32(MSG_PONG, n)); return }
    peer.link.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `protocol error: message type ${type} (${payload.length} bytes)`, { source: 'backend' }))
  }

  /** Restores the socket (repair mode) and answers READY, or READY with why not. */
  #migrate (peer: Peer, payload: Buffer): void {
    const m = decodeMigrate(payload)
    if (m === null) {
      peer.link.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `protocol error: bad MIGRATE (${payload.length} bytes)`, { source: 'backend' }))
      return
    }
    const refuse = (why: string): void => {
      this.#log.warn({ conn: m.id, err: why, code: 'BATON_ERR_MIGRATE_FAILED' }, 'migration refused')
      peer.link.send(encodeReady(m.id, false, why))
    }
    const decoded = decodeMigrateState(m.state)
    if (!decoded.ok) { refuse(`bad state: ${decoded.reason}`); return }
    const state = decoded.state
    const vip = this.#opts.vip
    if (state.localAddress !== vip.host || state.localPort !== vip.port) {
      refuse(`flow is for ${state.localAddress}:${state.localPort}, this agent's VIP is ${vip.host}:${vip.port}`)
      return
    }
    if (!this.#channel.ready) { refuse('the back end is not connected'); return }
    if (peer.restored.has(m.id)) { refuse(`connection ${m.id} is already restored`); return }
    let fd: number
    try { fd = native.repairRestore(state) } catch (err) { refuse(`restore: ${(err as Error).message}`); return }
    peer.restored.set(m.id, { fd, state, service: m.service, route: m.route, at: Date.now() })
    peer.link.send(encodeReady(m.id, true))
  }

  /** The flow is steered: leave repair mode, hand the socket to the back end, track it. */
  #go (peer: Peer, id: number): void {
    const r = peer.restored.get(id)
    if (r === undefined) return // dropped already (its TTL): the dispatcher learns it from the CLOSED
    peer.restored.delete(id)
    const client = `${r.state.peerAddress}:${r.state.peerPort}`
    try {
      const unsent = unsentOf(r.state)
      const written = native.repairGo(r.fd, unsent)
      if (written < unsent.length) throw new Error(`${unsent.length - written} never-sent bytes did not fit the socket`)
    } catch (err) {
      native.close(r.fd)
      this.#log.error({ conn: id, err: (err as Error).message, code: 'BATON_ERR_MIGRATE_FAILED' }, 'migrated connection lost at GO')
      this.#tracker.add(client, { id })
      return
    }
    const len = encodeHandoff(this.#meta, id, r.service, r.route)
    const rc = this.#channel.send(r.fd, this.#meta, len, id)
    if (rc < 0) {
      native.close(r.fd)
      this.#log.error({ conn: id, err: native.errnoName(-rc), code: 'BATON_ERR_MIGRATE_FAILED' }, 'back end did not take a migrated connection')
    }
    this.#tracker.add(client, { id })
  }

  /** A restored socket that will not go: closed in repair mode, so the client sees nothing of it. */
  #drop (peer: Peer, id: number, r: Restored): void {
    peer.restored.delete(id)
    try { native.repairClose(r.fd) } catch { native.close(r.fd) }
  }

  /** Once a second: expire restored sockets without GO, report ended flows and the load. */
  async #onPoll (): Promise<void> {
    const now = Date.now()
    for (const peer of this.#peers) {
      for (const [id, r] of peer.restored) if (now - r.at > RESTORED_TTL_MS) this.#drop(peer, id, r)
    }
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
