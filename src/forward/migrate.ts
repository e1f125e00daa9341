// Forwarding method `migrate` (another host): the live TCP connection moves to the real server's host,
// whose `baton agent` restores it on the VIP and hands it to its local back end; responses go from there
// straight to the client. The sequence (research/tcp-repair-migration.md, docs/migrate-forward.md):
//
//   MIGRATE's head (encodeMigratePrefix) -> freeze (nft add flow -> 0xff) -> repairDump -> repairClose ->
//   steer (nft replace flow -> the server's mark), all four in one addon call (FlowTable.moveOut), which
//   writes the dumped state after the head and returns the frame -> MIGRATE ............ READY (restored
//   there, let go, handed to the back end) -> handedOff
//
// The dispatcher's socket is closed in repair mode before the flow is steered (pitfall 1: early demux would
// feed the old socket). The flow is steered before the agent has the socket (pitfall 2's other design): the
// packets that reach the real server's host before the agent restored it are dropped there by `baton host
// realserver`'s table, not reset, so the agent needs no GO and lets the socket go at once. The dispatcher's
// part ends with the MIGRATE write; READY only confirms. From repairClose on, the client is reachable only
// through the dumped state: on a refusal, a timeout or a lost control connection the dispatcher restores the
// socket itself from that state (it still has the VIP), takes the flow back (deletes its element) and gives
// the restored fd back to the data path as a retryable failure, so the client is served elsewhere or
// answered; it never hangs. The agent refuses a MIGRATE past its deadline (half the timeout), so by the time
// the dispatcher gives up it cannot take the connection any more (agent/clock.ts).
//
// Per agent server: one control connection (migrate-link.ts, authenticated both ways, reconnected with
// backoff; down at once through HealthInput.channel when it fails or stops answering PINGs), a mark and a
// policy route (migrate-route.ts). The flow elements' lifetimes are migrate-flows.ts's.
import { channel } from 'node:diagnostics_channel'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import type { MigrateConfig } from '../config/types'
import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import type { MoveOutResult } from '../native/types'
import {
  decodeClosed, decodeLoad, decodeReady, decodeU32, encodeMigratePrefix, encodePing, MSG_CLOSED, MSG_LOAD, MSG_PONG,
  MSG_READY, ROLE_DISPATCHER, stampMigratePrefix,
} from '../protocol/migrate-control'
import { FlowTable, openFlowMap } from './migrate-flows'
import { ControlLink } from './migrate-link'
import { earlyDemuxOff, installRoute, MAX_MARK, needsRoute, removeRoute } from './migrate-route'
import type { ForwardConn, Forwarder, ForwardServer, ForwardSink, HealthInput, RequestTimes } from './types'

/** What the migrate forwarder needs beyond ForwarderOptions: the config's `migrate:` and the VIPs (listen hosts). */
export interface MigrateOptions extends MigrateConfig { readonly vips: readonly string[] }

const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5000
/**
 * An agent whose control connection stays down this long has lost the connections it held: their flow
 * elements go (after graceMs), so none outlives them to steer a later connection from the same client port.
 */
const LOST_AFTER_MS = 1000
/** MIGRATE prefixes kept (one per service and route); more are dropped and built again. */
const MAX_PREFIXES = 1024
/**
 * Bucket bounds of the migration times (seconds, upper, inclusive; one more bucket above the last): the
 * dispatcher's part (to MIGRATE written) and the whole (to READY), baton_migrate_seconds.
 */
export const MIGRATE_BOUNDS: readonly number[] = [0.000025, 0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.1]

/**
 * A migration in flight: the MIGRATE frame (the dumped state from stateAt on: what #restore decodes if the
 * connection comes back), and performance.now() (ms) at each step of the dispatcher's part: t0 before the
 * MIGRATE's head is encoded, encoded (head built, just before the freeze), steered (freeze, dump into the
 * frame, close and steer: one addon call), sentAt (MIGRATE written: the dispatcher is done).
 */
