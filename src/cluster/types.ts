// The cluster's view of a real server, as the rest of Baton reads it. Only src/cluster writes these
// fields (see real-server.ts for which part of the code owns which field).
import type { ServerConfig } from '../config/types'
import type { ForwardServer } from '../forward/types'
import type { RealServer } from '../schedulers/types'

export interface ServerState extends RealServer, ForwardServer {
  readonly config: ServerConfig
  /** The service this server belongs to. */
  readonly service: string
  /** The weight the operator set; `weight` is the effective one health derives from it. */
  readonly configWeight: number
  /** False once the server left its service; connections it still has keep counting on it. */
  readonly attached: boolean
  /** Connections bound to it since it joined (ipvsadm's Conns). */
  readonly connections: number
}

/** One row of `ipvsadm -L -n`: a server's state at one moment. */
export interface ServerSnapshot {
  readonly service: string
  readonly id: string
  readonly method: string
  readonly up: boolean
  /** The effective weight (what schedulers use). */
  readonly weight: number
  readonly configWeight: number
  readonly overloaded: boolean
  readonly active: number
  readonly inactive: number
  /** Connections bound to it since it joined this process's cluster (ipvsadm's Conns; a restart starts at 0). */
  readonly connections: number
  /** The service's sorry server (used only while no regular server is up). */
  readonly fallback: boolean
  /** Health's view: up, down, drain or maint (Baton.servers() fills it). */
  readonly state?: 'up' | 'down' | 'drain' | 'maint'
}
