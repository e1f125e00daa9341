// The sorry server and what an operator sees, through the real switch with real back-end processes: the
// fallback serves only while every regular server of its service is down; a service without one answers
// 503 with Retry-After; the admin API's /servers and /metrics and baton.servers() show each server's state,
// and every state change is logged with its cause.
import http from 'node:http'
import { afterAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { fixtures, picks, request, stateLines, stateOf } from '../helpers/health'

function adminGet (admin: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(`http://${admin}${p}`, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve(body) })
    }).on('error', reject)
  })
}

describe.runIf(process.platform === 'linux' && native.available)('fallback server, 503 and the operator\'s view', () => {
  const h: Harness = harness()
  const f = fixtures()
  afterAll(async () => {
    await h.close()
    await f.close()
  })

  it('serves from the fallback only while the whole service is down; without one, 503 with Retry-After', async () => {
    const [a, b, sorry, c] = await Promise.all([
      f.start('A', { handoff: h.sock('A'), listen: '127.0.0.1:0' }),
      f.start('B', { handoff: h.sock('B'), listen: '127.0.0.1:0' }),
      f.start('sorry', { listen: '127.0.0.1:0' }),
      f.start('C', { handoff: h.sock('C'), listen: '127.0.0.1:0' }),
    ])
    const baton = await h.baton(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
services:
  - name: web
    scheduler: rr
    health: { http: { path: /healthz }, intervalMs: 100, rise: 1, fall: 1 }
    fallback: { name: sorry, address: 127.0.0.1:${sorry.port}, forward: pipe }
    servers:
      - { name: A, handoff: ${h.sock('A')} }
      - { name: B, handoff: ${h.sock('B')} }
  - name: bare
    health: { http: { path: /healthz }, intervalMs: 100, rise: 1, fall: 1 }
    servers:
      - { name: C, handoff: ${h.sock('C')} }
routes:
  - { match: { path: /bare }, service: bare }
  - { service: web }
`)
    const port = baton.ports[0]!
    await waitFor(() => ['A', 'B', 'C'].every((id) => stateOf(baton, id) === 'up'), 5000)
    expect(await picks(port, 10)).toEqual(new Map([['A', 5], ['B', 5]]))

    await a.send({ health: 'fail' }) // one down: the other serves, not the fallback
    await waitFor(() => stateOf(baton, 'A') === 'down', 3000)
    expect(await picks(port, 10)).toEqual(new Map([['B', 10]]))

    await b.send({ health: 'fail' }) // all down: the fallback
    await waitFor(() => stateOf(baton, 'B') === 'down', 3000)
    expect(await picks(port, 10)).toEqual(new Map([['sorry', 10]]))
    const rows = baton.servers()
    expect(rows.map((r) => [r.service, r.id, r.state, r.fallback])).toEqual([
      ['web', 'A', 'down', false], ['web', 'B', 'down', false], ['web', 'sorry', 'up', true], ['bare', 'C', 'up', false],
    ])
    const viaAdmin = JSON.parse(await adminGet(baton.admin!, '/servers')) as Array<{ id: string; state: string }>
    expect(viaAdmin.map((r) => [r.id, r.state])).toEqual([['A', 'down'], ['B', 'down'], ['sorry', 'up'], ['C', 'up']])
    const metrics = await adminGet(baton.admin!, '/metrics')
    expect(metrics).toContain('baton_server_state{service="web",server="A",state="down"} 1')
    expect(metrics).toContain('baton_server_state{service="web",server="A",state="up"} 0')
    expect(metrics).toContain('baton_server_state_changes_total{service="web",server="A",state="down"} 1')

    await a.send({ health: 'ok' }) // one back: the fallback stops at once
    await waitFor(() => stateOf(baton, 'A') === 'up', 3000)
    expect(await picks(port, 10)).toEqual(new Map([['A', 10]]))
    expect((await sorry.stats()).requests).toBe(10)

    await c.send({ health: 'fail' }) // a service without a fallback answers 503 with Retry-After
    await waitFor(() => stateOf(baton, 'C') === 'down', 3000)
    const r = await request(port, '/bare')
    expect(r).toMatchObject({ status: 503, retryAfter: '1' })
    await c.send({ health: 'ok' })
    await waitFor(() => stateOf(baton, 'C') === 'up', 3000)
    expect(await request(port, '/bare')).toMatchObject({ status: 200, backend: 'C' })

    // Every state change was logged once, with its cause (and why), and counted in /metrics.
    const lines = ['A', 'B', 'C'].flatMap((id) => stateLines(h.logs, id))
    for (const l of lines) {
      expect(l).toMatchObject({ svc: expect.any(String), cause: expect.any(String), from: expect.any(String), state: expect.any(String) })
    }
    expect(stateLines(h.logs, 'A').map((l) => `${l.from}>${l.state} ${l.cause}`)).toEqual(
      ['down>up channel-up', 'up>down check-failed', 'down>up check-passed'])
    expect(stateLines(h.logs, 'A')[1]).toMatchObject({ why: 'status 500, expected 2xx or 3xx' })
    const after = await adminGet(baton.admin!, '/metrics')
    const counted = [...after.matchAll(/^baton_server_state_changes_total\{service="(?:web|bare)",server="[ABC]",state="\w+"\} (\d+)$/gm)]
      .reduce((n, m) => n + Number(m[1]), 0)
    expect(counted).toBe(lines.length)
  })
})
