// One real server's live state: weight, up/down, the LVS counters and the OVERLOAD flag with the
// kernel's threshold rule (ip_vs_conn.c ip_vs_bind_dest / ip_vs_unbind_dest). Only cluster code
// mutates it; schedulers read it through the RealServer view, forwarders through ForwardServer.
// Writers, one per field: `up` and `weight` (the effective weight) are health's (health/state.ts, through
// Service.applyHealth); `configWeight` is the operator's (config, reload, admin: Cluster verbs); the
// counters and `overloaded` are the data path's (Service.bind / feedback / reset).
import type { ServerConfig } from '../config/types'
import type { ForwardTarget } from '../forward/types'
import type { ServerState } from './types'

export class RealServerState implements ServerState {
  readonly id: string
  /** Position in the service's list; renumbered when a server before it leaves. */
  index: number
  readonly host: string
  readonly port: number
  config: ServerConfig
  readonly service: string
  readonly target: ForwardTarget
  maxConns: number
  minConns: number
  /** The effective weight schedulers use: health's to write. */
  weight: number
  lastWeight: number
  /** The weight the operator set (config, reload, admin); health derives `weight` from it. */
  configWeight: number
  up = true
  overloaded = false
  /** False once the server left its service (reload, admin remove); its open connections still count here. */
  attached = true
  readonly conns = { active: 0, inactive: 0 }
  /** Connections bound to it since it joined (ipvsadm's Conns): the data path's, one increment per bind. */
  connections = 0

  /** host:port from cfg.address, or host = the handoff socket path and port 0 (what mh hashes). */
  constructor (cfg: ServerConfig, index: number, service: string, target: ForwardTarget) {
    this.id = cfg.name
    this.index = index
    this.config = cfg
    this.service = service
    this.target = target
    this.host = cfg.address?.host ?? cfg.handoff ?? ''
    this.port = cfg.address?.port ?? 0
    this.weight = cfg.weight
    this.configWeight = cfg.weight
    this.lastWeight = cfg.weight                // the kernel: last_weight = weight when added non-zero
    this.maxConns = cfg.maxConns
    this.minConns = cfg.minConns
  }

  get total (): number {
    return this.conns.active + this.conns.inactive
  }

  /** A new connection: active++, then OVERLOAD is set once active + inactive reaches maxConns. */
  bind (): void {
    this.connections++
    this.conns.active++
    if (this.maxConns !== 0 && this.total >= this.maxConns) this.overloaded = true
  }

  /**
   * Counter deltas (clamped at 0); if any connection ended, the unbind clear rule once:
   * minConns set: clear below minConns; else maxConns set: clear when total * 4 < maxConns * 3 (below
   * 75%); else clear.
   */
  feedback (dActive: number, dInactive: number, closed: number): void {
    this.conns.active = Math.max(0, this.conns.active + dActive)
    this.conns.inactive = Math.max(0, this.conns.inactive + dInactive)
    if (closed > 0 && this.overloaded) this.overloaded = !this.#mayClear()
  }

  /** The process died with all its connections. */
  reset (): void {
    this.conns.active = 0
    this.conns.inactive = 0
    this.overloaded = false
  }

  /** The effective weight, 0..65535; a non-zero weight is remembered as lastWeight (mh). */
  setWeight (weight: number): void {
    this.weight = weight
    if (weight !== 0) this.lastWeight = weight
  }

  #mayClear (): boolean {
    const total = this.total
    if (this.minConns !== 0) return total < this.minConns
    if (this.maxConns !== 0) return total * 4 < this.maxConns * 3
    return true
  }
}
