// The composition root, and the only place that wires parts together: the cluster (services, servers,
// counters), health (the one writer of up and effective weight), the router, the forwarders (one per
// method), the data path, the listeners and the admin API. Config errors were found before this runs
// (src/config/load.ts); start() fails only on resources (a port in use).
//
//   const baton = await startBaton(loadConfigFile('baton.yaml'))
//   baton.setWeight('api', 'api-1', 0)            // drain, as ipvsadm -e -w 0
//   baton.reload(loadConfigFile('baton.yaml'))    // apply a new config as a diff
//   await baton.close()                          // connections already handed off are not affected
import assert from 'node:assert'
import { ConfigReloader, restartOnlyChanges, type ReloadOutcome, type ReloadTrigger } from './admin/reload'
import { stageAdmin, type AdminServer, type StagedAdmin } from './admin/server'
import { collectGarbage, offerTakeover, takeoverPath, takeSockets, type TakenSockets, type TakeoverOffer } from './admin/takeover'
import { Cluster, type ClusterDiff } from './cluster/cluster'
import type { ServerSnapshot, ServerState } from './cluster/types'
import type { Service } from './cluster/service'
import type { Config, ServerConfig } from './config/types'
import type { Conn } from './dispatcher/conn'
import { DataPath, type Routing } from './dispatcher/data-path'
import type { PendingCounts } from './dispatcher/pending'
import { armNativeFd, listenJs, listenNative, wallMs, type ArmedListener, type Listener } from './dispatcher/listeners'
import { waitForQuiet } from './dispatcher/shutdown'
import { BatonError } from './errors'
import { Forwarders } from './forward/forwarders'
import { resolveTarget } from './forward/method'
import { checkMigrateReady, migrateOptionsOf } from './forward/migrate-flows'
import { HealthChecker } from './health/checker'
import { checkSpecOf, policyOf } from './health/policy'
import { HealthState, type AdminState } from './health/state'
import { createLogger, flushLog, type Logger } from './log'
import { native } from './native/binding'
import { Router } from './request/route'
import { encodeRouteTable } from './request/route-table'
import { sheddingTargets } from './cluster/rebalance'

export interface BatonOptions {
  readonly logger?: Logger
  /**
   * Start by taking the listening sockets of the Baton running with the same admin.socket over (see
   * src/admin/takeover.ts) instead of listening. Needs admin.socket and the native addon.
   */
  readonly takeover?: boolean
  /**
   * Each wait for the other process in a takeover (default 10000): as the new process, for the sockets (then
   * start() fails) and, after GO, for the old one to release the admin socket (then it warns and serves
   * meanwhile); as the running process, for GO once it sent its sockets (then it keeps them).
   */
  readonly takeoverTimeoutMs?: number
  /**
   * As the new process of a takeover, holding the sockets: how long to wait for the servers to be up before
   * taking over with some still down (default 5000). Keep it below the running one's takeoverTimeoutMs.
   */
  readonly takeoverServersMs?: number
}

/** BatonOptions' defaults for the waits of a takeover. */
export const TAKEOVER_TIMEOUT_MS = 10_000
export const TAKEOVER_SERVERS_MS = 5000

/** Cluster housekeeping period (LVS's GC timer): locality expiry, persistence templates. */
const TICK_MS = 1000
/** A relayed server whose connect failed gets no new connections for this long (passive check). */
const RELAY_HOLDDOWN_MS = 2000

