// RouteCheck.verdict and its per-connection memo (CheckedHead): a later head equal to the last one that
// stayed is not checked again, so the memo must cover everything a verdict reads, and nothing else may
// change the verdict behind it (routes replaced, the application changing req.rawHeaders, shedding).
import type http from 'node:http'
import { describe, expect, it } from 'vitest'
import { RouteCheck, type WatchedConn } from '../../../src/backend/reroute'

function check (routes: readonly object[]): RouteCheck {
  const rc = RouteCheck.parse(JSON.stringify({ v: 1, moveIntervalMs: 1000, maxHeaderBytes: 8192, routes }))
  if (typeof rc === 'string') throw new Error(rc)
  return rc
}

function head (url: string, rawHeaders: string[], method = 'GET'): http.IncomingMessage {
  return { method, url, httpVersionMajor: 1, httpVersionMinor: 1, httpVersion: '1.1', rawHeaders } as unknown as http.IncomingMessage
}

function conn (service = 'a'): WatchedConn {
  return { service, heads: 2, adoptedAt: 0, shed: false, move: undefined, stayed: undefined }
}

const byPath = check([{ name: 'a', service: 'a', path: '/a/' }, { name: 'b', service: 'b', path: '/b/' }])

describe('RouteCheck.verdict', () => {
  it('keeps a repeated head, remembering it, and moves the one that routes elsewhere', () => {
    const c = conn()
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
    expect(c.stayed?.url).toBe('/a/x')
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
    expect(byPath.verdict(head('/b/x', ['Host', 'e']), c)).toBe('reroute')
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
  })

  it('checks again a head that differs in any field, method or version', () => {
    const c = conn()
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
    expect(byPath.verdict(head('/a/x', ['Host', 'e', 'Host', 'f']), c)).toBe('reroute') // 400 at the dispatcher
    expect(byPath.verdict(head('/a/x', ['Host', 'e', 'Content-Length', '1x']), c)).toBe('reroute')
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
    expect(byPath.verdict(head('/a/x', ['Host', 'e'], 'CONNECT'), c)).toBe('reroute')
    const h10 = head('/a/x', ['Host', 'e'])
    ;(h10 as { httpVersionMajor: number }).httpVersionMajor = 2
    expect(byPath.verdict(h10, c)).toBe('reroute')
  })

  it('follows a header predicate: the same target with another value moves', () => {
    const rc = check([{ name: 'beta', service: 'b', path: '/', header: [{ n: 'x-beta', v: '1' }] }, { name: 'a', service: 'a', path: '/' }])
    const c = conn()
    expect(rc.verdict(head('/p', ['Host', 'e', 'X-Beta', '0']), c)).toBeUndefined()
    expect(rc.verdict(head('/p', ['Host', 'e', 'X-Beta', '1']), c)).toBe('reroute')
    expect(rc.verdict(head('/p', ['Host', 'e', 'X-Beta', '0']), c)).toBeUndefined()
  })

  it('does not trust a memo made with other routes', () => {
    const c = conn()
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
    const reloaded = check([{ name: 'a', service: 'b', path: '/a/' }])
    expect(reloaded.verdict(head('/a/x', ['Host', 'e']), c)).toBe('reroute')
  })

  it('keeps its own copy of the fields: the application changing req.rawHeaders changes nothing', () => {
    const c = conn()
    const raw = ['Host', 'e']
    expect(byPath.verdict(head('/a/x', raw), c)).toBeUndefined()
    raw.push('Content-Length', 'bad')
    expect(byPath.verdict(head('/a/x', ['Host', 'e', 'Content-Length', 'bad']), c)).toBe('reroute')
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
  })

  it('sheds a remembered head too', () => {
    const c = conn()
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBeUndefined()
    c.shed = true
    expect(byPath.verdict(head('/a/x', ['Host', 'e']), c)).toBe('rebalance')
  })

  it('moves a head larger than maxHeaderBytes (the dispatcher answers 431), remembered or not', () => {
    const small = RouteCheck.parse(JSON.stringify({ v: 1, moveIntervalMs: 1000, maxHeaderBytes: 40, routes: [{ name: 'a', service: 'a', path: '/' }] }))
    if (typeof small === 'string') throw new Error(small)
    const c = conn()
    expect(small.verdict(head('/a', ['Host', 'e']), c)).toBeUndefined()
    expect(small.verdict(head('/a', ['Host', 'e', 'X-Pad', 'x'.repeat(40)]), c)).toBe('reroute')
  })
})
