// Health state as a state machine, every input at a time: rise/fall of active checks, passive signals with
// checks, the operator's up/drain/maint, the back end's report (and its end with the channel), slow start,
// quiescent, and the log line and count of every change.
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createService, type Service } from '../../../src/cluster/service'
import type { ServerState } from '../../../src/cluster/types'
import { BatonError } from '../../../src/errors'
import type { HealthPolicy } from '../../../src/health/record'
import { HealthState } from '../../../src/health/state'
import { serverConfig, serviceConfig } from '../schedulers/helpers'

const refused = new BatonError('BATON_ERR_CONNECT_FAILED', 'connect refused', { source: 'backend', retryable: true })
const checked = (over: Partial<HealthPolicy> = {}): HealthPolicy =>
  ({ checks: true, rise: 2, fall: 3, slowStartMs: 0, quiescent: false, ...over })

describe('HealthState verdicts', () => {
  let svc: Service
  let health: HealthState
  let A: ServerState
  let lines: Array<Record<string, unknown>>

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'] })
    svc = createService(serviceConfig('wrr', [serverConfig('A', { weight: 10 }), serverConfig('B', { weight: 10 })]))
    A = svc.servers[0]!
    lines = []
    const sink = new Writable({ write (c: Buffer, _e, cb) { lines.push(JSON.parse(c.toString()) as Record<string, unknown>); cb() } })
    health = new HealthState({ holdDownMs: 2000, rampStepMs: 100 }, pino({ level: 'info' }, sink))
  })
  afterEach(() => {
    health.close()
    vi.useRealTimers()
  })

  const state = (): string | undefined => health.health(A)?.state
  const checks = (...results: boolean[]): void => { for (const ok of results) health.check(A, ok, ok ? 'ok' : 'status 500') }

  it('goes down after `fall` failures in a row and up after `rise` successes; a mixed result resets the run', () => {
    health.track(A, svc, false, checked())
    checks(false, false, true, false, false)
    expect([A.up, state()]).toEqual([true, 'up'])
    checks(false)
    expect([A.up, state()]).toEqual([false, 'down'])
    expect(health.isChanging(A)).toBe(false)
    checks(true)
    expect(health.isChanging(A)).toBe(true) // the checker uses its fast interval now
    checks(false, true)
    expect(A.up).toBe(false)
    checks(true)
    expect([A.up, state()]).toEqual([true, 'up'])
    expect(lines.map((l) => [l.msg, l.from, l.cause, l.why])).toEqual([
      ['real server down', 'up', 'check-failed', 'status 500'], ['real server up', 'down', 'check-passed', 'ok']])
    expect([...health.changes]).toEqual([['svc\0A\0down', 1], ['svc\0A\0up', 1]])
  })

  it('counts a passive signal as a failed check when checks run: no hold-down timer', () => {
    health.track(A, svc, false, checked({ fall: 2 }))
    health.connectFailed(A, refused)
    expect(A.up).toBe(true)
    health.connectFailed(A, refused)
    expect([A.up, lines.at(-1)?.why]).toEqual([false, 'passive: connect refused'])
    expect(vi.getTimerCount()).toBe(0)
  })

  it('the operator: drain keeps it up at weight 0, maint takes it down and ignores checks, up restores', () => {
    health.track(A, svc, false, checked({ fall: 1 }))
    health.setAdminState(A, 'drain')
    expect([A.up, A.weight, state()]).toEqual([true, 0, 'drain'])
    health.setAdminState(A, 'maint')
    expect([A.up, state(), health.wantsChecks(A)]).toEqual([false, 'maint', false])
    checks(false)
    expect(state()).toBe('maint')
    health.setAdminState(A, 'up')
    expect([A.up, A.weight, state()]).toEqual([true, 10, 'up'])
    expect(lines.map((l) => l.cause)).toEqual(['admin-drain', 'admin-maint', 'admin-up'])
  })

  it('the back end: drain, maint and a weight percentage; its word ends when its channel closes', () => {
    health.track(A, svc, true, checked())
    health.channel(A, true, 'channel connected')
    health.agent(A, undefined, 50)
    expect([A.up, A.weight, state()]).toEqual([true, 5, 'up'])
    health.agent(A, 'drain', undefined)
    expect([A.up, A.weight, state()]).toEqual([true, 0, 'drain'])
    health.agent(A, 'maint', undefined)
    expect([A.up, state()]).toEqual([false, 'maint'])
    health.channel(A, false, 'answers no PING') // unresponsive, channel kept: its word stands
    expect(health.health(A)).toMatchObject({ state: 'maint', agent: 'maint', agentPercent: 50 })
    health.channel(A, false, 'back end closed the channel', true) // the process is gone: so is its word
    expect(health.health(A)).toMatchObject({ state: 'down', agent: 'ready', agentPercent: 100 })
    health.channel(A, true, 'channel connected')
    expect([A.up, A.weight, state()]).toEqual([true, 10, 'up'])
  })

  it('slow start: after a failure the weight ramps linearly over slowStartMs; never at start-up', () => {
    health.track(A, svc, false, checked({ rise: 1, fall: 1, slowStartMs: 1000 }))
    expect(A.weight).toBe(10)
    checks(false)
    checks(true)
    expect([A.up, A.weight]).toEqual([true, 1])
    const ramp: number[] = []
    for (let i = 0; i < 11; i++) {
      vi.advanceTimersByTime(100)
      ramp.push(A.weight)
    }
    expect(ramp).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10])
    expect(vi.getTimerCount()).toBe(0) // the ramp timer stops itself
  })

  it('quiescent: a failed server stays in the list at weight 0, shown down, and ramps when it recovers', () => {
    health.track(A, svc, false, checked({ rise: 1, fall: 1, slowStartMs: 1000, quiescent: true }))
    checks(false)
    expect([A.up, A.weight, state()]).toEqual([true, 0, 'down'])
    checks(true)
    expect([A.up, A.weight, state()]).toEqual([true, 1, 'up'])
    vi.advanceTimersByTime(1000)
    expect(A.weight).toBe(10)
  })
})
