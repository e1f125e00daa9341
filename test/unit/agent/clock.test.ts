// The agent's estimate of a dispatcher's clock (src/agent/clock.ts): it never runs ahead of the
// dispatcher's clock, trails it by the shortest recent delay only, and a stall (every frame late) does not
// make it trail by the stall. Pure: the clocks are numbers.
import { describe, expect, it } from 'vitest'
import { PeerClock } from '../../../src/agent/clock'

/** The agent's clock is the dispatcher's + OFFSET (two processes, two origins). */
const OFFSET = 5_000_000

describe('PeerClock', () => {
  it('knows nothing before a sample', () => {
    expect(new PeerClock().now(1)).toBeUndefined()
  })

  it('trails the dispatcher by the shortest delay seen, never runs ahead', () => {
    const c = new PeerClock()
    const delays = [0.3, 0.05, 2, 0.9, 40]
    let t = 1000
    for (const d of delays) { c.sample(t, t + d + OFFSET); t += 100 }
    // At dispatcher time T (agent time T + OFFSET) the estimate is T - 0.05.
    expect(c.now(2000 + OFFSET)).toBeCloseTo(2000 - 0.05, 6)
  })

  it('a stall in which every frame comes late does not make the estimate trail by the stall', () => {
    const c = new PeerClock()
    c.sample(1000, 1000.02 + OFFSET) // a prompt PING
    // The agent stalls for 800 ms: the frames stamped meanwhile arrive together at 1900.
    for (let t = 1100; t < 1900; t += 100) c.sample(t, 1900 + OFFSET)
    expect(c.now(1900 + OFFSET)).toBeCloseTo(1900 - 0.02, 6)
  })

  it('forgets minima older than its window, so clock drift cannot add up', () => {
    const c = new PeerClock()
    c.sample(0, 0.01 + OFFSET)
    // Later the agent's clock runs 1 ms behind what the first sample said (drift); frames keep arriving
    // with 0.5 ms of delay. Within the window the old, smaller offset still rules.
    for (let t = 10_000; t <= 70_000; t += 10_000) c.sample(t, t - 1 + 0.5 + OFFSET)
    expect(c.now(70_000 - 1 + OFFSET)).toBeCloseTo(70_000 - 0.5, 6)
  })
})
