// A service: its real servers in config order, its scheduler and optional persistence templates. This
// is the only writer of the servers' counters, flags and weights, and it tells the scheduler about
// every change (update() for set/weight/up, changed() for counters and OVERLOAD).
import assert from 'node:assert'
import type { ServiceConfig } from '../config/types'
import { getScheduler } from '../schedulers/registry'
import type { PickContext, Scheduler } from '../schedulers/types'
import { PersistenceTable } from './persistence'
import { RealServerState } from './real-server'
import type { ServerState, ServicePool } from './types'

export const MAX_WEIGHT = 65535

class Service implements ServicePool {
  readonly name: string
  readonly config: ServiceConfig
  readonly servers: readonly RealServerState[]
  readonly #scheduler: Scheduler
  readonly #persistence: PersistenceTable | undefined
  readonly #now: () => number

  constructor (cfg: ServiceConfig, now: () => number) {
    const factory = getScheduler(cfg.scheduler)
    assert.ok(factory !== undefined, `unknown scheduler ${cfg.scheduler} (config validation should have caught it)`)
    this.name = cfg.name
    this.config = cfg
    this.#now = now
    this.servers = cfg.servers.map((s, i) => new RealServerState(s, i, cfg.name))
    this.#scheduler = factory.create(this.servers, cfg.schedulerOptions)
    this.#persistence = cfg.persistent === undefined ? undefined : new PersistenceTable(cfg.persistent)
  }

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

  bind (server: ServerState): void {
    const s = this.#own(server)
    s.bind()
    this.#scheduler.changed?.(s)
  }

  feedback (server: ServerState, dActive: number, dInactive: number, closed: number): void {
    const s = this.#own(server)
    s.feedback(dActive, dInactive, closed)
    this.#scheduler.changed?.(s)
  }

  reset (server: ServerState): void {
    const s = this.#own(server)
    s.reset()
    this.#scheduler.changed?.(s)
  }

  setUp (server: ServerState, up: boolean): void {
    const s = this.#own(server)
    if (s.up === up) return
    s.up = up
    this.#scheduler.update?.(this.servers)
  }

  /** Programmer error (assert) outside 0..65535: config and admin code validate first. */
  setWeight (server: ServerState, weight: number): void {
    if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) assert.fail(`weight ${weight} out of 0..65535`)
    const s = this.#own(server)
    if (s.weight === weight) return
    s.setWeight(weight)
    this.#scheduler.update?.(this.servers)
  }

  tick (now: number): void {
    this.#scheduler.tick?.(now)
    this.#persistence?.expire(now)
  }

  close (): void {
    this.#scheduler.close?.()
    this.#persistence?.clear()
  }

  /** The clock given to createService(), for callers without a PickContext. */
  now (): number {
    return this.#now()
  }

  #own (server: ServerState): RealServerState {
    const s = this.servers[server.index]
    if (s !== server) assert.fail(`server ${server.id} does not belong to service ${this.name}`)
    return s
  }
}

/**
 * Builds a service from its validated config (the scheduler must be registered and schedulerOptions
 * already parsed by its factory). `now` is the monotonic clock in ms (default performance.now), for
 * housekeeping that has no PickContext.
 */
export function createService (cfg: ServiceConfig, now: () => number = () => performance.now()): ServicePool {
  return new Service(cfg, now)
}
