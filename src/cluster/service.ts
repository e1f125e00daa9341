// A service: its real servers in config order, its scheduler, its key and optional persistence
// templates. It tells the scheduler about every change (update() for the set, a weight or up/down;
// changed() for counters and OVERLOAD). Servers come and go while it serves (add / remove / edit, as
// ipvsadm -a / -d / -e): the scheduler object, its locality tables and the persistence templates stay.
import assert from 'node:assert'
import type { KeySpec, ServerConfig, ServiceConfig } from '../config/types'
import { resolveTarget } from '../forward/method'
import type { ForwardTarget } from '../forward/types'
import { getScheduler } from '../schedulers/registry'
import type { PickContext, Scheduler } from '../schedulers/types'
import { PersistenceTable } from './persistence'
import { RealServerState } from './real-server'
import type { ServerState } from './types'

export const MAX_WEIGHT = 65535

export type TargetResolver = (cfg: ServerConfig) => ForwardTarget

export class Service {
  readonly name: string
  #config: ServiceConfig
  #servers: RealServerState[]
  /** The sorry server: not in the scheduler's list; used only while no regular server is up. */
  #fallback: RealServerState | undefined
  #scheduler: Scheduler
  #persistence: PersistenceTable | undefined
  /** Whether the scheduler or persistence reads the request key: otherwise the data path never computes it. */
  #usesKey: boolean
  readonly #now: () => number
  readonly #targetOf: TargetResolver

  constructor (cfg: ServiceConfig, now: () => number, targetOf: TargetResolver) {
    this.name = cfg.name
    this.#config = cfg
    this.#now = now
    this.#targetOf = targetOf
    this.#servers = cfg.servers.map((s, i) => new RealServerState(s, i, cfg.name, targetOf(s)))
    this.#fallback = cfg.fallback === undefined ? undefined : new RealServerState(cfg.fallback, -1, cfg.name, targetOf(cfg.fallback))
    this.#scheduler = this.#createScheduler(cfg)
    this.#persistence = cfg.persistent === undefined ? undefined : new PersistenceTable(cfg.persistent)
    this.#usesKey = getScheduler(cfg.scheduler)?.usesKey ?? false
  }

