// The cluster: services by name, and the ipvsadm verbs that change them while Baton serves (add, edit
// and remove a real server, set a weight, apply a whole new config as a diff). Reload, the admin API and
// health go through here. Observers (health, forwarders: wired by baton.ts) hear about every server that
// joins, leaves or changes, so a server's channel and health state live exactly as long as it does.
//
// apply(config) keeps what survives, as ipvsadm edits would: a server with the same service, name and
// target keeps its counters, channel, health state and the scheduler's memory of it (locality tables,
// persistence templates); a server whose target changed is removed and added again.
import assert from 'node:assert'
import type { Config, ServerConfig, ServiceConfig } from '../config/types'
import { BatonError } from '../errors'
import { sameTarget } from '../forward/method'
import { createService, type Service, type TargetResolver } from './service'
import type { ServerSnapshot, ServerState } from './types'

export interface ClusterObserver {
  /** A server joined (start, reload, admin add). */
  added (server: ServerState): void
  /** A server left: no new connections; connections it has are not touched. */
  removed (server: ServerState): void
  /** The operator changed its weight or thresholds. */
  changed (server: ServerState): void
}

export interface ClusterDiff {
  readonly added: readonly string[]
  readonly removed: readonly string[]
  readonly changed: readonly string[]
}

export class Cluster {
  readonly #services = new Map<string, Service>()
  readonly #targetOf: TargetResolver
  readonly #now: () => number
  #observer: ClusterObserver | undefined

  constructor (services: readonly ServiceConfig[], targetOf: TargetResolver, now: () => number = () => performance.now()) {
    this.#targetOf = targetOf
    this.#now = now
    for (const cfg of services) this.#services.set(cfg.name, createService(cfg, now, targetOf))
  }

