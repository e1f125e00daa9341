// Active checks through the real switch, against real back-end processes (test/fixtures/health-backend.js):
// a health path answering 500 leaves rotation after `fall` checks and returns after `rise`; one that hangs is
// taken out after `fall` timeouts; a handoff back end is checked at the address it reported in HELLO (its
// own http.Server, not through the dispatcher); one that reported no address fails its checks.
import { afterAll, describe, expect, it } from 'vitest'
import type { Baton } from '../../src/baton'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { fixtures, picks, sleep, stateLines, stateOf, type Fixture } from '../helpers/health'

const INTERVAL_MS = 300
const FAST_MS = 100
const RISE = 2
const FALL = 3

describe.runIf(process.platform === 'linux' && native.available)('active health checks', () => {
  const h: Harness = harness()
  const f = fixtures()
  afterAll(async () => {
    await h.close()
    await f.close()
  })

  /** Service `web`: A (checked, handoff with its own TCP listener) and B (handoff, `health: false`). */
  async function twoServers (extra = ''): Promise<{ baton: Baton; a: Fixture; b: Fixture }> {
    const n = h.logs.length
    const [a, b] = await Promise.all([
      f.start(`A${n}`, { handoff: h.sock(`A${n}`), listen: '127.0.0.1:0' }),
      f.start(`B${n}`, { handoff: h.sock(`B${n}`) }),
    ])
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: rr
    health: { http: { path: /healthz }, intervalMs: ${INTERVAL_MS}, fastIntervalMs: ${FAST_MS}, rise: ${RISE}, fall: ${FALL} ${extra} }
    servers:
      - { name: ${a.name}, handoff: ${h.sock(a.name)} }
      - { name: ${b.name}, handoff: ${h.sock(b.name)}, health: false }
`)
    await waitFor(() => stateOf(baton, a.name) === 'up' && stateOf(baton, b.name) === 'up', 5000)
    return { baton, a, b }
  }

  it('checks a handoff back end at the address it reported (its own server sees user-agent baton-check)', async () => {
    const { a, b } = await twoServers()
    let s = await a.stats()
    for (const until = Date.now() + 5000; s.checks < 3 && Date.now() < until; s = await a.stats()) await sleep(100)
    expect(s.checks).toBeGreaterThanOrEqual(3)
    expect(s.checkAgents).toEqual(['baton-check'])
    // Its HELLO came with the first PING, at connect: no check ever ran without an address (no start-up flap).
    expect(stateLines(h.logs, a.name).map((l) => l.state)).toEqual(['up'])
    expect((await b.stats()).checks).toBe(0) // health: false on the server overrides the service's checks
  })

  it('takes a server answering 500 out after `fall` checks and back after `rise`', async () => {
    const { baton, a, b } = await twoServers()
    const port = baton.ports[0]!
    const c0 = (await a.stats()).checks // read first: checks after it include every failed one
    await a.send({ health: 'fail' })
    const failAt = Date.now()
    await waitFor(() => stateOf(baton, a.name) === 'down', 10 * INTERVAL_MS)
    const downMs = Date.now() - failAt
    const c1 = (await a.stats()).checks
    expect(c1 - c0).toBeGreaterThanOrEqual(FALL)
    const down = stateLines(h.logs, a.name).filter((l) => l.state === 'down')
    expect(down).toHaveLength(1)
    expect(down[0]).toMatchObject({ from: 'up', cause: 'check-failed', why: 'status 500, expected 2xx or 3xx' })
    expect(await picks(port, 10)).toEqual(new Map([[b.name, 10]]))

    await a.send({ health: 'ok' })
    const okAt = Date.now()
    await waitFor(() => stateOf(baton, a.name) === 'up', 10 * INTERVAL_MS)
    const upMs = Date.now() - okAt
    const c2 = (await a.stats()).checks
    expect(c2 - c1).toBeGreaterThanOrEqual(RISE)
    expect(stateLines(h.logs, a.name).at(-1)).toMatchObject({ state: 'up', from: 'down', cause: 'check-passed' })
    expect((await picks(port, 10)).get(a.name)).toBe(5)
    console.log(`500: down ${downMs} ms after the switch (${c1 - c0} checks, fall ${FALL}); up ${upMs} ms after ` +
      `200 again (${c2 - c1} checks, rise ${RISE}); interval ${INTERVAL_MS} ms, fast ${FAST_MS} ms`)
    // Fall: the first failure comes within an interval, the rest at the fast interval.
    expect(downMs).toBeLessThan(INTERVAL_MS + FALL * FAST_MS + 2000)
  })

  it('takes a server whose health path hangs out after `fall` timeouts', async () => {
    const TIMEOUT_MS = 150
    const { baton, a } = await twoServers(`, timeoutMs: ${TIMEOUT_MS}`)
    const c0 = (await a.stats()).checks
    await a.send({ health: 'hang' })
    const hangAt = Date.now()
    await waitFor(() => stateOf(baton, a.name) === 'down', 10 * INTERVAL_MS)
    const downMs = Date.now() - hangAt
    expect((await a.stats()).checks - c0).toBeGreaterThanOrEqual(FALL)
    expect(downMs).toBeGreaterThanOrEqual(FALL * TIMEOUT_MS) // each check waited its whole timeout
    expect(stateLines(h.logs, a.name).at(-1)).toMatchObject({ state: 'down', cause: 'check-failed', why: `no answer within ${TIMEOUT_MS} ms` })
    console.log(`hang: down ${downMs} ms after the health path stopped answering (fall ${FALL}, timeout ${TIMEOUT_MS} ms)`)
    await a.send({ health: 'ok' })
    await waitFor(() => stateOf(baton, a.name) === 'up', 10 * INTERVAL_MS)
  })

  it('fails the checks of a handoff back end that reported no address, and says why', async () => {
    const n = h.logs.length
    await f.start(`C${n}`, { handoff: h.sock(`C${n}`) }) // listens nowhere but on its handoff socket
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    health: { http: { path: /healthz }, intervalMs: ${INTERVAL_MS}, fastIntervalMs: ${FAST_MS}, fall: 2 }
    servers:
      - { name: C${n}, handoff: ${h.sock(`C${n}`)} }
`)
    await waitFor(() => stateLines(h.logs, `C${n}`).some((l) => l.state === 'down' && l.cause === 'check-failed'), 10 * INTERVAL_MS)
    expect(stateLines(h.logs, `C${n}`).at(-1)).toMatchObject({ state: 'down', why: 'no address to check' })
    await sleep(5 * INTERVAL_MS) // its channel is up and answers PINGs: still nothing to check
    expect(stateLines(h.logs, `C${n}`).map((l) => l.state)).toEqual(['up', 'down'])
    expect(stateOf(baton, `C${n}`)).toBe('down')
  })
})