export class Baton {
  readonly #log: Logger
  readonly #nativeOk: boolean
  readonly #cluster: Cluster
  readonly #health: HealthState
  readonly #checker: HealthChecker
  readonly #forwarders: Forwarders<Conn, ServerState>
  readonly #path: DataPath
  readonly #listeners: Listener[] = []
  readonly #reloader: ConfigReloader
  /** The config listen and admin were bound with (a reload does not rebind them). */
  readonly #bound: Config
  #config: Config
  #admin: AdminServer | undefined
  #tick: NodeJS.Timeout | undefined
  /** Rebalancing: scratch for each tick's targets, and what each server was last asked to shed. */
  readonly #shedScratch = new Map<ServerState, number>()
  readonly #shedSent = new WeakMap<ServerState, number>()
  #started = false
  #closing: Promise<void> | undefined
  readonly #takeover: boolean
  readonly #takeoverTimeoutMs: number
  readonly #takeoverServersMs: number
  #offer: TakeoverOffer | undefined
  /** A takeover's channel to the old process, open until it released the admin socket. */
  #taken: TakenSockets | undefined
  #handedOver: (() => void) | undefined
  /** Resolves once a new process took this one's listening sockets over and this one stopped accepting. */
  readonly handedOver: Promise<void>

  /** Builds every part; nothing listens and no channel connects until start(). */
  constructor (config: Config, options: BatonOptions = {}) {
    const log = options.logger ?? createLogger(config.log.level)
    const nativeOk = native.available
    this.#log = log
    this.#nativeOk = nativeOk
    this.#takeover = options.takeover === true
    this.#takeoverTimeoutMs = options.takeoverTimeoutMs ?? TAKEOVER_TIMEOUT_MS
    this.#takeoverServersMs = options.takeoverServersMs ?? TAKEOVER_SERVERS_MS
    this.handedOver = new Promise((resolve) => { this.#handedOver = resolve })
    this.#config = config
    this.#bound = config
    this.#reloader = new ConfigReloader(config.file, (c) => this.reload(c), log)
    this.#cluster = new Cluster(config.services, (cfg) => resolveTarget(cfg, nativeOk))
    this.#health = new HealthState({ holdDownMs: RELAY_HOLDDOWN_MS }, log)
    this.#checker = new HealthChecker(this.#health, log)
    const { connectTimeoutMs, idleTimeoutMs, channelTimeoutMs, maxHeaderBytes } = config.limits
    const relay = { connectTimeoutMs, idleTimeoutMs, channelTimeoutMs, maxHeaderBytes, ...migrateOptionsOf(config) }
    let forwarders: Forwarders<Conn, ServerState> | undefined
    this.#path = new DataPath(log, this.#cluster, this.#routingFor(config), (sink) => {
      forwarders = new Forwarders({ sink, health: this.#health, log, options: relay })
      return forwarders
    })
    this.#forwarders = forwarders!
    this.#forwarders.setRoutes(routeTableOf(config))
  }

  /** Bound ports, in the order of config.listen (useful with port 0). */
  get ports (): readonly number[] { return this.#listeners.map((l) => l.port) }
  /** True when the native addon is in use (handoff and splice available). */
  get native (): boolean { return this.#nativeOk }
  /** The admin API's address ('host:port' or socket path), when config.admin is set. */
  get admin (): string | undefined { return this.#admin?.address }
  get config (): Config { return this.#config }

  /** Every real server's state, in config order (ipvsadm -L -n, in short), with health's view. */
  servers (): ServerSnapshot[] {
    return this.#cluster.snapshot((s) => ({ state: this.#health.health(s)?.state ?? 'down' }))
  }
  /** Connections the dispatcher owns now (heads arriving, answers draining) and how many were shed. */
  pending (): PendingCounts { return this.#path.pending }

  /** Connects the channels, listens, starts the admin API. On failure everything started is stopped again. */
  async start (): Promise<void> {
    assert(!this.#started, 'Baton.start() called twice')
    this.#started = true
    if (!this.#nativeOk) {
      this.#log.warn({ code: 'BATON_ERR_NATIVE_UNAVAILABLE', err: native.loadError?.message },
        'native addon not loaded: relaying every connection in JavaScript (no handoff, no splice)')
    }
    const socket = this.#config.admin?.socket
    if (this.#takeover && (socket === undefined || !this.#nativeOk)) {
      throw new BatonError('BATON_ERR_NATIVE_CALL', socket === undefined
        ? 'takeover needs admin.socket in the config (the running Baton offers its sockets at <admin.socket>.takeover)'
        : `takeover needs the native addon: ${native.loadError?.message ?? 'not loaded'}`)
    }
    checkMigrateReady(this.#config) // agent: servers without CAP_NET_ADMIN or the flow map: refuse, never degrade
    this.#observeCluster()
    try {
      if (this.#takeover) {
        await this.#takeOver(socket!)
      } else {
        await this.#listen()
        if (this.#config.admin !== undefined) this.#admin = await publishAdmin(await this.#stageAdmin())
        if (socket !== undefined && this.#nativeOk) this.#offerTakeover(socket)
      }
    } catch (err) {
      await this.#teardown()
      throw err
    }
    this.#tick = setInterval(() => { this.#cluster.tick(); this.#rebalance() }, TICK_MS)
    this.#tick.unref()
    this.#reloader.watch(this.#config.watch)
    this.#log.info({ listen: this.#listeners.map((l) => `${l.host}:${l.port}`), native: this.#nativeOk,
      services: this.#config.services.length }, 'baton started')
    flushLog(this.#log) // process managers and scripts wait for this line on a pipe
  }

  /**
   * Applies a new, already validated config as ipvsadm edits would (see Cluster.apply): surviving servers keep
   * counters, channels, locality tables and health; routes and limits switch atomically for the next
   * connection. Connections in flight are not touched. Listen addresses, the admin API, the forwarders'
   * timeouts (connectTimeoutMs, idleTimeoutMs, channelTimeoutMs) and the native peek buffer keep their
   * start-time values.
   */
  reload (config: Config): ClusterDiff {
    const diff = this.#cluster.apply(config)
    this.#path.setRouting(this.#routingFor(config))
    this.#forwarders.setRoutes(routeTableOf(config))
    this.#config = config
    this.#log.info({ ...diff }, 'config applied')
    for (const key of restartOnlyChanges(this.#bound, config)) {
      this.#log.warn({ key }, `config reload: ${key} changed; it takes a restart (kept as at start)`)
    }
    if (this.#started && this.#closing === undefined) this.#reloader.watch(config.watch)
    return diff
  }

  /**
   * Reads, validates and applies the config file this Baton was built from (SIGHUP, the admin API, the file
   * watch). Never throws: a file with issues changes nothing; they are logged and returned.
   */
  reloadFile (trigger: ReloadTrigger = 'api'): ReloadOutcome { return this.#reloader.reload(trigger) }

  /** ipvsadm -a. Throws BATON_ERR_CLUSTER_VERB (unknown service, name in use). */
  addServer (service: string, cfg: ServerConfig): void { this.#cluster.addServer(service, cfg) }
  /** ipvsadm -d: no new connections; open ones finish. */
  removeServer (service: string, name: string): void { this.#cluster.removeServer(service, name) }
  /** ipvsadm -e -w: 0 drains (no new connections; open ones finish). */
  setWeight (service: string, name: string, weight: number): void { this.#cluster.setWeight(service, name, weight) }
  /**
   * The operator's state of a server (or fallback server): up, drain (no new connections; open ones finish) or
   * maint (down, checks paused). Throws BATON_ERR_CLUSTER_VERB for an unknown service, server or state.
   */
  setState (service: string, name: string, state: AdminState): void {
    if (state !== 'up' && state !== 'drain' && state !== 'maint') {
      throw new BatonError('BATON_ERR_CLUSTER_VERB', `state must be up, drain or maint, got ${String(state)}`)
    }
    const svc = this.#cluster.service(service)
    if (svc === undefined) throw new BatonError('BATON_ERR_CLUSTER_VERB', `no service named ${service}`)
    const s = svc.server(name) ?? (svc.fallback?.id === name ? svc.fallback : undefined)
    if (s === undefined) throw new BatonError('BATON_ERR_CLUSTER_VERB', `service ${service} has no server ${name}`)
    this.#health.setAdminState(s, state)
  }

  /**
   * Graceful stop (SIGTERM): stops accepting at once, then waits until every connection already accepted is
   * answered or forwarded (heads still arriving keep their own deadline) and relayed connections end, for at
   * most `timeoutMs` (limits.shutdownTimeoutMs) for the relays; then closes like close(). Handed-off
   * connections belong to their back ends and are never touched.
   */
  shutdown (timeoutMs = this.#config.limits.shutdownTimeoutMs): Promise<void> {
    this.#closing ??= (async () => {
      const stopping = this.#listeners.splice(0).map((l) => l.close())
      this.#offer?.close()
      this.#offer = undefined
      this.#reloader.close()
      this.#log.info({ pending: this.#path.pending, relays: this.#forwarders.active, timeoutMs },
        'shutting down: not accepting; finishing the connections already accepted')
      flushLog(this.#log)
      const left = await waitForQuiet(this.#path, () => this.#forwarders.active, timeoutMs, this.#config.limits)
      if (left.relaysLeft + left.ownedLeft > 0) this.#log.warn({ ...left, timeoutMs }, 'shutdown timeout: closing what is left')
      await this.#teardown()
      await Promise.all(stopping)
      this.#log.info('baton stopped')
      flushLog(this.#log)
    })()
    return this.#closing
  }

  /** Stops listening, closes channels and relays; connections already handed off are not affected. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      await this.#teardown()
      this.#log.info('baton stopped')
      flushLog(this.#log)
    })()
    return this.#closing
  }

  #observeCluster (): void {
    const health = this.#health
    const forwarders = this.#forwarders
    const cluster = this.#cluster
    const checker = this.#checker
    cluster.observe({
      added: (s) => {
        const svc = cluster.service(s.service)!
        health.track(s, svc, forwarders.reportsLiveness(s), policyOf(svc, s))
        forwarders.attach(s)
        this.#startChecks(s)
      },
      removed: (s) => {
        checker.remove(s)
        health.untrack(s)
        forwarders.detach(s)
      },
      changed: (s) => {
        health.refresh(s, policyOf(cluster.service(s.service)!, s))
        this.#startChecks(s)
      },
    })
  }

  /** (Re)starts the server's active checks as its config says; none when it has no `health:`. */
  #startChecks (s: ServerState): void {
    const h = s.config.health
    if (h === undefined) { this.#checker.remove(s); return }
    const fixed = h.address
    this.#checker.add(s, checkSpecOf(h), fixed !== undefined ? () => fixed : () => this.#forwarders.checkAddress(s))
  }

  async #listen (): Promise<void> {
    const { limits } = this.#config
    try {
      for (const addr of this.#config.listen) {
        this.#listeners.push(this.#nativeOk ? listenNative(addr, this.#path, limits) : await listenJs(addr, this.#path))
      }
    } catch (err) {
      if (err instanceof BatonError) throw err
      throw new BatonError('BATON_ERR_NATIVE_CALL', `listen failed: ${(err as Error).message}`, { cause: err })
    }
  }

  /**
   * Receives the running process's sockets, waits (bounded) for the servers to come up, builds everything
   * the first accept and the admin API need, then starts accepting as it sends GO: the old process stops as
   * it reads GO, so the pause between them is one message. The admin API is published, and the takeover
   * socket offered, once the old one released them (BYE); start() does not wait past takeoverTimeoutMs.
   */
  async #takeOver (socket: string): Promise<void> {
    const { limits } = this.#config
    const timeoutMs = this.#takeoverTimeoutMs
    const taken = await takeSockets(takeoverPath(socket), timeoutMs)
    this.#taken = taken
    this.#log.info({ sockets: taken.sockets.length }, 'takeover: received the listening sockets; getting ready')
    flushLog(this.#log)
    const armed: ArmedListener[] = []
    let admin: StagedAdmin | undefined
    try {
      await this.#serversUp(this.#takeoverServersMs)
      for (const [i, s] of taken.sockets.entries()) {
        try {
          armed.push(armNativeFd(s.fd, { host: s.host, port: s.port }, this.#path, limits)) // closes s.fd if it throws
        } catch (err) {
          for (const rest of taken.sockets.slice(i + 1)) native.close(rest.fd)
          throw err
        }
      }
      if (this.#config.admin !== undefined) admin = await this.#stageAdmin()
      collectGarbage() // while the old process still accepts, not right after GO
      taken.go()
    } catch (err) {
      taken.abandon()
      admin?.abort()
      await Promise.all(armed.map((l) => l.close()))
      throw err
    }
    for (const l of armed) l.start()
    const acceptingAt = wallMs()
    this.#listeners.push(...armed)
    this.#log.info({ listen: this.#listeners.map((l) => `${l.host}:${l.port}`), acceptingAt }, 'takeover: accepting on the sockets taken over')
    this.#logFirstAccept(Date.now() + timeoutMs)
    const released = taken.released(timeoutMs, () => {
      this.#log.warn({ code: 'BATON_ERR_TAKEOVER', timeoutMs },
        'takeover: the old process has not released the admin socket yet; accepting meanwhile, admin API once it does')
      flushLog(this.#log)
    }).then(() => this.#afterRelease(socket, admin, acceptingAt))
    await Promise.race([released, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())])
  }

  /** The old process let the admin socket go: publish ours and offer the sockets to the next takeover. */
  async #afterRelease (socket: string, admin: StagedAdmin | undefined, acceptingAt: number): Promise<void> {
    this.#taken = undefined
    if (this.#closing !== undefined) { admin?.abort(); return }
    this.#log.info({ releasedMs: +(wallMs() - acceptingAt).toFixed(3) }, 'takeover: the old process stopped accepting and released the admin socket')
    try {
      if (admin !== undefined) this.#admin = await publishAdmin(admin)
    } catch (err) {
      this.#log.error({ code: 'BATON_ERR_ADMIN_LISTEN', err: (err as Error).message }, 'admin API not started after the takeover')
    }
    if (this.#closing === undefined) this.#offerTakeover(socket)
    flushLog(this.#log)
  }

  /** Resolves once no server is down, or after timeoutMs (logs which are still down). */
  async #serversUp (timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs
    const down = (): string[] => this.servers().filter((s) => s.state === 'down').map((s) => `${s.service}/${s.id}`)
    while (down().length > 0) {
      if (Date.now() >= until) {
        this.#log.warn({ down: down(), timeoutMs }, 'takeover: servers still down after --takeover-servers-timeout; taking over anyway')
        flushLog(this.#log)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** Logs this process's first accept after a takeover (for the accept pause: old lastAcceptAt to this). */
  #logFirstAccept (until: number): void {
    let first: Listener | undefined
    for (const l of this.#listeners) if ((l.firstAcceptAt ?? NaN) < (first?.firstAcceptAt ?? Infinity)) first = l
    if (first !== undefined) {
      this.#log.info({ firstAcceptAt: first.firstAcceptAt, clientPort: first.firstAcceptPort }, 'takeover: first accept')
      flushLog(this.#log)
      return
    }
    if (Date.now() > until || this.#closing !== undefined) return
    setTimeout(() => { this.#logFirstAccept(until) }, 10).unref()
  }

  /** Offers this process's listening sockets at <admin.socket>.takeover (native listeners only); never throws. */
  #offerTakeover (socket: string): void {
    const path = takeoverPath(socket)
    try {
      this.#offer = offerTakeover(path, () => this.#listeners.map((l) => ({ fd: l.fd!, host: l.host, port: l.port })),
        (finish) => { void this.#handOver(finish) }, this.#takeoverTimeoutMs, this.#log)
    } catch (err) {
      // Not fatal: the switch works as before, only a later `--takeover` will not find it.
      this.#log.warn({ code: 'BATON_ERR_ADMIN_LISTEN', path, err: (err as Error).message },
        'takeover socket not offered: a restart with --takeover will not find this process')
    }
  }

  /**
   * A new process accepts on our sockets: stop accepting now, release the takeover and admin sockets (both
   * are free when close() returns), say BYE so it publishes its own, then let the in-flight work finish.
   */
  async #handOver (finish: () => void): Promise<void> {
    const listeners = this.#listeners.splice(0)
    const closing = listeners.map((l) => l.close()) // the acceptors stop synchronously
    const stoppedAt = wallMs()
    this.#offer?.close()
    this.#offer = undefined
    const admin = this.#admin?.close()
    this.#admin = undefined
    finish()
    await Promise.all([...closing, admin])
    const lastAcceptAt = Math.max(...listeners.map((l) => l.lastAcceptAt ?? NaN).filter((t) => !Number.isNaN(t)), 0)
    this.#log.info({ lastAcceptAt, stoppedAt }, 'takeover: handed the listening sockets over; finishing in-flight work')
    flushLog(this.#log)
    this.#handedOver?.()
  }

  /** The admin API built (on a socket: listening under its staging name); publish() makes it reachable. */
  async #stageAdmin (): Promise<StagedAdmin> {
    try {
      return await stageAdmin(this.#config.admin!, {
        servers: () => this.servers(),
        outcomes: () => this.#path.outcomes,
        pending: () => this.#path.pending,
        stateChanges: () => this.#health.changes,
        reloads: () => this.#reloader.counts,
        relayBytes: () => this.#path.relayBytes,
        dispatchTimes: () => this.#path.dispatchTimes,
        moves: () => this.#path.moves,
        backendTimes: () => this.#forwarders.requestTimes(),
        migrateTimes: () => this.#forwarders.migrateTimes(),
      }, this.#log, this)
    } catch (err) {
      throw new BatonError('BATON_ERR_ADMIN_LISTEN', `admin API: ${(err as Error).message}`, { cause: err })
    }
  }

  /** Stops everything started so far, in the reverse order of start-up; failed starts and close() alike. */
  async #teardown (): Promise<void> {
    clearInterval(this.#tick)
    this.#reloader.close()
    this.#taken?.abandon()
    this.#taken = undefined
    this.#offer?.close()
    this.#offer = undefined
    await this.#admin?.close()
    await Promise.all(this.#listeners.map((l) => l.close()))
    this.#path.close()
    this.#checker.close()
    this.#health.close()
    await this.#forwarders.close()
    this.#cluster.close()
  }

  /**
   * Once a tick: servers of a `keepAlive: reroute` service that hold more than their share of its open
   * connections are asked to let the excess move at their next request (cluster/rebalance.ts); handoff back
   * ends over their channel (sent when the number changes, or while it is not 0), relays by the data path.
   */
  #rebalance (): void {
    const targets = this.#shedScratch
    for (const svc of this.#cluster.services) {
      if (svc.config.keepAlive === 'reroute') sheddingTargets(svc.servers, targets, svc.usesKey || svc.config.persistent !== undefined)
    }
    for (const [server, n] of targets) {
      if (n === 0 && (this.#shedSent.get(server) ?? 0) === 0) continue
      this.#shedSent.set(server, n)
      if (!this.#forwarders.rebalance(server, n)) this.#path.setShedding(server, n)
    }
    targets.clear()
  }

  #routingFor (config: Config): Routing {
    const cluster = this.#cluster
    return { router: new Router<Service>(config.routes, (name) => cluster.service(name)!), limits: config.limits }
  }
}

/** The routes back ends check later requests against (ROUTES). */
function routeTableOf (config: Config): string {
  const { moveIntervalMs, maxHeaderBytes } = config.limits
  return encodeRouteTable({ routes: config.routes, moveIntervalMs, maxHeaderBytes })
}

/** Makes a staged admin API reachable; a failure is BATON_ERR_ADMIN_LISTEN (and nothing is left listening). */
async function publishAdmin (staged: StagedAdmin): Promise<AdminServer> {
  try {
    return await staged.publish()
  } catch (err) {
    throw new BatonError('BATON_ERR_ADMIN_LISTEN', `admin API: ${(err as Error).message}`, { cause: err })
  }
}

/** Builds and starts a Baton: the one-call form of `new Baton(config, options).start()`. */
export async function startBaton (config: Config, options: BatonOptions = {}): Promise<Baton> {
  const baton = new Baton(config, options)
  await baton.start()
  return baton
}
