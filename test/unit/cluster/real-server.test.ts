import { describe, expect, it } from 'vitest'
import { RealServerState } from '../../../src/cluster/real-server'
import { serverConfig } from '../schedulers/helpers'

const make = (maxConns: number, minConns: number): RealServerState =>
  new RealServerState(serverConfig('a', { maxConns, minConns }), 0, 'svc')

describe('RealServerState', () => {
  it('takes host/port from the address, or the handoff path and port 0', () => {
    expect(make(0, 0)).toMatchObject({ id: 'a', host: '127.0.0.1', port: 9000, weight: 1, lastWeight: 1, up: true })
    const h = new RealServerState({ name: 'h', handoff: '/run/h.sock', forward: 'handoff', weight: 0, maxConns: 0, minConns: 0 }, 3, 'svc')
    expect(h).toMatchObject({ host: '/run/h.sock', port: 0, index: 3, lastWeight: 0, service: 'svc' })
  })
  it('sets OVERLOAD on bind once active+inactive reaches maxConns', () => {
    const s = make(3, 0)
    s.conns.inactive = 1
    s.bind()
    expect(s.overloaded).toBe(false)
    s.bind()
    expect(s.overloaded).toBe(true)
  })
  it('clears below 75% of maxConns when minConns is unset (total*4 < max*3)', () => {
    const s = make(4, 0)
    for (let i = 0; i < 4; i++) s.bind()
    s.feedback(-1, 0, 1)                     // 3*4 = 12 < 12? no
    expect(s.overloaded).toBe(true)
    s.feedback(-1, 0, 1)                     // 2*4 = 8 < 12
    expect(s.overloaded).toBe(false)
  })
  it('clears below minConns when set', () => {
    const s = make(4, 2)
    for (let i = 0; i < 4; i++) s.bind()
    s.feedback(-2, 0, 2)                     // 2 < 2? no
    expect(s.overloaded).toBe(true)
    s.feedback(-1, 0, 1)
    expect(s.overloaded).toBe(false)
  })
  it('only a close evaluates the clear rule; counters never go below 0; reset clears all', () => {
    const s = make(2, 0)
    s.bind(); s.bind()
    s.feedback(-2, 1, 0)
    expect(s.overloaded).toBe(true)
    s.feedback(-5, -5, 1)
    expect(s.conns).toEqual({ active: 0, inactive: 0 })
    expect(s.overloaded).toBe(false)
    s.bind(); s.bind()
    s.reset()
    expect(s.overloaded).toBe(false)
    expect(s.conns).toEqual({ active: 0, inactive: 0 })
  })
  it('remembers the last non-zero weight', () => {
    const s = make(0, 0)
    s.setWeight(7)
    s.setWeight(0)
    expect([s.weight, s.lastWeight]).toEqual([0, 7])
  })
})