interface Pending<C> {
  readonly conn: C; readonly frame: Buffer; readonly stateAt: number; readonly t0: number
  readonly encoded: number; readonly steered: number; sentAt: number
}

/**
 * Per migration, when anyone subscribes (bench/migrate.ts): { conn, steps } with steps the µs of MIGRATE_STEPS:
 * encode (the MIGRATE's head, first), moveOut (one addon call: freeze, dump into the frame, close, steer; or,
 * steering first, steer and dump, the old socket closed after the MIGRATE is written, off the clock), send
 * MIGRATE, the migration (the dispatcher's whole part: from the head's encode to MIGRATE written), the wait
 * for READY, and the total (to READY).
 */
export const migratedChannel = channel('baton:migrate:migrated')
export const MIGRATE_STEPS = ['encode (MIGRATE head)', 'moveOut (nft, dump, close)', 'send MIGRATE',
  'migration (head to MIGRATE sent)', 'wait READY', 'total (head to READY)'] as const

/** One agent server: its control connection, mark, route and migrations in flight. */
interface Agent<C, S> {
  readonly server: S
  readonly mark: number
  link: ControlLink | undefined
  /** The agent process this link reached (HELLO's instance), which owns the flows migrated there. */
  instance: string
  routeOk: boolean
  /** Its mark routes to another host (not an agent on this host's loopback). */
  readonly routed: boolean
  backendUp: boolean
  up: boolean
  active: number
  readonly pending: Map<number, Pending<C>>
  silentTicks: number
  pingSeq: number
  retryMs: number
  retry: NodeJS.Timeout | undefined
  /** Runs LOST_AFTER_MS after the control connection went down, unless the same agent answers again. */
  lostTimer: NodeJS.Timeout | undefined
  detached: boolean
}

export class MigrateForwarder<C extends ForwardConn<S>, S extends ForwardServer> implements Forwarder<C, S> {
  readonly method = 'migrate' as const
  readonly reportsLiveness = true
  readonly active = 0
  readonly #sink: ForwardSink<C, S>
  readonly #health: HealthInput<S>
  readonly #log: Logger
  readonly #opts: MigrateOptions | undefined
  /** No READY this long after the MIGRATE: restored here. The agent refuses a MIGRATE after half of it. */
  readonly #timeoutMs: number
  /** Early demux is off on this host: migrations to routed agents steer first and never freeze. */
  #steerFirst = false
  readonly #agents = new Map<S, Agent<C, S>>()
  readonly #marks = new Set<number>()
  #flows: FlowTable<string> | undefined
  readonly #tick: NodeJS.Timeout
  /**
   * MIGRATE's head up to the state by service, then route (encodeMigratePrefix), stamped per connection
   * (stampMigratePrefix): moveOut copies it into the frame, so one buffer serves every connection.
   */
  readonly #prefixes = new Map<string, Map<string, Buffer>>()
  #prefixCount = 0
  /** Migration times by `service\0server\0phase` (phase: dispatcher, ready), for baton_migrate_seconds. */
  readonly #times = new Map<string, RequestTimes>()
  #closed = false

