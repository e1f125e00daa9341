// One agent server of the migrate forwarder (migrate.ts): its mark and policy route (migrate-route.ts), its
// control connection (migrate-link.ts: authenticated both ways) reconnected with backoff, its liveness
// (PING every timeoutMs, silence for 2 x timeoutMs closes the link) and its health: up while the link is
// authenticated, its agent reports its back end connected (LOAD) and the route is in place, reported on every
// change through HealthInput.channel. The agent's READY and CLOSED go to the forwarder, which owns the
// migrations in flight (`pending`) and the flow elements.
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { BatonError } from '../errors'
import type { Logger } from '../log'
import {
  decodeClosed, decodeLoad, decodeReady, decodeU32, encodePing, MSG_CLOSED, MSG_LOAD, MSG_PONG, MSG_READY, ROLE_DISPATCHER,
} from '../protocol/migrate-control'
import { ControlLink } from './migrate-link'
import { installRoute, needsRoute, removeRoute } from './migrate-route'
import type { ForwardServer, HealthInput } from './types'

const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5000
/**
 * An agent whose control connection stays down this long has lost the connections it held: their flow
 * elements go (after graceMs), so none outlives them to steer a later connection from the same client port.
 */
export const LOST_AFTER_MS = 1000

/** What an agent server asks of the forwarder. */
export interface AgentHooks<S extends ForwardServer, P> {
  /** READY for connection `id`: ok (restored and handed off) or refused with `reason`. */
  ready (a: AgentServer<S, P>, id: number, ok: boolean, reason: string): void
  /** CLOSED: these migrated connections ended on the agent's host. */
  closed (a: AgentServer<S, P>, ids: readonly number[]): void
  /** The control connection went down (migrations in flight must be restored). */
  down (a: AgentServer<S, P>, err: BatonError): void
  /** The connections the agent process held are lost (it died, or another process answers now). */
  lost (a: AgentServer<S, P>, why: string): void
  /** How many flows the agent process `instance` holds. */
  flows (instance: string): number
  /** The server is gone and holds no flow: its flows are forgotten (no longer refreshed). */
  released (a: AgentServer<S, P>): void
  /** Its mark may be given to another server: its route is removed. */
  markFree (mark: number): void
}

export interface AgentSettings {
  readonly secret: string
  readonly timeoutMs: number
  readonly vips: readonly string[]
}

/** P: what the forwarder keeps per migration in flight (its Pending). */
export class AgentServer<S extends ForwardServer, P> {
  readonly server: S
  readonly mark: number
  /** Its mark routes to another host (not an agent on this host's loopback). */
  readonly routed: boolean
  /** Migrations in flight, by connection id: the forwarder's. */
  readonly pending = new Map<number, P>()
  link: ControlLink | undefined
  /** The agent process this link reached (HELLO's instance), which owns the flows migrated there. */
  instance = ''
  up = false
  /** Connections the agent tracks (LOAD). */
  active = 0
  detached = false
  #stopped = false
  #routeOk: boolean
  #backendUp = false
  #silentTicks = 0
  #pingSeq = 0
  #retryMs = RECONNECT_MIN_MS
  #retry: NodeJS.Timeout | undefined
  /** Runs LOST_AFTER_MS after the control connection went down, unless the same agent answers again. */
  #lostTimer: NodeJS.Timeout | undefined
  readonly #settings: AgentSettings
  readonly #hooks: AgentHooks<S, P>
  readonly #health: HealthInput<S>
  readonly #log: Logger

  /** Installs the policy route (unless the agent is on loopback) and connects. Down until both are ready. */
  constructor (server: S, mark: number, settings: AgentSettings, hooks: AgentHooks<S, P>, health: HealthInput<S>, log: Logger) {
    this.server = server
    this.mark = mark
    this.routed = needsRoute(server.target.host)
    this.#routeOk = !this.routed
    this.#settings = settings
    this.#hooks = hooks
    this.#health = health
    this.#log = log
    if (this.routed) {
      void installRoute(mark, settings.vips, server.target.host).then((err) => {
        if (this.detached) return
        if (err !== undefined) log.error({ svc: server.service, backend: server.id, err, code: 'BATON_ERR_MIGRATE_UNAVAILABLE' }, 'policy route not installed: server stays down')
        this.#routeOk = err === undefined
        this.#judge(err ?? 'policy route installed')
      })
    }
    this.#connect()
  }

