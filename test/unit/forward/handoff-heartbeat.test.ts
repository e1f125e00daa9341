// The heartbeat's counting: silent after more than TICKS_PER_TIMEOUT ticks without a PONG (at least
// channelTimeoutMs), a queued client expired by the same count, and no timer left after stop().
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { Heartbeat, TICKS_PER_TIMEOUT } from '../../../src/forward/handoff-heartbeat'

describe('Heartbeat', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('ticks every timeout / 4 and is silent after at least the timeout without an answer', () => {
    let ticks = 0
    const hb = new Heartbeat(200, () => { ticks++ })
    expect(hb.intervalMs).toBe(50)
    hb.start()
    vi.advanceTimersByTime(50 * TICKS_PER_TIMEOUT)
    expect(ticks).toBe(4)
    expect(hb.silent).toBe(false) // 4 intervals: the last answer may have come just after the first tick
    vi.advanceTimersByTime(50)
    expect(hb.silent).toBe(true)
    hb.heard()
    expect(hb.silent).toBe(false)
    vi.advanceTimersByTime(50 * TICKS_PER_TIMEOUT)
    expect(hb.silent).toBe(false)
    vi.advanceTimersByTime(50)
    expect(hb.silent).toBe(true)
    hb.stop()
    expect(vi.getTimerCount()).toBe(0)
    hb.stop() // idempotent
  })

  it('expires what was recorded at a tick once the timeout has passed', () => {
    const hb = new Heartbeat(400, () => {})
    hb.start()
    vi.advanceTimersByTime(30) // queued between two ticks
    const at = hb.tick
    vi.advanceTimersByTime(70 + 100 * (TICKS_PER_TIMEOUT - 1)) // 370 ms later: not yet
    expect(hb.expired(at)).toBe(false)
    vi.advanceTimersByTime(99)
    expect(hb.expired(at)).toBe(false)
    vi.advanceTimersByTime(1) // 470 ms: the first tick after it had waited 400 ms
    expect(hb.expired(at)).toBe(true)
    hb.stop()
  })

  it('restarts clean: start() after silence owes nothing, and keeps one timer', () => {
    const hb = new Heartbeat(100, () => {})
    hb.start()
    vi.advanceTimersByTime(1000)
    expect(hb.silent).toBe(true)
    hb.start()
    expect(hb.silent).toBe(false)
    expect(vi.getTimerCount()).toBe(1)
    hb.stop()
    expect(vi.getTimerCount()).toBe(0)
  })
})
