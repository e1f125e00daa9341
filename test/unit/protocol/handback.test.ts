// The keep-alive messages of the handoff channel (CAPS, ROUTES, HANDBACK, REBALANCE, the HANDOFF tail) and
// the routes table a back end compiles from ROUTES: round trips, and hostile input refused.
import { describe, expect, it } from 'vitest'

import { compilePattern, type Pattern } from '../../../src/config/pattern'
import type { RouteConfig } from '../../../src/config/types'
import {
  CAP_HANDBACK, decodeCaps, decodeHandback, decodeHandoff, decodeRebalance, encodeCaps, encodeHandback, encodeHandoff,
  encodeRebalance, encodeRoutes, HANDOFF_STICKY, MAX_CARRY_BYTES, MAX_CONSUMED_BYTES, MAX_MESSAGE_BYTES, MSG_ROUTES,
  ROUTES_FIRST, ROUTES_FRAGMENT_BYTES, ROUTES_LAST,
} from '../../../src/protocol/handoff'
import { Router } from '../../../src/request/route'
import { decodeRouteTable, encodeRouteTable } from '../../../src/request/route-table'
import { checkParsedHead } from '../../../src/request/sniff'

describe('HANDOFF tail', () => {
  it('carries flags and the bytes already consumed; without them it is the old message', () => {
    const buf = Buffer.alloc(MAX_CARRY_BYTES)
    const bytes = Buffer.from('GET /b HTTP/1.1\r\nHost: x\r\n\r\nPOST')
    const n = encodeHandoff(buf, 7, 'svc', 'r', HANDOFF_STICKY, bytes)
    expect(decodeHandoff(buf, n)).toEqual({ connId: 7, service: 'svc', route: 'r', flags: HANDOFF_STICKY, consumed: bytes })
    const m = encodeHandoff(buf, 7, 'svc', 'r', 0)
    expect(decodeHandoff(buf, m)).toEqual({ connId: 7, service: 'svc', route: 'r', flags: 0 })
    const old = encodeHandoff(buf, 7, 'svc', 'r')
    expect(old).toBe(m - 1)
    expect(decodeHandoff(buf, old)).toEqual({ connId: 7, service: 'svc', route: 'r' })
  })

  it('caps the consumed bytes at MAX_CONSUMED_BYTES', () => {
    const buf = Buffer.alloc(MAX_CARRY_BYTES)
    const n = encodeHandoff(buf, 1, 's', 'r', 0, Buffer.alloc(MAX_CONSUMED_BYTES + 10, 0x41))
    expect(decodeHandoff(buf, n)!.consumed!.length).toBe(MAX_CONSUMED_BYTES)
  })
})

describe('CAPS, REBALANCE, HANDBACK', () => {
  it('round-trip', () => {
    const buf = Buffer.alloc(MAX_CARRY_BYTES)
    expect(decodeCaps(buf, encodeCaps(buf, CAP_HANDBACK))).toBe(CAP_HANDBACK)
    expect(decodeRebalance(buf, encodeRebalance(buf, 12))).toBe(12)
    expect(decodeRebalance(buf, encodeRebalance(buf, 2 ** 40))).toBe(0xffffffff)
    const h = {
      reason: 'rebalance' as const, connId: 0xfffffff0, clientAddress: '::ffff:10.0.0.7', clientPort: 65535,
      localAddress: '127.0.0.1', localPort: 8080, consumed: Buffer.from('GET / HTTP/1.1\r\n\r\n'),
    }
    expect(decodeHandback(buf, encodeHandback(buf, h))).toEqual(h)
  })

  it('refuses what is not one', () => {
    const buf = Buffer.alloc(MAX_MESSAGE_BYTES)
    expect(decodeCaps(buf, encodeCaps(buf, 1) + 1)).toBe(-1)
    expect(decodeRebalance(buf, 4)).toBe(-1)
    const n = encodeHandback(buf, { reason: 'reroute', connId: 1, clientAddress: '1.2.3.4', clientPort: 1, localAddress: '5.6.7.8', localPort: 2, consumed: Buffer.alloc(0) })
    expect(decodeHandback(buf, n - 1)).toBeNull() // the local address cut short
    expect(decodeHandback(buf, 11)).toBeNull()
    buf[1] = 9
    expect(decodeHandback(buf, n)).toBeNull() // unknown reason
  })
})

