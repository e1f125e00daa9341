// What the dispatcher needs from a service pool. src/cluster/service.ts implements it.
import type { ServerConfig, ServiceConfig } from '../config/types'
import type { PickContext, RealServer } from '../schedulers/types'

export interface ServerState extends RealServer {
  readonly config: ServerConfig
  /** The service this server belongs to. */
  readonly service: string
}

export interface ServicePool {
  readonly name: string
  readonly config: ServiceConfig
  /** In config order. */
  readonly servers: readonly ServerState[]
  /** Persistence template first (ipvsadm -p), then the scheduler. Never throws; null = 503. */
  pick (ctx: PickContext): ServerState | null
  /** A connection now belongs to `server` (handoff sent, relay established): active++, OVERLOAD set rule. */
  bind (server: ServerState): void
  /**
   * Forwarding feedback, already coalesced: counter deltas, and how many connections ended (for the
   * OVERLOAD clear rule, evaluated once after the deltas are applied). Counters never go below 0.
   */
  feedback (server: ServerState, dActive: number, dInactive: number, closed: number): void
  /** All of the server's connections are gone (its process died): counters to 0, OVERLOAD cleared. */
  reset (server: ServerState): void
  /** Health/channel state; the scheduler's update() runs on a change. */
  setUp (server: ServerState, up: boolean): void
  setWeight (server: ServerState, weight: number): void
  /** About once a second: scheduler GC and persistence expiry. */
  tick (now: number): void
  close (): void
}