  /** Sets the observer and reports every current server to it as added. */
  observe (observer: ClusterObserver): void {
    assert(this.#observer === undefined, 'the cluster has one observer')
    this.#observer = observer
    for (const svc of this.#services.values()) for (const s of membersOf(svc)) observer.added(s)
  }

  service (name: string): Service | undefined { return this.#services.get(name) }
  get services (): Iterable<Service> { return this.#services.values() }

  /** Every server's state, in config order (ipvsadm -L -n). */
  snapshot (extra?: (s: ServerState) => Partial<ServerSnapshot>): ServerSnapshot[] {
    const rows: ServerSnapshot[] = []
    for (const svc of this.#services.values()) {
      for (const s of membersOf(svc)) {
        rows.push({
          service: svc.name, id: s.id, method: s.target.method, up: s.up, weight: s.weight,
          configWeight: s.configWeight, overloaded: s.overloaded, active: s.conns.active, inactive: s.conns.inactive,
          connections: s.connections, fallback: s === svc.fallback, ...extra?.(s),
        })
      }
    }
    return rows
  }

  /** ipvsadm -a. Throws BATON_ERR_CLUSTER_VERB for an unknown service or a name in use. */
  addServer (service: string, cfg: ServerConfig): ServerState {
    const svc = this.#need(service)
    if (svc.server(cfg.name) !== undefined) throw verbError(`service ${service} already has a server ${cfg.name}`)
    const s = svc.add(cfg)
    this.#observer?.added(s)
    return s
  }

  /** ipvsadm -d: the server takes no new connections; its open ones finish. */
  removeServer (service: string, name: string): void {
    const svc = this.#need(service)
    const s = this.#needServer(svc, name)
    svc.remove(s)
    this.#observer?.removed(s)
  }

  /** ipvsadm -e -w: the operator's weight, 0..65535 (0 = drain: no new connections). */
  setWeight (service: string, name: string, weight: number): void {
    if (!Number.isInteger(weight) || weight < 0 || weight > 65535) throw verbError(`weight must be an integer 0..65535, got ${weight}`)
    const svc = this.#need(service)
    const s = this.#needServer(svc, name)
    svc.setConfigWeight(s, weight)
    this.#observer?.changed(s)
  }

  /** Reload: services and servers as in `config`, keeping every survivor's state. Connections are not touched. */
  apply (config: Config): ClusterDiff {
    const diff = { added: [] as string[], removed: [] as string[], changed: [] as string[] }
    const wanted = new Map(config.services.map((c) => [c.name, c]))
    for (const [name, svc] of this.#services) {
      if (wanted.has(name)) continue
      for (const s of svc.servers) this.#remove(svc, s, diff)
      const { removed } = svc.replaceFallback(undefined)
      if (removed !== undefined) this.#observer?.removed(removed)
      svc.close()
      this.#services.delete(name)
    }
    for (const cfg of config.services) {
      const svc = this.#services.get(cfg.name)
      if (svc === undefined) {
        const created = createService(cfg, this.#now, this.#targetOf)
        this.#services.set(cfg.name, created)
        for (const s of membersOf(created)) this.#added(s, diff)
        continue
      }
      svc.reconfigure(cfg)
      this.#applyServers(svc, cfg, diff)
      this.#applyFallback(svc, cfg, diff)
    }
    return diff
  }

  /** About once a second: scheduler GC and persistence expiry. */
  tick (): void {
    const now = this.#now()
    for (const svc of this.#services.values()) svc.tick(now)
  }

  close (): void {
    for (const svc of this.#services.values()) svc.close()
  }

  #applyServers (svc: Service, cfg: ServiceConfig, diff: { added: string[]; removed: string[]; changed: string[] }): void {
    const wanted = new Map(cfg.servers.map((c) => [c.name, c]))
    for (const s of svc.servers) {
      const c = wanted.get(s.id)
      if (c === undefined || !sameTarget(s.target, this.#targetOf(c))) this.#remove(svc, s, diff)
    }
    for (const c of cfg.servers) {
      const s = svc.server(c.name)
      if (s === undefined) this.#added(svc.add(c), diff)
      else if (JSON.stringify(s.config) !== JSON.stringify(c) || s.configWeight !== c.weight) { // the file's weight wins over setWeight
        svc.edit(s, c)
        diff.changed.push(`${svc.name}/${s.id}`)
        this.#observer?.changed(s)
      }
    }
  }

  /** A changed fallback server is replaced whole (it holds no locality or persistence state). */
  #applyFallback (svc: Service, cfg: ServiceConfig, diff: { added: string[]; removed: string[] }): void {
    if (JSON.stringify(svc.fallback?.config) === JSON.stringify(cfg.fallback)) return
    const { removed, added } = svc.replaceFallback(cfg.fallback)
    if (removed !== undefined) {
      diff.removed.push(`${svc.name}/${removed.id}`)
      this.#observer?.removed(removed)
    }
    if (added !== undefined) this.#added(added, diff)
  }

  #added (s: ServerState, diff: { added: string[] }): void {
    diff.added.push(`${s.service}/${s.id}`)
    this.#observer?.added(s)
  }

  #remove (svc: Service, s: ServerState, diff: { removed: string[] }): void {
    svc.remove(s)
    diff.removed.push(`${svc.name}/${s.id}`)
    this.#observer?.removed(s)
  }

  #need (service: string): Service {
    const svc = this.#services.get(service)
    if (svc === undefined) throw verbError(`no service named ${service}`)
    return svc
  }

  #needServer (svc: Service, name: string): ServerState {
    const s = svc.server(name)
    if (s === undefined) throw verbError(`service ${svc.name} has no server ${name}`)
    return s
  }
}

/** The servers health and forwarders know of: the regular ones and the fallback. */
function membersOf (svc: Service): ServerState[] {
  return svc.fallback === undefined ? [...svc.servers] : [...svc.servers, svc.fallback]
}

function verbError (message: string): BatonError {
  return new BatonError('BATON_ERR_CLUSTER_VERB', message)
}