  /** The server left: down for good; released at once unless flows still need its link (then at their end). */
  detach (): void {
    this.detached = true
    this.up = false
    if (this.#hooks.flows(this.instance) === 0 || this.link === undefined) this.release()
  }

  /** The forwarder closes: the link goes, routes and flows stay for the connections migrated. */
  stop (): void {
    this.#stopped = true
    this.detached = true
    clearTimeout(this.#retry)
    clearTimeout(this.#lostTimer)
    this.link?.close()
  }

  /** Every timeoutMs / 4: PING every 4 ticks; 8 ticks of silence close the link. */
  tick (): void {
    const link = this.link
    if (link?.ready !== true) return
    if (++this.#silentTicks > 8) {
      link.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `no answer within ${2 * this.#settings.timeoutMs} ms`, { source: 'backend' }))
    } else if (this.#silentTicks % 4 === 0) link.send(encodePing(++this.#pingSeq, performance.now()))
  }

  /** Gone and holding no flow: close the link, forget its flows, remove the route, free the mark. */
  release (): void {
    clearTimeout(this.#retry)
    clearTimeout(this.#lostTimer)
    this.link?.close()
    this.link = undefined
    this.#hooks.released(this)
    if (this.routed) void removeRoute(this.mark).then(() => { this.#hooks.markFree(this.mark) })
    else this.#hooks.markFree(this.mark)
  }

  #connect (): void {
    this.#retry = undefined
    if (this.detached) return
    const { host, port } = this.server.target
    const { secret, timeoutMs } = this.#settings
    const link = new ControlLink(net.connect(port, host), ROLE_DISPATCHER, secret, {
      ready: (peer) => {
        const instance = peer.instance.toString('hex')
        clearTimeout(this.#lostTimer)
        this.#lostTimer = undefined
        if (this.instance !== '' && this.instance !== instance) this.#hooks.lost(this, 'another agent process answers')
        this.instance = instance
        this.#retryMs = RECONNECT_MIN_MS
        this.#silentTicks = 0
        link.send(encodePing(++this.#pingSeq, performance.now())) // before any MIGRATE: the agent's clock estimate starts here
        this.#log.info({ svc: this.server.service, backend: this.server.id, agent: link.remote, mark: this.mark }, 'migrate control connected')
      },
      message: (type, payload) => { this.#onMessage(type, payload) },
      closed: (err) => { this.#onClosed(link, err) },
    }, Math.max(1000, 2 * timeoutMs))
    this.link = link
  }

  #onClosed (link: ControlLink, err: BatonError): void {
    if (this.link !== link) return
    this.link = undefined
    this.#backendUp = false
    if (!this.#stopped) {
      this.#log.warn({ svc: this.server.service, backend: this.server.id, err: err.message, code: err.code, retryMs: this.#retryMs }, 'migrate control connection down')
    }
    this.#judge(err.message)
    this.#hooks.down(this, err)
    if (!this.detached && this.#lostTimer === undefined && this.#hooks.flows(this.instance) > 0) {
      this.#lostTimer = setTimeout(() => {
        this.#lostTimer = undefined
        if (this.link?.ready !== true) this.#hooks.lost(this, `control connection down for ${LOST_AFTER_MS} ms`)
      }, LOST_AFTER_MS)
      this.#lostTimer.unref()
    }
    if (this.detached) { this.release(); return }
    this.#retry = setTimeout(() => { this.#connect() }, this.#retryMs)
    this.#retry.unref()
    this.#retryMs = Math.min(this.#retryMs * 2, RECONNECT_MAX_MS)
  }

  /** Up = authenticated link, its back end connected (LOAD), and the route in place. Reports changes only. */
  #judge (why: string): void {
    const up = !this.detached && this.link?.ready === true && this.#backendUp && this.#routeOk
    if (up === this.up) return
    this.up = up
    this.#health.channel(this.server, up, why, !up && this.link === undefined)
  }

  #onMessage (type: number, payload: Buffer): void {
    this.#silentTicks = 0
    if (type === MSG_READY) {
      const r = decodeReady(payload)
      if (r !== null) { this.#hooks.ready(this, r.id, r.ok, r.reason); return }
    } else if (type === MSG_CLOSED) {
      const ids = decodeClosed(payload)
      if (ids !== null) { this.#hooks.closed(this, ids); return }
    } else if (type === MSG_LOAD) {
      const l = decodeLoad(payload)
      if (l !== null) {
        this.active = l.active
        this.#backendUp = l.backendUp
        this.#judge(l.backendUp ? 'agent and its back end connected' : 'the agent\'s back end is not connected')
        return
      }
    } else if (type === MSG_PONG && decodeU32(payload) !== null) return
    this.link?.close(new BatonError('BATON_ERR_MIGRATE_CONTROL', `protocol error: message type ${type} (${payload.length} bytes)`, { source: 'backend' }))
  }
}
