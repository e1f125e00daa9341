// The forwarders in use, one per method, and the binding of each real server to its method's forwarder
// (as IPVS binds one packet_xmit per destination). The data path calls forward() and never asks which
// method a server uses. A method's forwarder is created when its first server attaches (the splice relay
// starts its thread only then).
import type { Logger } from '../log'
import type { CheckAddress } from '../protocol/handoff'
import { HandoffForwarder } from './handoff'
import { MigrateForwarder } from './migrate'
import { createPipeForwarder } from './pipe'
import { createSpliceForwarder } from './splice'
import type { ForwardConn, Forwarder, ForwarderOptions, ForwardMethod, ForwardServer, ForwardSink, HealthInput, RequestTimes } from './types'

export interface ForwardParts<C extends ForwardConn<S>, S extends ForwardServer> {
  readonly sink: ForwardSink<C, S>
  readonly health: HealthInput<S>
  readonly log: Logger
  readonly options: ForwarderOptions
}

type Factory = <C extends ForwardConn<S>, S extends ForwardServer>(parts: ForwardParts<C, S>) => Forwarder<C, S>

const FACTORIES: Readonly<Record<ForwardMethod, Factory>> = {
  handoff: (p) => new HandoffForwarder(p.sink, p.health, p.options, p.log),
  splice: (p) => createSpliceForwarder(p.sink, p.health, p.options, p.log),
  pipe: (p) => createPipeForwarder(p.sink, p.health, p.options, p.log),
  migrate: (p) => new MigrateForwarder(p.sink, p.health, p.options.migrate, p.log),
}

export class Forwarders<C extends ForwardConn<S>, S extends ForwardServer> {
  readonly #parts: ForwardParts<C, S>
  readonly #byMethod = new Map<ForwardMethod, Forwarder<C, S>>()
  #routes: string | undefined

  constructor (parts: ForwardParts<C, S>) {
    this.#parts = parts
  }

  /** Whether the server is down until its forwarder reports it up (health asks once, at track time). */
  reportsLiveness (server: S): boolean {
    return this.#of(server).reportsLiveness
  }

  attach (server: S): void { this.#of(server).attach(server) }
  detach (server: S): void { this.#byMethod.get(server.target.method)?.detach(server) }

  /** Where active checks reach the server; for handoff, what the back end said ('pending': not yet; see handoff.ts). */
  checkAddress (server: S): CheckAddress | 'pending' | undefined { return this.#of(server).checkAddress(server) }

  /** Hot path: one Map lookup, then the method's forward(). */
  forward (conn: C): void {
    this.#byMethod.get(conn.server!.target.method)!.forward(conn)
  }

  /** Relayed connections open now, over every method. */
  get active (): number {
    let n = 0
    for (const f of this.#byMethod.values()) n += f.active
    return n
  }

  /** The routes later requests are checked against (request/route-table.ts JSON): to every forwarder that checks. */
  setRoutes (json: string): void {
    this.#routes = json
    for (const f of this.#byMethod.values()) f.setRoutes?.(json)
  }

  /** Asks the server to shed `count` kept-alive connections at their next request; false when its method cannot. */
  rebalance (server: S, count: number): boolean {
    const f = this.#byMethod.get(server.target.method)
    if (f?.rebalance === undefined) return false
    f.rebalance(server, count)
    return true
  }

  /** Request times back ends reported, keyed `service\0server`, over every method that has them. */
  requestTimes (): ReadonlyMap<string, RequestTimes> {
    const all = new Map<string, RequestTimes>()
    for (const f of this.#byMethod.values()) for (const [k, t] of f.requestTimes ?? []) all.set(k, t)
    return all
  }

  /** Migration times, keyed `service\0server\0phase`, over every method that has them. */
  migrateTimes (): ReadonlyMap<string, RequestTimes> {
    const all = new Map<string, RequestTimes>()
    for (const f of this.#byMethod.values()) for (const [k, t] of f.migrateTimes ?? []) all.set(k, t)
    return all
  }


  async close (): Promise<void> {
    await Promise.all([...this.#byMethod.values()].map((f) => f.close()))
  }

  #of (server: S): Forwarder<C, S> {
    const method = server.target.method
    let f = this.#byMethod.get(method)
    if (f === undefined) {
      f = FACTORIES[method](this.#parts)
      this.#byMethod.set(method, f)
      if (this.#routes !== undefined) f.setRoutes?.(this.#routes)
    }
    return f
  }
}
