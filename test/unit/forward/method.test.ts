import { describe, expect, it } from 'vitest'
import type { ServerConfig } from '../../../src/config/types'
import { resolveTarget, sameTarget, targetName } from '../../../src/forward/method'

const base = { weight: 1, maxConns: 0, minConns: 0 }
const handoff: ServerConfig = { name: 'h', handoff: '/run/h.sock', ...base }
const relayed: ServerConfig = { name: 'r', address: { host: '10.0.0.2', port: 80 }, ...base }

describe('resolveTarget: the one decision of how a server is reached', () => {
  it('hands off to handoff: servers when the addon loaded', () => {
    expect(resolveTarget(handoff, true)).toEqual({ method: 'handoff', host: '', port: 0, path: '/run/h.sock', proxyProtocol: undefined })
  })
  it('relays a handoff: server as a stream socket with PROXY v2 when the addon is missing', () => {
    expect(resolveTarget(handoff, false)).toEqual({ method: 'pipe', host: '', port: 0, path: '/run/h.sock', proxyProtocol: 'v2' })
  })
  it('splices address: servers by default, as written otherwise', () => {
    expect(resolveTarget(relayed, true).method).toBe('splice')
    expect(resolveTarget({ ...relayed, forward: 'pipe' }, true).method).toBe('pipe')
    expect(resolveTarget({ ...relayed, proxyProtocol: 'v1' }, true)).toMatchObject({ host: '10.0.0.2', port: 80, proxyProtocol: 'v1' })
  })
  it('falls back to pipe for every address: server without the addon', () => {
    expect(resolveTarget(relayed, false).method).toBe('pipe')
    expect(resolveTarget({ ...relayed, forward: 'splice' }, false).method).toBe('pipe')
  })
  it('compares targets (reload keeps a server only when its target is the same) and names them', () => {
    expect(sameTarget(resolveTarget(relayed, true), resolveTarget({ ...relayed, weight: 5 }, true))).toBe(true)
    expect(sameTarget(resolveTarget(relayed, true), resolveTarget({ ...relayed, address: { host: '10.0.0.3', port: 80 } }, true))).toBe(false)
    expect(targetName(resolveTarget(relayed, true))).toBe('10.0.0.2:80')
    expect(targetName(resolveTarget({ ...relayed, address: { host: '::1', port: 8 } }, true))).toBe('[::1]:8')
    expect(targetName(resolveTarget(handoff, true))).toBe('/run/h.sock')
  })
})