  get config (): ServiceConfig { return this.#config }
  /** In config order. A new array whenever the set changes (safe to iterate while servers change). */
  get servers (): readonly ServerState[] { return this.#servers }
  get key (): KeySpec { return this.#config.key }
  get fallback (): ServerState | undefined { return this.#fallback }

  /**
   * Hot path, after pick() found nothing: the fallback server, if the service has one, it is up, and no
   * regular server is up (a service that is only busy or drained answers 503 instead).
   */
  pickFallback (avoid: ReadonlySet<string> | undefined): ServerState | null {
    const f = this.#fallback
    if (f === undefined || !f.up || avoid?.has(f.id) === true) return null
    for (const s of this.#servers) if (s.up) return null
    return f
  }

  /** Reload: a new fallback server (or none); the old one is detached and returned. */
  replaceFallback (cfg: ServerConfig | undefined): { removed: ServerState | undefined; added: ServerState | undefined } {
    const old = this.#fallback
    if (old !== undefined) old.attached = false
    this.#fallback = cfg === undefined ? undefined : new RealServerState(cfg, -1, this.name, this.#targetOf(cfg))
    return { removed: old, added: this.#fallback }
  }
  get usesKey (): boolean { return this.#usesKey }

  /** Hot path. A live template wins; otherwise the scheduler, and its answer becomes the template. */
  pick (ctx: PickContext): ServerState | null {
    const p = this.#persistence
    if (p !== undefined) {
      const t = p.lookup(ctx)
      if (t !== null) return t
    }
    const s = this.#scheduler.pick(ctx) as RealServerState | null
    if (s !== null && p !== undefined) p.record(ctx, s)
    return s
  }

  /** A connection now belongs to `server` (handoff sent, relay established): active++, OVERLOAD set rule. */
  bind (server: ServerState): void {
    const s = this.#own(server)
    s.bind()
    if (s.attached) this.#scheduler.changed?.(s)
  }

  /**
   * Forwarding feedback, already coalesced: counter deltas, and how many connections ended (for the
   * OVERLOAD clear rule, evaluated once after the deltas are applied). Counters never go below 0. A server
   * that already left the service still counts its last connections down.
   */
  feedback (server: ServerState, dActive: number, dInactive: number, closed: number): void {
    const s = this.#own(server)
    s.feedback(dActive, dInactive, closed)
    if (s.attached) this.#scheduler.changed?.(s)
  }

  /** All of the server's connections are gone (its process died): counters to 0, OVERLOAD cleared. */
  reset (server: ServerState): void {
    const s = this.#own(server)
    s.reset()
    if (s.attached) this.#scheduler.changed?.(s)
  }

  /**
   * Up/down and the effective weight. Health's verb alone (src/health/state.ts): nothing else writes
   * either field. Programmer error (assert) outside 0..65535.
   */
  applyHealth (server: ServerState, up: boolean, weight: number): void {
    assertWeight(weight)
    const s = this.#own(server)
    if (s.up === up && s.weight === weight) return
    s.up = up
    s.setWeight(weight)
    if (s.attached) this.#scheduler.update?.(this.#servers)
  }

  /** The operator's weight (config, reload, admin). Health turns it into the effective weight. */
  setConfigWeight (server: ServerState, weight: number): void {
    assertWeight(weight)
    this.#own(server).configWeight = weight
  }

  /** ipvsadm -a: appends a server. Its up/down starts as health decides (Cluster's `added` event). */
  add (cfg: ServerConfig): ServerState {
    assert(this.#find(cfg.name) === undefined, `server ${cfg.name} already in service ${this.name}`)
    const s = new RealServerState(cfg, this.#servers.length, this.name, this.#targetOf(cfg))
    this.#servers = [...this.#servers, s]
    this.#scheduler.update?.(this.#servers)
    return s
  }

  /** ipvsadm -d: no new connections; open ones finish and keep counting on the detached state. */
  remove (server: ServerState): void {
    const s = this.#own(server)
    s.attached = false
    this.#servers = this.#servers.filter((x) => x !== s)
    this.#servers.forEach((x, i) => { x.index = i })
    this.#scheduler.update?.(this.#servers)
    this.#persistence?.forget(new Set(this.#servers))
  }

  /** ipvsadm -e: thresholds and the config a server keeps (its target is the same; see Cluster.apply). */
  edit (server: ServerState, cfg: ServerConfig): void {
    const s = this.#own(server)
    s.config = cfg
    s.maxConns = cfg.maxConns
    s.minConns = cfg.minConns
    s.configWeight = cfg.weight
    this.#scheduler.update?.(this.#servers)
  }

  /**
   * Reload: the service's own settings. Servers are edited separately (Cluster.apply). A new scheduler
   * name, options or key rebuilds the scheduler (ipvsadm -E); the same ones keep its tables.
   * New persistence settings drop the templates.
   */
  reconfigure (cfg: ServiceConfig): void {
    const old = this.#config
    this.#config = cfg
    if (old.scheduler !== cfg.scheduler || !sameJson(old.schedulerOptions, cfg.schedulerOptions) || !sameJson(old.key, cfg.key)) {
      this.#scheduler.close?.()
      this.#scheduler = this.#createScheduler(cfg)
      this.#usesKey = getScheduler(cfg.scheduler)?.usesKey ?? false
    }
    if (!sameJson(old.persistent, cfg.persistent)) {
      this.#persistence?.clear()
      this.#persistence = cfg.persistent === undefined ? undefined : new PersistenceTable(cfg.persistent)
    }
  }

  server (name: string): ServerState | undefined { return this.#find(name) }

  /** About once a second: scheduler GC and persistence expiry. */
  tick (now: number): void {
    this.#scheduler.tick?.(now)
    this.#persistence?.expire(now)
  }

  close (): void {
    this.#scheduler.close?.()
    this.#persistence?.clear()
  }

  /** The clock given to the constructor, for callers without a PickContext. */
  now (): number { return this.#now() }

  #createScheduler (cfg: ServiceConfig): Scheduler {
    const factory = getScheduler(cfg.scheduler)
    assert.ok(factory !== undefined, `unknown scheduler ${cfg.scheduler} (config validation should have caught it)`)
    return factory.create(this.#servers, cfg.schedulerOptions)
  }

  #find (name: string): RealServerState | undefined { return this.#servers.find((s) => s.id === name) }

  #own (server: ServerState): RealServerState {
    const s = server as RealServerState
    if (s.service !== this.name || (s.attached && s !== this.#fallback && this.#servers[s.index] !== s)) {
      assert.fail(`server ${server.id} does not belong to service ${this.name}`)
    }
    return s
  }
}

function assertWeight (weight: number): void {
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) assert.fail(`weight ${weight} out of 0..65535`)
}

function sameJson (a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/**
 * Builds a service from its validated config (the scheduler must be registered and schedulerOptions
 * already parsed by its factory). `now` is the monotonic clock in ms; `targetOf` decides how each server
 * is reached (default: forward/method.ts as with the addon loaded, for tests and tools).
 */
export function createService (cfg: ServiceConfig, now: () => number = () => performance.now(),
  targetOf: TargetResolver = (c) => resolveTarget(c, true)): Service {
  return new Service(cfg, now, targetOf)
}
