// The one writer of a real server's `up` flag and effective weight (through Service.applyHealth). Every
// signal about a server's health reports here, and only this file decides:
//
//   channel liveness  handoff forwarders report their channel up or down (EOF, goodbye, no PONG); a server
//                     with a channel is down while its channel is;
//   active checks     health/checker.ts reports each result; `fall` failures in a row take the server down,
//                     `rise` successes bring it back (HAProxy's rise/fall);
//   passive signals   failed connects and resets before the first byte (relays): with active checks they
//                     count as failed checks; without, they hold the server down for holdDownMs;
//   the operator      admin state up / drain (weight 0, open connections finish) / maint (down, checks
//                     paused), and the configured weight;
//   the back end      its reports through baton/backend: ready / drain / maint and a weight percentage.
//
// Effective weight = configured weight x back-end percentage x slow-start ramp (linear over slowStartMs
// after the server came up), or 0 while drained, or while failed with `quiescent` (kept in the list with
// weight 0 instead of down, as ldirectord's quiescent=yes). Reports about servers that left are ignored.
import type { ServerState } from '../cluster/types'
import type { Service } from '../cluster/service'
import type { BatonError } from '../errors'
import type { HealthInput } from '../forward/types'
import type { Logger } from '../log'
import { isUp, newRecord, stateOf, type HealthPolicy, type HealthRecord, type ServerHealth } from './record'

export type { HealthPolicy, ServerHealth } from './record'
export type AdminState = 'up' | 'drain' | 'maint'
export type AgentState = 'ready' | 'drain' | 'maint'

export interface HealthOptions {
  /** Without active checks: how long a relayed server whose connect failed gets no new connections. */
  readonly holdDownMs: number
  /** Slow-start ramp step. */
  readonly rampStepMs?: number
}

export class HealthState implements HealthInput<ServerState> {
  readonly #records = new Map<ServerState, HealthRecord>()
  readonly #opts: HealthOptions
  readonly #log: Logger
  /** State changes so far, by service, server and new state (for /metrics). */
  readonly changes = new Map<string, number>()
  #ramp: NodeJS.Timeout | undefined

  constructor (opts: HealthOptions, log: Logger) {
    this.#opts = opts
    this.#log = log
  }

