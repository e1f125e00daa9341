// Active checks against real servers: HTTP status and body, a hanging health path, TCP connects, rise/fall
// hysteresis, fast interval while changing, maint pausing checks, and no timer left.
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createService } from '../../src/cluster/service'
import type { ServerState } from '../../src/cluster/types'
import { HealthChecker, probe, type CheckSpec } from '../../src/health/checker'
import { HealthState } from '../../src/health/state'
import { silentLogger } from '../../src/log'
import { serverConfig, serviceConfig } from '../unit/schedulers/helpers'
import { waitFor } from '../helpers/cluster'

const policy = { checks: true, rise: 2, fall: 3, slowStartMs: 0, quiescent: false }
const httpSpec = (over: Partial<CheckSpec['http'] & object> = {}): CheckSpec => ({
  http: { method: 'GET', path: '/healthz', host: undefined, expect: [200], body: undefined, ...over },
  intervalMs: 60, fastIntervalMs: 20, timeoutMs: 200,
})

describe('health checks', () => {
  let status = 200
  let hang = false
  let hits = 0
  const server = http.createServer((req, res) => {
    hits++
    if (hang) return // never answers
    res.writeHead(status, { 'content-type': 'text/plain' })
    res.end(req.url === '/healthz' ? 'all good\n' : 'other\n')
  })
  let port = 0
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as net.AddressInfo).port
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })

  function setup (): { health: HealthState; checker: HealthChecker; s: ServerState } {
    const svc = createService(serviceConfig('rr', [serverConfig('A')]))
    const s = svc.servers[0]!
    const health = new HealthState({ holdDownMs: 1000 }, silentLogger())
    health.track(s, svc, false, policy)
    return { health, checker: new HealthChecker(health, silentLogger()), s }
  }

  it('probes HTTP: status set and body substring', async () => {
    const addr = { host: '127.0.0.1', port }
    expect(await probe(addr, httpSpec())).toBe('')
    expect(await probe(addr, httpSpec({ body: 'all good' }))).toBe('')
    expect(await probe(addr, httpSpec({ body: 'nope' }))).toMatch(/body does not contain/)
    expect(await probe(addr, httpSpec({ expect: [204] }))).toMatch(/status 200, expected 204/)
  })

  it('takes a server out after `fall` failures and back after `rise` successes', async () => {
    const { health, checker, s } = setup()
    checker.add(s, httpSpec(), () => ({ host: '127.0.0.1', port }))
    await waitFor(() => hits >= 2)
    expect(s.up).toBe(true)
    status = 500
    const before = hits
    await waitFor(() => !s.up, 3000)
    expect(hits - before).toBeGreaterThanOrEqual(3) // not before three failed checks in a row
    status = 200
    const downAt = hits
    await waitFor(() => s.up, 3000)
    expect(hits - downAt).toBeGreaterThanOrEqual(2)
    checker.close()
    health.close()
  })

  it('fails a health path that hangs, after the timeout', async () => {
    const { health, checker, s } = setup()
    hang = true
    checker.add(s, httpSpec(), () => ({ host: '127.0.0.1', port }))
    await waitFor(() => !s.up, 5000)
    hang = false
    await waitFor(() => s.up, 5000)
    checker.close()
    health.close()
  })

  it('checks TCP connects, and does not check a server in maint', async () => {
    const { health, checker, s } = setup()
    const closed = await new Promise<number>((resolve) => {
      const t = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (t.address() as net.AddressInfo).port
        t.close(() => resolve(p))
      })
    })
    let target = closed
    const tcp: CheckSpec = { http: undefined, intervalMs: 40, fastIntervalMs: 20, timeoutMs: 200 }
    expect(await probe({ host: '127.0.0.1', port: closed }, tcp)).toMatch(/ECONNREFUSED/)
    checker.add(s, tcp, () => ({ host: '127.0.0.1', port: target }))
    await waitFor(() => !s.up, 3000)
    health.setAdminState(s, 'maint')
    target = port
    await new Promise((r) => setTimeout(r, 300))
    expect(health.health(s)?.state).toBe('maint') // checks paused: nothing brought it back
    health.setAdminState(s, 'up')
    await waitFor(() => s.up, 3000)
    checker.close()
    health.close()
  })

  it('waits, uncounted, while the address is pending; fails a server with no address to check', async () => {
    const { health, checker, s } = setup()
    let addr: 'pending' | undefined = 'pending'
    checker.add(s, { ...httpSpec(), intervalMs: 200, fastIntervalMs: 20 }, () => addr)
    await new Promise((r) => setTimeout(r, 400)) // ~20 rounds at the fast interval: none counted
    expect(s.up).toBe(true)
    expect(health.isChanging(s)).toBe(false)
    addr = undefined
    await waitFor(() => !s.up, 3000)
    checker.close()
    health.close()
  })

  it('spreads first checks over the interval and leaves no timer after close', async () => {
    const svc = createService(serviceConfig('rr', Array.from({ length: 50 }, (_, i) => serverConfig(`s${i}`))))
    const health = new HealthState({ holdDownMs: 1000 }, silentLogger())
    const checker = new HealthChecker(health, silentLogger())
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const start = hits
    for (const s of svc.servers) {
      health.track(s, svc, false, policy)
      checker.add(s, { ...httpSpec(), intervalMs: 1000 }, () => ({ host: '127.0.0.1', port }))
    }
    await new Promise((r) => setTimeout(r, 250))
    const early = hits - start
    expect(early).toBeGreaterThan(0)
    expect(early).toBeLessThan(40) // about a quarter of 50 in the first quarter of the interval
    checker.close()
    health.close()
    await new Promise((r) => setTimeout(r, 50))
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timers)
  })
})