  constructor (sink: ForwardSink<C, S>, health: HealthInput<S>, opts: MigrateOptions | undefined, log: Logger) {
    this.#sink = sink
    this.#health = health
    this.#log = log
    this.#opts = opts
    this.#timeoutMs = opts?.timeoutMs ?? 1000
    this.#checkEarlyDemux()
    const quarter = Math.max(5, Math.floor(this.#timeoutMs / 4))
    this.#tick = setInterval(() => { this.#onTick() }, quarter)
    this.#tick.unref()
  }

  /**
   * Migration times by `service\0server\0phase`, seconds: phase `dispatcher` from the migration's first step
   * (the MIGRATE head) to the MIGRATE written (the dispatcher's part), `ready` from the same start to READY
   * (the agent restored the connection and handed it off).
   */
  get migrateTimes (): ReadonlyMap<string, RequestTimes> { return this.#times }

  /** Flows steered now (tests, metrics). */
  get flows (): number { return this.#flows?.size ?? 0 }

  /** Takes a mark, installs the policy route, connects the control link. The server is down until all are ready. */
  attach (server: S): void {
    if (this.#agents.has(server) || this.#closed) return
    const opts = this.#opts
    try {
      if (opts === undefined) throw new BatonError('BATON_ERR_MIGRATE_UNAVAILABLE', 'agent: servers need the top-level migrate: settings', { source: 'config' })
      this.#flows ??= new FlowTable(openFlowMap(opts.flowTable.table, opts.flowTable.map), this.#log, opts.graceMs, 4 * opts.timeoutMs + 1000)
    } catch (err) {
      this.#log.error({ svc: server.service, backend: server.id, err: (err as Error).message, code: 'BATON_ERR_MIGRATE_UNAVAILABLE' }, 'migrate server stays down')
      this.#health.channel(server, false, (err as Error).message)
      return
    }
    let mark = 1
    while (this.#marks.has(mark) && mark <= MAX_MARK) mark++
    if (mark > MAX_MARK) {
      this.#log.error({ svc: server.service, backend: server.id, code: 'BATON_ERR_MIGRATE_UNAVAILABLE' }, `more than ${MAX_MARK} agent servers`)
      return
    }
    this.#marks.add(mark)
    const a: Agent<C, S> = {
      server, mark, link: undefined, instance: '', routeOk: false, routed: needsRoute(server.target.host), backendUp: false, up: false, active: 0,
      pending: new Map(), silentTicks: 0, pingSeq: 0, retryMs: RECONNECT_MIN_MS, retry: undefined, lostTimer: undefined, detached: false,
    }
    this.#agents.set(server, a)
    const host = server.target.host
    if (!needsRoute(host)) a.routeOk = true
    else {
      void installRoute(mark, opts!.vips, host).then((err) => {
        if (a.detached) return
        if (err !== undefined) this.#log.error({ svc: server.service, backend: server.id, err, code: 'BATON_ERR_MIGRATE_UNAVAILABLE' }, 'policy route not installed: server stays down')
        a.routeOk = err === undefined
        this.#judge(a, err ?? 'policy route installed')
      })
    }
    this.#connect(a)
  }

  /**
   * The server left: no new migrations. Its flows keep their steering until they end (CLOSED) or their
   * elements expire; the link, route and mark go when none is left.
   */
  detach (server: S): void {
    const a = this.#agents.get(server)
    if (a === undefined) return
    this.#agents.delete(server)
    a.detached = true
    a.up = false
    if (this.#flows?.count(a.instance) === 0 || a.link === undefined) this.#release(a)
  }

  checkAddress (): undefined { return undefined }

  /**
   * Hot path: MIGRATE's head, then freeze, dump into the frame, close in repair mode, steer (one addon call),
   * MIGRATE. READY, a refusal or the timeout completes it.
   */
  forward (conn: C): void {
    const a = this.#agents.get(conn.server!)
    const flows = this.#flows
    if (a === undefined || !a.up || flows === undefined) { this.#refuse(conn, 'agent not connected'); return }
    if (conn.consumed !== undefined && conn.consumed.length > 0) { this.#refuse(conn, 'a connection with bytes already read cannot migrate'); return }
    const t0 = performance.now()
    const prefix = stampMigratePrefix(this.#prefixOf(conn.service, conn.route), conn.id, t0, t0 + this.#timeoutMs / 2)
    const encoded = performance.now()
    let moved: MoveOutResult
    const steerFirst = a.routed && this.#steerFirst
    try {
      moved = flows.moveOut(conn.fd, conn, prefix, a.mark, steerFirst)
    } catch (err) { // nothing moved: the fd is still ours, out of repair mode, and the flow not frozen
      this.#refuse(conn, (err as Error).message)
      return
    }
    const p: Pending<C> = { conn, frame: moved.frame, stateAt: moved.stateAt, t0, encoded, steered: performance.now(), sentAt: 0 }
    if (moved.steerError !== undefined) { this.#restore(p, `steer: ${moved.steerError.message}`); return }
    a.pending.set(conn.id, p)
    a.link!.send(moved.frame)
    p.sentAt = performance.now()
    // Steering first, the old socket was left open, in repair mode (its close sends nothing, and nothing
    // reaches it any more): closed now, off the migration's clock, and before any local restore.
    if (steerFirst) native.close(conn.fd)
    this.#time(conn, 'dispatcher', p.sentAt - t0)
  }

  /** The MIGRATE prefix of a service and route, to stamp (built once; the addon copies it). */
  #prefixOf (service: string, route: string): Buffer {
    let byRoute = this.#prefixes.get(service)
    let prefix = byRoute?.get(route)
    if (prefix !== undefined) return prefix
    if (this.#prefixCount >= MAX_PREFIXES) { this.#prefixes.clear(); this.#prefixCount = 0; byRoute = undefined }
    if (byRoute === undefined) this.#prefixes.set(service, byRoute = new Map())
    prefix = encodeMigratePrefix({ id: 0, sentAt: 0, deadline: 0, service, route })
    byRoute.set(route, prefix)
    this.#prefixCount++
    return prefix
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#tick)
    for (const a of this.#agents.values()) {
      a.detached = true
      clearTimeout(a.retry)
      a.link?.close()
    }
    this.#agents.clear()
    this.#flows?.close()
    this.#flows = undefined
  }

  #refuse (conn: C, why: string): void {
    this.#sink.failed(conn, new BatonError('BATON_ERR_MIGRATE_FAILED', `migrate to ${conn.server!.id}: ${why}`,
      { source: 'backend', retryable: true }))
  }

  #connect (a: Agent<C, S>): void {
    a.retry = undefined
    if (a.detached) return
    const { host, port } = a.server.target
    const opts = this.#opts!
    const link = new ControlLink(net.connect(port, host), ROLE_DISPATCHER, opts.secret, {
      ready: (peer) => {
        const instance = peer.instance.toString('hex')
        clearTimeout(a.lostTimer)
        a.lostTimer = undefined
        if (a.instance !== '' && a.instance !== instance) this.#agentRestarted(a)
        a.instance = instance
        a.retryMs = RECONNECT_MIN_MS
        a.silentTicks = 0
        link.send(encodePing(++a.pingSeq, performance.now())) // before any MIGRATE: the agent's clock estimate starts here
        this.#log.info({ svc: a.server.service, backend: a.server.id, agent: link.remote, mark: a.mark }, 'migrate control connected')
      },
      message: (type, payload) => { this.#onMessage(a, type, payload) },
      closed: (err) => { this.#onClosed(a, link, err) },
    }, Math.max(1000, 2 * opts.timeoutMs))
    a.link = link
  }

  #onClosed (a: Agent<C, S>, link: ControlLink, err: BatonError): void {
    if (a.link !== link) return
    a.link = undefined
    a.backendUp = false
    if (!this.#closed) {
      this.#log.warn({ svc: a.server.service, backend: a.server.id, err: err.message, code: err.code, retryMs: a.retryMs }, 'migrate control connection down')
    }
    this.#judge(a, err.message)
    for (const [id, p] of a.pending) { a.pending.delete(id); this.#restore(p, `control connection lost: ${err.message}`) }
    if (!a.detached && a.lostTimer === undefined && (this.#flows?.count(a.instance) ?? 0) > 0) {
      a.lostTimer = setTimeout(() => {
        a.lostTimer = undefined
        if (a.link?.ready !== true) this.#agentLost(a, `control connection down for ${LOST_AFTER_MS} ms`)
      }, LOST_AFTER_MS)
      a.lostTimer.unref()
    }
    if (a.detached) { this.#release(a); return }
    a.retry = setTimeout(() => { this.#connect(a) }, a.retryMs)
    a.retry.unref()
    a.retryMs = Math.min(a.retryMs * 2, RECONNECT_MAX_MS)
  }

  /** Up = authenticated link, its back end connected (LOAD), and the route in place. Reports changes only. */
  #judge (a: Agent<C, S>, why: string): void {
    const up = !a.detached && a.link?.ready === true && a.backendUp && a.routeOk
    if (up === a.up) return
    a.up = up
    this.#health.channel(a.server, up, why, !up && a.link === undefined)
  }

  #onMessage (a: Agent<C, S>, type: number, payload: Buffer): void {
    a.silentTicks = 0
    if (type === MSG_READY) {
      const r = decodeReady(payload)
      if (r !== null) { this.#onReady(a, r.id, r.ok, r.reason); return }
    } else if (type === MSG_CLOSED) {
      const ids = decodeClosed(payload)
      if (ids !== null) { this.#onFlowsClosed(a, ids); return }
    } else if (type === MSG_LOAD) {
      const l = decodeLoad(payload)
      if (l !== null) {
        a.active = l.active
        a.backendUp = l.backendUp
        this.#judge(a, l.backendUp ? 'agent and its back end connected' : 'the agent\'s back end is not connected')
        return
      }
    } else if (type === MSG_PONG && decodeU32(payload) !== null) return
    a.link?.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `protocol error: message type ${type} (${payload.length} bytes)`, { source: 'backend' }))
  }

  #onReady (a: Agent<C, S>, id: number, ok: boolean, reason: string): void {
    const p = a.pending.get(id)
    if (p === undefined) {
      // Given up already (timeout) and restored here. The agent refuses a MIGRATE past its deadline, half the
      // timeout, so an ok here means a READY that took longer than that on its way back: two sockets hold the
      // flow now, and the one here, which the flow is steered to, wins.
      if (ok) this.#log.error({ conn: id, backend: a.server.id, code: 'BATON_ERR_MIGRATE_FAILED' }, 'READY came after the timeout: the agent\'s copy of the connection is orphaned')
      return
    }
    a.pending.delete(id)
    if (!ok) { this.#restore(p, `agent refused: ${reason}`); return }
    const { conn } = p
    const end = performance.now()
    this.#time(conn, 'ready', end - p.t0)
    this.#flows!.track(a.instance, id, { address: conn.clientAddress, port: conn.clientPort, mark: a.mark })
    if (migratedChannel.hasSubscribers) {
      migratedChannel.publish({ conn: id, steps: [p.encoded - p.t0, p.steered - p.encoded, p.sentAt - p.steered, p.sentAt - p.t0,
        end - p.sentAt, end - p.t0].map((ms) => ms * 1000) })
    }
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ conn: id, svc: conn.service, backend: a.server.id, durMs: end - p.t0, localUs: (p.sentAt - p.t0) * 1000,
        agentUs: (end - p.sentAt) * 1000 }, 'migrated')
    }
    this.#sink.handedOff(conn)
  }

  #time (conn: C, phase: 'dispatcher' | 'ready', ms: number): void {
    const key = `${conn.service}\0${conn.server!.id}\0${phase}`
    let t = this.#times.get(key)
    if (t === undefined) this.#times.set(key, t = { bounds: MIGRATE_BOUNDS, counts: new Float64Array(MIGRATE_BOUNDS.length + 1), sum: 0 })
    const s = ms / 1000
    let i = 0
    while (i < MIGRATE_BOUNDS.length && s > MIGRATE_BOUNDS[i]!) i++
    t.counts[i]!++
    t.sum += s
  }

  #onFlowsClosed (a: Agent<C, S>, ids: readonly number[]): void {
    const n = this.#flows?.closed(a.instance, ids) ?? 0
    if (n > 0) this.#sink.feedback(a.server, -n, 0, n)
    if (a.detached && this.#flows?.count(a.instance) === 0) this.#release(a)
  }

  /** A different agent process answers now: no one reports the old one's flows any more. */
  #agentRestarted (a: Agent<C, S>): void {
    this.#agentLost(a, 'another agent process answers')
  }

  /**
   * The connections the agent held are lost: their steering goes after graceMs (a stale element would send a
   * later connection from the same client port to that host, pitfall 8), and the server's counters go to 0.
   */
  #agentLost (a: Agent<C, S>, why: string): void {
    const n = this.#flows?.lost(a.instance) ?? 0
    if (n > 0) this.#log.warn({ svc: a.server.service, backend: a.server.id, flows: n, why, code: 'BATON_ERR_MIGRATE_CONTROL' }, 'agent lost: its flows are no longer steered')
    this.#sink.lost(a.server)
  }

  /**
   * The migration did not happen: rebuild the socket here from the dumped state (decoded from the MIGRATE
   * frame only now: the success path never builds it), take the flow back (delete its element), let the
   * socket go, and give the client back to the data path with the restored fd (retryable). If even that
   * fails the client is gone: the flow is taken back, its next packet meets no socket and it gets a reset.
   */
  #restore (p: Pending<C>, why: string): void {
    const { conn } = p
    let fd = -1
    let unsent: Buffer = Buffer.alloc(0)
    try {
      const r = native.repairRestoreWire(p.frame, p.stateAt, { host: conn.localAddress, port: conn.localPort })
      fd = r.fd
      unsent = r.unsent
    } catch (err) {
      why = `${why}; local restore failed too: ${(err as Error).message}`
    }
    this.#flows?.unfreeze(conn.clientAddress, conn.clientPort)
    if (fd >= 0) {
      try {
        if (native.repairGo(fd, unsent) < unsent.length) throw new Error('unsent bytes did not fit')
      } catch (err) {
        native.close(fd)
        fd = -1
        why = `${why}; local restore failed too: ${(err as Error).message}`
      }
    }
    const err = new BatonError('BATON_ERR_MIGRATE_FAILED', `migrate to ${conn.server!.id}: ${why}`, { source: 'backend', retryable: true })
    if (fd < 0) {
      this.#log.error({ conn: conn.id, svc: conn.service, backend: conn.server!.id, err: err.message, code: err.code }, 'client lost')
      this.#sink.handedOff(conn) // gone from this process either way; count it straight back down
      this.#sink.feedback(conn.server!, -1, 0, 1)
      return
    }
    conn.fd = fd
    this.#sink.failed(conn, err)
  }

  /**
   * Every timeoutMs / 4: migrations past timeoutMs are restored here, after this turn's I/O (a READY already
   * received must win over the timer); PING every 4 ticks; silence = down.
   */
  /**
   * Steer first (no freeze) while early demux is off here, re-read every tick: an operator who turns it
   * back on gets the freeze again within timeoutMs / 4.
   */
  #checkEarlyDemux (): void {
    const off = earlyDemuxOff()
    if (off === this.#steerFirst) return
    this.#steerFirst = off
    this.#log.info({ steerFirst: off }, off
      ? 'migrate: early demux is off here: flows are steered first, with no freeze (one nft transaction a migration)'
      : 'migrate: early demux is on here: flows are frozen while their socket is dumped, then steered')
  }

  #onTick (): void {
    this.#checkEarlyDemux()
    const now = performance.now()
    const limit = this.#timeoutMs
    for (const a of this.#agents.values()) {
      for (const [id, p] of a.pending) {
        if (now - p.t0 < limit) continue
        setImmediate(() => {
          if (a.pending.get(id) !== p) return
          a.pending.delete(id)
          this.#restore(p, `no READY within ${limit} ms`)
        })
      }
      if (a.link?.ready !== true) continue
      if (++a.silentTicks > 8) {
        a.link.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `no answer within ${2 * limit} ms`, { source: 'backend' }))
      } else if (a.silentTicks % 4 === 0) a.link.send(encodePing(++a.pingSeq, performance.now()))
    }
  }

  /** The server is gone and holds no flow: close its link, remove its route, free its mark. */
  #release (a: Agent<C, S>): void {
    clearTimeout(a.retry)
    clearTimeout(a.lostTimer)
    a.link?.close()
    a.link = undefined
    this.#flows?.forget(a.instance)
    if (needsRoute(a.server.target.host)) void removeRoute(a.mark).then(() => { this.#marks.delete(a.mark) })
    else this.#marks.delete(a.mark)
  }
}