  /** A server joined. `hasChannel`: it is down until its channel reports up. */
  track (server: ServerState, service: Service, hasChannel: boolean, policy: HealthPolicy): void {
    const rec = newRecord(server, service, hasChannel, policy)
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

  /** The operator's weight or the server's policy changed (reload): recompute. */
  refresh (server: ServerState, policy?: HealthPolicy): void {
    const rec = this.#records.get(server)
    if (rec === undefined) return
    if (policy !== undefined) rec.policy = policy
    this.#apply(rec, 'weight')
  }

  /** `gone`: the channel closed, and the back end's report with it (a restarted back end says its own). */
  channel (server: ServerState, up: boolean, why: string, gone = false): void {
    const rec = this.#records.get(server)
    if (rec === undefined || rec.channelUp === undefined) return
    if (gone) {
      rec.agent = 'ready'
      rec.agentPercent = 100
    }
    if (rec.channelUp === up && !gone) return
    rec.channelUp = up
    this.#apply(rec, up ? 'channel-up' : 'channel-down', why)
  }

  /** A passive signal (failed connect, reset before the first byte). */
  connectFailed (server: ServerState, err: BatonError): void {
    const rec = this.#records.get(server)
    if (rec === undefined) return
    if (rec.policy.checks) { this.check(server, false, `passive: ${err.message}`); return }
    if (rec.channelUp !== undefined || rec.heldDown !== undefined) return // a channel is the stronger signal
    rec.heldDown = setTimeout(() => {
      rec.heldDown = undefined
      if (this.#records.get(server) === rec) this.#apply(rec, 'hold-down-over')
    }, this.#opts.holdDownMs)
    rec.heldDown.unref()
    this.#apply(rec, 'connect-failed', err.message)
  }

  /** One active check result (health/checker.ts). rise/fall decide when the verdict flips. */
  check (server: ServerState, ok: boolean, why: string): void {
    const rec = this.#records.get(server)
    if (rec === undefined || rec.admin === 'maint') return
    if (ok) { rec.okRun++; rec.failRun = 0 } else { rec.failRun++; rec.okRun = 0 }
    if (rec.checkUp && rec.failRun >= rec.policy.fall) rec.checkUp = false
    else if (!rec.checkUp && rec.okRun >= rec.policy.rise) rec.checkUp = true
    else return
    this.#apply(rec, ok ? 'check-passed' : 'check-failed', why)
  }

  /** True while the last checks disagree with the verdict: the checker uses its fast interval. */
  isChanging (server: ServerState): boolean {
    const rec = this.#records.get(server)
    return rec !== undefined && (rec.checkUp ? rec.failRun > 0 : rec.okRun > 0)
  }

  /** Whether active checks should run now (not in maint). */
  wantsChecks (server: ServerState): boolean {
    const rec = this.#records.get(server)
    return rec !== undefined && rec.policy.checks && rec.admin !== 'maint'
  }

  /** The operator: up, drain (weight 0, open connections finish), maint (down, checks paused). */
  setAdminState (server: ServerState, state: AdminState): void {
    const rec = this.#records.get(server)
    if (rec === undefined || rec.admin === state) return
    rec.admin = state
    this.#apply(rec, `admin-${state}`)
  }

  /** The back end's own report (baton/backend handle.setState / setWeight). percent: 0..100, undefined = keep. */
  agent (server: ServerState, state: AgentState | undefined, percent: number | undefined): void {
    const rec = this.#records.get(server)
    if (rec === undefined) return
    if (state !== undefined) rec.agent = state
    if (percent !== undefined) rec.agentPercent = Math.max(0, Math.min(100, percent))
    this.#apply(rec, 'agent')
  }

  /** The server's health as the admin API shows it. */
  health (server: ServerState): ServerHealth | undefined {
    const rec = this.#records.get(server)
    return rec === undefined ? undefined : { state: stateOf(rec), admin: rec.admin, agent: rec.agent, agentPercent: rec.agentPercent }
  }

  /** Whether health lets the server take new connections. */
  isUp (server: ServerState): boolean {
    const rec = this.#records.get(server)
    return rec !== undefined && isUp(rec)
  }

  close (): void {
    for (const rec of this.#records.values()) clearTimeout(rec.heldDown)
    this.#records.clear()
    clearInterval(this.#ramp)
    this.#ramp = undefined
  }

  #apply (rec: HealthRecord, cause: string | undefined, why?: string): void {
    const s = rec.server
    const before = rec.shown
    const up = isUp(rec)
    // Slow start after a failure or maint, read from the state shown (a quiescent server's `up` never drops).
    const serving = up && rec.checkUp
    if (serving && rec.beenUp && (before === 'down' || before === 'maint') && rec.policy.slowStartMs > 0) rec.upSince = performance.now()
    if (serving) rec.beenUp = true
    rec.service.applyHealth(s, up, this.#weight(rec, up))
    const after = stateOf(rec)
    rec.shown = after
    if (cause === undefined || after === before) return
    const key = `${s.service}\0${s.id}\0${after}`
    this.changes.set(key, (this.changes.get(key) ?? 0) + 1)
    this.#log.info({ svc: s.service, backend: s.id, state: after, from: before, cause, ...(why !== undefined && { why }) },
      `real server ${after}`)
  }

  /** configWeight x agent percent x slow-start ramp; 0 when drained or quiescently failed. */
  #weight (rec: HealthRecord, up: boolean): number {
    const s = rec.server
    if (rec.admin === 'drain' || rec.agent === 'drain') return 0
    if (rec.policy.quiescent && !rec.checkUp) return 0
    let w = s.configWeight * rec.agentPercent / 100
    if (up && rec.upSince !== undefined) {
      const f = (performance.now() - rec.upSince) / rec.policy.slowStartMs
      if (f >= 1) rec.upSince = undefined
      else {
        w = w > 0 ? Math.max(1, w * f) : 0 // at least 1 from the first instant: up at weight 0 would take nothing
        this.#startRamp()
      }
    }
    return w > 0 ? Math.max(1, Math.round(w)) : 0
  }

  /** One interval while any server ramps up; it stops itself when none does. */
  #startRamp (): void {
    if (this.#ramp !== undefined) return
    this.#ramp = setInterval(() => {
      let ramping = false
      for (const rec of this.#records.values()) {
        if (rec.upSince === undefined) continue
        rec.service.applyHealth(rec.server, isUp(rec), this.#weight(rec, isUp(rec)))
        ramping ||= rec.upSince !== undefined
      }
      if (!ramping) { clearInterval(this.#ramp); this.#ramp = undefined }
    }, this.#opts.rampStepMs ?? 500)
    this.#ramp.unref()
  }
}