describe('ROUTES', () => {
  it('splits a large table into fragments that join to the same JSON', () => {
    const json = JSON.stringify({ pad: 'x'.repeat(ROUTES_FRAGMENT_BYTES * 2 + 5) })
    const msgs = encodeRoutes(json)
    expect(msgs.length).toBe(3)
    expect(msgs.map((m) => m[0])).toEqual([MSG_ROUTES, MSG_ROUTES, MSG_ROUTES])
    expect(msgs.map((m) => m[1])).toEqual([ROUTES_FIRST, 0, ROUTES_LAST])
    expect(Buffer.concat(msgs.map((m) => m.subarray(2))).toString()).toBe(json)
    expect(encodeRoutes('{}').map((m) => m[1])).toEqual([ROUTES_FIRST | ROUTES_LAST])
  })
})

describe('the routes table', () => {
  const re = (s: string): Pattern => compilePattern(s) as Pattern
  const routes: RouteConfig[] = [
    { name: 'api', service: 'api', match: { path: '/api/', method: ['GET', 'POST'], host: ['*.example.com'] } },
    { name: 'img', service: 'img', match: { pathRegex: re('^/i/([0-9]+)$'), header: [{ name: 'x-tenant', value: 'blue' }, { name: 'x-v', regex: re('^v[0-9]$') }] } },
    { name: 'exact', service: 'web', match: { pathExact: '/' } },
    { name: 'rest', service: 'web', match: {} },
  ]

  it('routes the same requests the same way after the round trip', () => {
    const table = decodeRouteTable(encodeRouteTable({ routes, moveIntervalMs: 1000, maxHeaderBytes: 8192 }))
    if (typeof table === 'string') throw new Error(table)
    expect(table.moveIntervalMs).toBe(1000)
    expect(table.maxHeaderBytes).toBe(8192)
    const here = new Router(routes, (n) => n)
    const there = new Router(table.routes, (n) => n)
    const cases: Array<[string, string, string[]]> = [
      ['GET', '/api/x', ['Host', 'a.example.com']],
      ['DELETE', '/api/x', ['Host', 'a.example.com']],
      ['GET', '/api/x', ['Host', 'example.com']],
      ['GET', '/i/42', ['Host', 'h', 'X-Tenant', 'blue', 'X-V', 'v2']],
      ['GET', '/i/42', ['Host', 'h', 'X-Tenant', 'blue', 'X-V', 'v22']],
      ['GET', '/', ['Host', 'h']],
      ['GET', '/other', ['Host', 'h']],
    ]
    for (const [method, url, headers] of cases) {
      const r = checkParsedHead(method, url, 1, 1, headers, 0)
      if (r.kind !== 'ok') throw new Error(r.reason)
      expect(there.match(r.head)?.route.name).toBe(here.match(r.head)?.route.name)
    }
  })

  it('refuses a table it cannot use, with the reason', () => {
    expect(decodeRouteTable('nope')).toMatch(/^not JSON/)
    expect(decodeRouteTable('{"v":2}')).toMatch(/version/)
    expect(decodeRouteTable('{"v":1,"routes":[],"moveIntervalMs":-1,"maxHeaderBytes":1}')).toMatch(/malformed/)
    expect(decodeRouteTable('{"v":1,"routes":[{"name":"a"}],"moveIntervalMs":0,"maxHeaderBytes":1}')).toMatch(/malformed route/)
    expect(decodeRouteTable('{"v":1,"routes":[{"name":"a","service":"s","pathRegex":"(a"}],"moveIntervalMs":0,"maxHeaderBytes":1}')).toMatch(/route a/)
    expect(decodeRouteTable('{"v":1,"routes":[{"name":"a","service":"s","header":[{"n":1}]}],"moveIntervalMs":0,"maxHeaderBytes":1}')).toMatch(/bad header/)
  })
})
