// The core path end to end: a real dispatcher on 127.0.0.1:0, real back-end processes taking connections
// over SCM_RIGHTS, real client sockets.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, fdCount, harness, waitFor, type Harness } from '../helpers/cluster'

/** Pending timers of this process (head waits, drain timeouts, the access log's batch timer). */
const timerCount = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

const GET = (path: string, host = 'example.com', extra = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`

describe.runIf(process.platform === 'linux' && native.available)('dispatcher with handoff', () => {
  let h: Harness
  let port: number

  beforeAll(async () => {
    h = harness()
    await Promise.all(['a1', 'b1', 'c1', 'd1', 'd2'].map((n) => h.backend(n)))
    const b = await h.baton(`
listen: 127.0.0.1:0
limits: { headerTimeoutMs: 400, maxHeaderBytes: 2048 }
services:
  - { name: a, scheduler: rr, servers: [ { name: a1, handoff: ${h.sock('a1')} } ] }
  - { name: b, scheduler: rr, servers: [ { name: b1, handoff: ${h.sock('b1')} } ] }
  - { name: c, scheduler: rr, servers: [ { name: c1, handoff: ${h.sock('c1')} } ] }
  - name: d
    scheduler: rr
    servers: [ { name: d1, handoff: ${h.sock('d1')} }, { name: d2, handoff: ${h.sock('d2')} } ]
  - { name: dead, scheduler: rr, servers: [ { name: nobody, handoff: ${h.sock('nobody')} } ] }
routes:
  - { name: by-prefix, match: { path: /a/ }, service: a }
  - { name: by-exact, match: { pathExact: /b }, service: b }
  - { name: by-regex, match: { pathRegex: "^/c/[0-9]+$" }, service: c }
  - { name: by-host, match: { host: "*.b.test" }, service: b }
  - { name: by-method, match: { method: [DELETE, PATCH] }, service: c }
  - { name: by-header, match: { header: { x-tenant: blue } }, service: c }
  - { name: to-dead, match: { path: /dead }, service: dead }
  - { name: default, service: d }
`)
    port = b.ports[0]!
  })
  afterAll(async () => { await h.close() })

  it.each([
    ['/a/x', 'example.com', '', 'a1', 'by-prefix'],
    ['/b', 'example.com', '', 'b1', 'by-exact'],
    ['/b/more', 'example.com', '', 'd', 'default'],
    ['/c/42', 'example.com', '', 'c1', 'by-regex'],
    ['/c/x', 'example.com', '', 'd', 'default'],
    ['/', 'www.b.test', '', 'b1', 'by-host'],
    ['/', 'b.test', '', 'd', 'default'],
    ['/', 'example.com', 'X-Tenant: blue\r\n', 'c1', 'by-header'],
  ])('routes %s (Host %s) to %s', async (path, host, extra, want, route) => {
    const { responses } = await exchange(port, GET(path, host, extra), { expect: 1 })
    const r = responses[0]!
    expect(r.status).toBe(200)
    const body = JSON.parse(r.body) as { backend: string; via: string }
    expect(body.backend.startsWith(want)).toBe(true)
    expect(body.via).toContain(`route ${route}`)
  })

  it('routes by method', async () => {
    const { responses } = await exchange(port, 'DELETE /x HTTP/1.1\r\nHost: e\r\n\r\n', { expect: 1 })
    expect(responses[0]!.headers['x-baton-backend']).toBe('c1')
  })

  it('routes each pipelined request on a kept-alive connection by its own route, in order; back ends see the client address', async () => {
    const three = GET('/a/1') + GET('/a/2') + GET('/b', 'example.com', 'Connection: close\r\n')
    const { responses, local } = await exchange(port, three, { expect: 3 })
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200])
    // The first two stay on a1; the third routes to b, so the connection moves there (keepAlive: reroute).
    expect(responses.map((r) => r.headers['x-baton-backend'])).toEqual(['a1', 'a1', 'b1'])
    const bodies = responses.map((r) => JSON.parse(r.body) as { url: string; client: string })
    expect(bodies.map((b) => b.url)).toEqual(['/a/1', '/a/2', '/b'])
    for (const b of bodies) expect(b.client).toBe(`${local.address}:${local.port}`)
  })

  it('sends a request body through with the connection', async () => {
    const body = 'x'.repeat(100_000)
    const req = `POST /a/upload HTTP/1.1\r\nHost: e\r\nContent-Length: ${body.length}\r\n\r\n${body}`
    const { responses } = await exchange(port, req, { expect: 1 })
    expect(responses[0]!.status).toBe(200)
    expect(responses[0]!.headers['x-baton-backend']).toBe('a1')
  })

  it.each([
    ['malformed request line', 'GARBAGE\r\n\r\n', 400],
    ['Content-Length with Transfer-Encoding', 'POST /a HTTP/1.1\r\nHost: e\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['two Host headers', 'GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['obs-fold', 'GET /a HTTP/1.1\r\nHost: e\r\nX-A: 1\r\n  folded\r\n\r\n', 400],
    ['bare LF', 'GET /a HTTP/1.1\nHost: e\n\n', 400],
    ['dot segments', 'GET /a/../dead HTTP/1.1\r\nHost: e\r\n\r\n', 400],
    ['a head over maxHeaderBytes', `GET /a HTTP/1.1\r\nHost: e\r\nX-Big: ${'y'.repeat(3000)}\r\n\r\n`, 431],
    ['a head over maxHeaderBytes, never finished', `GET /a HTTP/1.1\r\nX-Big: ${'y'.repeat(3000)}`, 431],
  ])('answers %s with its status', async (_name, raw, status) => {
    const { responses } = await exchange(port, raw)
    expect(responses).toHaveLength(1)
    expect(responses[0]!.status).toBe(status)
    expect(responses[0]!.headers.connection).toBe('close')
    expect(responses[0]!.headers['x-baton-error']).toMatch(/^BATON_ERR_/)
  })

  it('answers 408 when the head is not complete in time, and keeps no descriptor or timer', async () => {
    const fds = fdCount()
    const timers = timerCount()
    const t0 = Date.now()
    const results = await Promise.all(Array.from({ length: 20 }, () => exchange(port, 'GET /a HTTP/1.1\r\nHost: e\r\n')))
    for (const { responses } of results) expect(responses[0]!.status).toBe(408)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350)
    await waitFor(() => fdCount() <= fds && timerCount() <= timers)
  })

  it('completes a head that arrives in pieces', async () => {
    const s = net.connect(port, '127.0.0.1')
    await new Promise((r) => s.once('connect', r))
    const parts = ['GET /a/sp', 'lit HTTP/1.1\r\nHo', 'st: e\r\n', '\r\n']
    let data = ''
    s.on('data', (d) => { data += d.toString() })
    for (const p of parts) {
      s.write(p)
      await new Promise((r) => setTimeout(r, 30))
    }
    await waitFor(() => data.includes('"url":"/a/split"'))
    expect(data).toContain('x-baton-backend: a1')
    s.destroy()
  })

  it('answers 503 itself when no server is left', async () => {
    const { responses } = await exchange(port, GET('/dead'))
    expect(responses[0]!.status).toBe(503)
    expect(responses[0]!.headers['x-baton-error']).toBe('BATON_ERR_NO_SERVER')
  })

  it('closes quietly when a client leaves mid-head', async () => {
    const before = h.logs.length
    const fds = fdCount()
    const s = net.connect(port, '127.0.0.1')
    let data = ''
    s.on('data', (d) => { data += d.toString() })
    s.on('error', () => {}) // the kernel may reset: the dispatcher closed with the partial head unread
    await new Promise((r) => s.once('connect', r))
    const client = `${s.localAddress}:${s.localPort}`
    s.end('GET /a HT')
    await new Promise((r) => s.once('close', r))
    // Sockets answered by earlier tests may still be draining: "no leak" means back to at most the start.
    await waitFor(() => fdCount() <= fds)
    await new Promise((r) => setTimeout(r, 250)) // past the access log's batch interval
    expect(data).toBe('')
    expect(h.logs.slice(before).some((l) => l.client === client && l.outcome !== undefined)).toBe(false)
  })

  it('logs one line per connection with client, route, service, server, method, outcome and microseconds', async () => {
    const before = h.logs.length
    const { local } = await exchange(port, GET('/a/log', 'example.com', 'Connection: close\r\n'), { expect: 1 })
    const mine = (): Record<string, unknown> | undefined =>
      h.logs.slice(before).find((l) => l.client === `${local.address}:${local.port}`)
    await waitFor(() => mine() !== undefined) // access lines are written in batches, within 100 ms
    const line = mine()!
    expect(line).toMatchObject({ route: 'by-prefix', svc: 'a', backend: 'a1', method: 'GET', outcome: 'handoff', target: '/a/log' })
    expect(typeof line.us).toBe('number')
  })

  it('returns to its descriptor count after 2,000 connections', async () => {
    // Warm up once so lazily created handles exist before the baseline.
    await exchange(port, GET('/a/warm', 'e', 'Connection: close\r\n'), { expect: 1 })
    const before = fdCount()
    const batch = async (n: number, f: (i: number) => Promise<unknown>): Promise<void> => {
      for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => f(i + j)))
    }
    await batch(2000, async (i) => {
      const kind = i % 4
      if (kind === 0) await exchange(port, GET(`/a/${i}`, 'e', 'Connection: close\r\n'), { expect: 1 })
      else if (kind === 1) await exchange(port, GET(`/d/${i}`, 'e', 'Connection: close\r\n'), { expect: 1 })
      else if (kind === 2) await exchange(port, 'BAD\r\n\r\n')
      else await exchange(port, GET('/dead'))
    })
    // <=: sockets answered before the baseline may finish draining during the run.
    await waitFor(() => fdCount() <= before, 8000)
    expect(fdCount()).toBeLessThanOrEqual(before)
  }, 60_000)

  it('costs a dead back end only its own connections', async () => {
    // d1 and d2 share service d (rr). Hold a kept-alive connection on each, then kill d1.
    const open = async (): Promise<{ s: net.Socket; backend: string; data: () => string }> => {
      const s = net.connect(port, '127.0.0.1')
      let data = ''
      s.on('data', (d) => { data += d.toString() })
      s.on('error', () => {})
      await new Promise((r) => s.once('connect', r))
      s.write(GET('/d/hold'))
      await waitFor(() => data.includes('\r\n\r\n{'))
      return { s, backend: /x-baton-backend: (\w+)/.exec(data)![1]!, data: () => data }
    }
    const conns = [await open(), await open()]
    const names = conns.map((c) => c.backend).sort()
    expect(names).toEqual(['d1', 'd2'])
    const victim = conns.find((c) => c.backend === 'd1')!
    const survivor = conns.find((c) => c.backend === 'd2')!
    const d1 = h.children.find((c) => c.spawnargs.includes('d1'))!
    const closed = new Promise((r) => victim.s.once('close', r))
    d1.kill('SIGKILL')
    await closed
    // The survivor's connection still works.
    const before = survivor.data().length
    survivor.s.write(GET('/d/again'))
    await waitFor(() => survivor.data().length > before && survivor.data().endsWith('}\n'))
    expect(survivor.data().slice(before)).toContain('x-baton-backend: d2')
    survivor.s.destroy()
    // Every new connection lands on d2, none fails.
    for (let i = 0; i < 20; i++) {
      const { responses } = await exchange(port, GET(`/d/after-${i}`, 'e', 'Connection: close\r\n'), { expect: 1 })
      expect(responses[0]!.status).toBe(200)
      expect(responses[0]!.headers['x-baton-backend']).toBe('d2')
    }
  })
})

describe.runIf(process.platform === 'linux' && native.available)('counters from the back end\'s feedback', () => {
  let h: Harness
  let b: Awaited<ReturnType<Harness['baton']>>

  beforeAll(async () => {
    h = harness()
    await h.backend('f1')
    b = await h.baton(`
listen: 127.0.0.1:0
services: [ { name: f, scheduler: wlc, servers: [ { name: f1, handoff: ${h.sock('f1')} } ] } ]
`)
  })
  afterAll(async () => { await h.close() })

  const counts = (): { active: number; inactive: number } => {
    const s = b.servers()[0]!
    return { active: s.active, inactive: s.inactive }
  }

  it('counts a request in flight as active, an idle keep-alive connection as inactive, and a closed one as gone', async () => {
    const port = b.ports[0]!
    const open = async (path: string): Promise<{ s: net.Socket; data: () => string }> => {
      const s = net.connect(port, '127.0.0.1')
      let data = ''
      s.on('data', (d) => { data += d.toString() })
      await new Promise((r) => s.once('connect', r))
      s.write(`GET ${path} HTTP/1.1\r\nHost: e\r\n\r\n`)
      return { s, data: () => data }
    }
    const slow = await open('/slow?delayMs=800')
    const idle = await open('/fast')
    await waitFor(() => idle.data().endsWith('}\n'))
    await waitFor(() => counts().active === 1 && counts().inactive === 1)
    await waitFor(() => slow.data().endsWith('}\n'), 3000)
    await waitFor(() => counts().active === 0 && counts().inactive === 2)
    // A new request on an idle connection makes it active again.
    idle.s.write('GET /again?delayMs=500 HTTP/1.1\r\nHost: e\r\n\r\n')
    await waitFor(() => counts().active === 1 && counts().inactive === 1)
    slow.s.destroy()
    idle.s.destroy()
    await waitFor(() => counts().active === 0 && counts().inactive === 0)
  })
})
