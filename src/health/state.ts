// The one writer of a real server's `up` flag and effective weight (through Service.applyHealth). Every
// signal about a server's health reports here, and only this file decides:
//
//   channel liveness  (handoff: forwarders report their channel up or down)  decides a channel server;
//   connect failures  (relays: a passive check, as HAProxy's observe layer4) hold a relayed server down
//                     for holdDownMs, then it takes new connections again;
//   the operator's weight (Cluster verbs) is the effective weight while the server is up.
//
// Who may flip what: a channel server goes up only when its channel says so, and a connect failure does
// not take it down (its channel is the stronger signal); a relayed server has no channel, so only a
// hold-down and its expiry move it. Reports about servers that left the cluster are ignored.
// Active checks, drain/maint and back-end reports (later) are more inputs to the same record.
import type { ServerState } from '../cluster/types'
import type { Service } from '../cluster/service'
import type { BatonError } from '../errors'
import type { HealthInput } from '../forward/types'
import type { Logger } from '../log'

export interface HealthOptions {
  /** How long a relayed server whose connect failed gets no new connections. */
  readonly holdDownMs: number
}

interface Record {
  readonly server: ServerState
  readonly service: Service
  /** Liveness comes from a channel: undefined for servers without one. */
  channelUp: boolean | undefined
  heldDown: NodeJS.Timeout | undefined
}

export type HealthCause = 'channel-up' | 'channel-down' | 'connect-failed' | 'hold-down-over' | 'weight'

export class HealthState implements HealthInput<ServerState> {
  readonly #records = new Map<ServerState, Record>()
  readonly #opts: HealthOptions
  readonly #log: Logger

  constructor (opts: HealthOptions, log: Logger) {
    this.#opts = opts
    this.#log = log
  }

  /** A server joined. `hasChannel`: it is down until its channel reports up. */
  track (server: ServerState, service: Service, hasChannel: boolean): void {
    const rec: Record = { server, service, channelUp: hasChannel ? false : undefined, heldDown: undefined }
    this.#records.set(server, rec)
    this.#apply(rec, undefined)
  }

  /** A server left: its timers stop and later reports about it are ignored. */
  untrack (server: ServerState): void {
    const rec = this.#records.get(server)
    if (rec === undefined) return
    clearTimeout(rec.heldDown)
    this.#records.delete(server)
  }

  /** The operator's weight changed: recompute the effective weight. */
  refresh (server: ServerState): void {
    const rec = this.#records.get(server)
    if (rec !== undefined) this.#apply(rec, 'weight')
  }

  channel (server: ServerState, up: boolean, why: string): void {
    const rec = this.#records.get(server)
    if (rec === undefined || rec.channelUp === undefined || rec.channelUp === up) return
    rec.channelUp = up
    this.#apply(rec, up ? 'channel-up' : 'channel-down', why)
  }

  connectFailed (server: ServerState, err: BatonError): void {
    const rec = this.#records.get(server)
    if (rec === undefined || rec.channelUp !== undefined || rec.heldDown !== undefined) return
    rec.heldDown = setTimeout(() => {
      rec.heldDown = undefined
      if (this.#records.get(server) === rec) this.#apply(rec, 'hold-down-over')
    }, this.#opts.holdDownMs)
    rec.heldDown.unref()
    this.#apply(rec, 'connect-failed', err.message)
  }

  /** Whether health lets the server take new connections (tests, admin). */
  isUp (server: ServerState): boolean {
    const rec = this.#records.get(server)
    return rec !== undefined && isUp(rec)
  }

  close (): void {
    for (const rec of this.#records.values()) clearTimeout(rec.heldDown)
    this.#records.clear()
  }

  #apply (rec: Record, cause: HealthCause | undefined, why?: string): void {
    const s = rec.server
    const up = isUp(rec)
    const wasUp = s.up
    rec.service.applyHealth(s, up, s.configWeight)
    if (cause !== undefined && up !== wasUp) {
      this.#log.info({ svc: s.service, backend: s.id, up, cause, ...(why !== undefined && { why }) },
        up ? 'real server up' : 'real server down')
    }
  }
}

function isUp (rec: Record): boolean {
  return rec.channelUp !== false && rec.heldDown === undefined
}
