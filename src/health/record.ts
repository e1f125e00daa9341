// One server's health record: every input's latest word, from which state.ts derives up, the effective
// weight and the state shown to operators. Plain data plus pure functions.
import type { Service } from '../cluster/service'
import type { ServerState } from '../cluster/types'

/** How a server's health is judged; from the service's `health:` and the server's override. */
export interface HealthPolicy {
  /** Active checks run (health/checker.ts); passive signals then count as failed checks. */
  readonly checks: boolean
  readonly rise: number
  readonly fall: number
  /** Ramp the weight up linearly over this after the server comes up; 0 = at once. */
  readonly slowStartMs: number
  /** A failed server stays in the list with weight 0 instead of going down. */
  readonly quiescent: boolean
}

export const NO_CHECKS: HealthPolicy = Object.freeze({ checks: false, rise: 1, fall: 1, slowStartMs: 0, quiescent: false })

export type ShownState = 'up' | 'down' | 'drain' | 'maint'

export interface ServerHealth {
  readonly state: ShownState
  readonly admin: 'up' | 'drain' | 'maint'
  readonly agent: 'ready' | 'drain' | 'maint'
  readonly agentPercent: number
}

export interface HealthRecord {
  readonly server: ServerState
  readonly service: Service
  policy: HealthPolicy
  /** Liveness from a channel: undefined for servers without one. */
  channelUp: boolean | undefined
  /** Passive hold-down (servers without active checks). */
  heldDown: NodeJS.Timeout | undefined
  /** The rise/fall verdict of active checks (true without checks, and at start: servers start up). */
  checkUp: boolean
  okRun: number
  failRun: number
  admin: 'up' | 'drain' | 'maint'
  agent: 'ready' | 'drain' | 'maint'
  agentPercent: number
  /** performance.now() when the server last came up, while its slow start ramps. */
  upSince: number | undefined
  /** The state last logged. */
  shown: ShownState | undefined
  /** It was up before: a later recovery ramps (slow start never applies at start-up, as in HAProxy). */
  beenUp: boolean
}

export function newRecord (server: ServerState, service: Service, hasChannel: boolean, policy: HealthPolicy): HealthRecord {
  return {
    server, service, policy, channelUp: hasChannel ? false : undefined, heldDown: undefined, checkUp: true,
    okRun: 0, failRun: 0, admin: 'up', agent: 'ready', agentPercent: 100, upSince: undefined, shown: undefined, beenUp: false,
  }
}

/** May the server take new connections at all (weight aside)? */
export function isUp (rec: HealthRecord): boolean {
  if (rec.admin === 'maint' || rec.agent === 'maint') return false
  if (rec.channelUp === false || rec.heldDown !== undefined) return false
  return rec.checkUp || rec.policy.quiescent
}

export function stateOf (rec: HealthRecord): ShownState {
  if (rec.admin === 'maint' || rec.agent === 'maint') return 'maint'
  if (!isUp(rec) || !rec.checkUp) return 'down'
  if (rec.admin === 'drain' || rec.agent === 'drain') return 'drain'
  return 'up'
}
