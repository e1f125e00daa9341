// Health state: the one writer of up and effective weight. Who may flip a server up, and when.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createService, type Service } from '../../../src/cluster/service'
import type { ServerState } from '../../../src/cluster/types'
import { BatonError } from '../../../src/errors'
import { NO_CHECKS } from '../../../src/health/record'
import { HealthState } from '../../../src/health/state'
import { silentLogger } from '../../../src/log'
import { ctx, serverConfig, serviceConfig } from '../schedulers/helpers'

const HOLD_MS = 2000
const refused = new BatonError('BATON_ERR_CONNECT_FAILED', 'connect refused', { source: 'backend', retryable: true })

describe('HealthState', () => {
  let svc: Service
  let health: HealthState
  let A: ServerState
  let B: ServerState

  beforeEach(() => {
    vi.useFakeTimers()
    svc = createService(serviceConfig('rr', [serverConfig('A', { weight: 3 }), serverConfig('B')]))
    ;[A, B] = svc.servers as [ServerState, ServerState]
    health = new HealthState({ holdDownMs: HOLD_MS }, silentLogger())
  })
  afterEach(() => {
    health.close()
    vi.useRealTimers()
  })

  it('keeps a channel server down until its channel reports up, and follows the channel after', () => {
    health.track(A, svc, true, NO_CHECKS)
    health.track(B, svc, false, NO_CHECKS)
    expect([A.up, B.up]).toEqual([false, true])
    expect(svc.pick(ctx())).toBe(B)
    health.channel(A, true, 'connected')
    expect(A.up).toBe(true)
    expect(A.weight).toBe(3)
    health.channel(A, false, 'EOF')
    expect(A.up).toBe(false)
  })

  it('never lets a connect failure take down a channel server: its channel is the stronger signal', () => {
    health.track(A, svc, true, NO_CHECKS)
    health.channel(A, true, 'connected')
    health.connectFailed(A, refused)
    expect(A.up).toBe(true)
  })

  it('ignores channel reports about a server without a channel', () => {
    health.track(B, svc, false, NO_CHECKS)
    health.channel(B, false, 'stray')
    expect(B.up).toBe(true)
  })

  it('holds a relayed server down after a failed connect, then lets it take connections again', () => {
    health.track(A, svc, false, NO_CHECKS)
    health.track(B, svc, false, NO_CHECKS)
    health.connectFailed(B, refused)
    expect(B.up).toBe(false)
    expect(health.isUp(B)).toBe(false)
    for (let i = 0; i < 4; i++) expect(svc.pick(ctx())).toBe(A)
    vi.advanceTimersByTime(HOLD_MS - 1)
    expect(B.up).toBe(false)
    health.connectFailed(B, refused)           // a second failure while held down does not extend it
    vi.advanceTimersByTime(1)
    expect(B.up).toBe(true)
  })

  it('derives the effective weight from the operator weight, and keeps it while the server is down', () => {
    health.track(A, svc, false, NO_CHECKS)
    svc.setConfigWeight(A, 7)
    expect(A.weight).toBe(3)                   // nothing changes until health recomputes
    health.refresh(A)
    expect(A.weight).toBe(7)
    health.connectFailed(A, refused)
    expect([A.up, A.weight]).toEqual([false, 7])
  })

  it('forgets an untracked server: late reports and timers change nothing', () => {
    health.track(B, svc, false, NO_CHECKS)
    health.connectFailed(B, refused)
    health.untrack(B)
    vi.advanceTimersByTime(HOLD_MS * 2)
    expect(B.up).toBe(false)
    health.channel(B, true, 'late')
    health.refresh(B)
    expect(B.up).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('leaves no timer behind on close', () => {
    health.track(A, svc, false, NO_CHECKS)
    health.connectFailed(A, refused)
    expect(vi.getTimerCount()).toBe(1)
    health.close()
    expect(vi.getTimerCount()).toBe(0)
  })
})
