// Which forwarding method each real server gets, and the handoff channels of the handoff servers.
// The channel state drives the server's `up` flag; its feedback drives the counters (and nothing else does
// for handed-off connections, after the bind at handoff time, which is LVS's bind).
import type { ServerState } from '../cluster/types'
import type { BatonError } from '../errors'
import type { ForwardTarget } from '../forward/types'
import { HandoffChannel } from '../forward/handoff'
import type { Logger } from '../log'
import type { Conn } from './conn'
import type { ServiceEntry } from './services'

export type Method = 'handoff' | 'splice' | 'pipe'

export interface ChannelEvents {
  /** A queued connection was handed off after all. */
  sent (conn: Conn): void
  /** A queued connection came back: the channel failed. */
  unsent (conn: Conn, err: BatonError): void
}

export class Channels {
  readonly #methods = new Map<ServerState, Method>()
  readonly #targets = new Map<ServerState, ForwardTarget>()
  readonly #channels = new Map<ServerState, HandoffChannel<Conn>>()

  /** nativeOk: the addon loaded. Without it, handoff and splice servers are relayed in JavaScript. */
  constructor (services: readonly ServiceEntry[], log: Logger, nativeOk: boolean, events: ChannelEvents) {
    const uids = new Set<number>([0, process.getuid?.() ?? 0])
    for (const entry of services) {
      for (const server of entry.pool.servers) {
        const cfg = server.config
        const method: Method = !nativeOk ? 'pipe' : cfg.forward
        this.#methods.set(server, method)
        this.#targets.set(server, {
          id: server.id,
          host: cfg.address?.host ?? '',
          port: cfg.address?.port ?? 0,
          path: cfg.handoff,
          // A handoff back end reached without the addon reads the client address from a PROXY v2 header.
          proxyProtocol: cfg.handoff !== undefined ? 'v2' : cfg.proxyProtocol,
        })
        if (method !== 'handoff') continue
        const pool = entry.pool
        pool.setUp(server, false)
        const ch = new HandoffChannel<Conn>(cfg.handoff!, {
          up: () => pool.setUp(server, true),
          down: (_err, lost) => {
            pool.setUp(server, false)
            if (lost) pool.reset(server)
          },
          feedback: (dActive, dInactive, closed) => pool.feedback(server, dActive, dInactive, closed),
          sent: (conn) => events.sent(conn),
          unsent: (conn, err) => events.unsent(conn, err),
        }, log.child({ svc: entry.pool.name, backend: server.id }), uids)
        this.#channels.set(server, ch)
      }
    }
  }

  /** Connects every channel now (Unix connects complete at once); failures retry in the background. */
  openAll (): void {
    for (const ch of this.#channels.values()) ch.open()
  }

  methodOf (server: ServerState): Method { return this.#methods.get(server)! }
  targetOf (server: ServerState): ForwardTarget { return this.#targets.get(server)! }
  get (server: ServerState): HandoffChannel<Conn> | undefined { return this.#channels.get(server) }
  usesMethod (m: Method): boolean { for (const v of this.#methods.values()) if (v === m) return true; return false }

  close (): void {
    for (const ch of this.#channels.values()) ch.close()
  }
}
