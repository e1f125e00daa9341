// Forwarding method `migrate` (another host): the live TCP connection moves to the real server's host,
// whose `baton agent` restores it on the VIP and hands it to its local back end; responses go from there
// straight to the client (research/tcp-repair-migration.md; the sequence and its faults: docs/migrate-forward.md):
//
//   MIGRATE's head -> moveOut (one addon call: freeze, dump into the frame, close, steer; with early demux
//   off: steer, dump) -> MIGRATE written (the dispatcher's part ends) ... READY -> handedOff
//
// The flow is steered before the agent has the socket; `baton host realserver`'s table drops what reaches
// that host early, so the agent needs no GO. From the dump on, the client lives only in the frame: on a
// refusal, a timeout or a lost control connection the dispatcher restores the socket itself from it, takes
// the flow back and returns the fd to the data path as a retryable failure; it never hangs. The agent
// refuses a MIGRATE past its deadline (half the timeout, agent/clock.ts), so a connection given up here is
// never also live there. Per agent server: migrate-agents.ts; flow elements: migrate-flows.ts; timings:
// migrate-times.ts.
import { performance } from 'node:perf_hooks'
import type { MigrateConfig } from '../config/types'
import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import type { MoveOutResult } from '../native/types'
import { encodeMigratePrefix, stampMigratePrefix } from '../protocol/migrate-control'
import { AgentServer } from './migrate-agents'
import { FlowTable, openFlowMap } from './migrate-flows'
import { earlyDemuxOff, MAX_MARK } from './migrate-route'
import { MigrateTimes, type StepClock } from './migrate-times'
import type { ForwardConn, Forwarder, ForwardServer, ForwardSink, HealthInput, RequestTimes } from './types'

/** What the migrate forwarder needs beyond ForwarderOptions: the config's `migrate:` and the VIPs (listen hosts). */
export interface MigrateOptions extends MigrateConfig { readonly vips: readonly string[] }

/** MIGRATE prefixes kept (one per service and route); more are dropped and built again. */
const MAX_PREFIXES = 1024

/**
 * A migration in flight: the MIGRATE frame (the dumped state from stateAt on: what #restore restores if the
 * connection comes back) and the times of the dispatcher's steps.
 */
interface Pending<C> extends StepClock { readonly conn: C; readonly frame: Buffer; readonly stateAt: number }

type Agent<C, S extends ForwardServer> = AgentServer<S, Pending<C>>

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
  readonly #times = new MigrateTimes()
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
  get migrateTimes (): ReadonlyMap<string, RequestTimes> { return this.#times.byKey }

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
    this.#agents.set(server, new AgentServer<S, Pending<C>>(server, mark, { secret: opts!.secret, timeoutMs: this.#timeoutMs, vips: opts!.vips }, {
      ready: (a, id, ok, reason) => { this.#onReady(a, id, ok, reason) },
      closed: (a, ids) => { this.#onFlowsClosed(a, ids) },
      down: (a, err) => {
        for (const [id, p] of a.pending) { a.pending.delete(id); this.#restore(p, `control connection lost: ${err.message}`) }
      },
      lost: (a, why) => { this.#agentLost(a, why) },
      flows: (instance) => this.#flows?.count(instance) ?? 0,
      released: (a) => { this.#flows?.forget(a.instance) },
      markFree: (m) => { this.#marks.delete(m) },
    }, this.#health, this.#log))
  }

  /**
   * The server left: no new migrations. Its flows keep their steering until they end (CLOSED) or their
   * elements expire; the link, route and mark go when none is left.
   */
  detach (server: S): void {
    const a = this.#agents.get(server)
    if (a === undefined) return
    this.#agents.delete(server)
    a.detach()
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
    this.#times.record(conn.service, conn.server!.id, 'dispatcher', p.sentAt - t0)
  }

  /** The MIGRATE prefix of a service and route, to stamp (built once; the addon copies it). */
  #prefixOf (service: string, route: string): Buffer {
    let byRoute = this.#prefixes.get(service) // two lookups, no key string built per connection
    const prefix = byRoute?.get(route)
    if (prefix !== undefined) return prefix
    if (this.#prefixCount >= MAX_PREFIXES) { this.#prefixes.clear(); this.#prefixCount = 0; byRoute = undefined }
    if (byRoute === undefined) this.#prefixes.set(service, byRoute = new Map())
    const made = encodeMigratePrefix({ id: 0, sentAt: 0, deadline: 0, service, route })
    byRoute.set(route, made)
    this.#prefixCount++
    return made
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#tick)
    for (const a of this.#agents.values()) a.stop()
    this.#agents.clear()
    this.#flows?.close()
    this.#flows = undefined
  }

  #refuse (conn: C, why: string): void {
    this.#sink.failed(conn, new BatonError('BATON_ERR_MIGRATE_FAILED', `migrate to ${conn.server!.id}: ${why}`,
      { source: 'backend', retryable: true }))
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
    this.#times.record(conn.service, a.server.id, 'ready', end - p.t0)
    this.#flows!.track(a.instance, id, { address: conn.clientAddress, port: conn.clientPort, mark: a.mark })
    this.#times.publish(id, p, end)
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug({ conn: id, svc: conn.service, backend: a.server.id, durMs: end - p.t0, localUs: (p.sentAt - p.t0) * 1000,
        agentUs: (end - p.sentAt) * 1000 }, 'migrated')
    }
    this.#sink.handedOff(conn)
  }

  #onFlowsClosed (a: Agent<C, S>, ids: readonly number[]): void {
    const n = this.#flows?.closed(a.instance, ids) ?? 0
    if (n > 0) this.#sink.feedback(a.server, -n, 0, n)
    if (a.detached && this.#flows?.count(a.instance) === 0) a.release()
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

  /**
   * Every timeoutMs / 4: the early demux setting; migrations past timeoutMs are restored here, after this
   * turn's I/O (a READY already received must win over the timer); each agent's PING and silence.
   */
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
      a.tick()
    }
  }
}
