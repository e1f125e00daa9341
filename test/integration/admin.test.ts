// The admin API over real sockets: /servers, /metrics, /healthz, and nothing else; loopback or a Unix socket.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, fdCount, harness, waitFor, type Harness } from '../helpers/cluster'

describe.runIf(process.platform === 'linux' && native.available)('admin API', () => {
  let h: Harness
  let b: Awaited<ReturnType<Harness['baton']>>
  let sock: Awaited<ReturnType<Harness['baton']>>
  let base: string

  beforeAll(async () => {
    h = harness()
    await h.backend('a1')
    const services = `services: [ { name: s, scheduler: wlc, servers: [ { name: a1, handoff: ${h.sock('a1')}, weight: 3 } ] } ]`
    b = await h.baton(`listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\n${services}\n`)
    sock = await h.baton(`listen: 127.0.0.1:0\nadmin: { socket: ${path.join(h.dir, 'admin.sock')} }\n${services}\n`)
    base = `http://${b.admin!}`
  })
  afterAll(async () => { await h.close() })

  it('lists the real servers like ipvsadm -L', async () => {
    const res = await request(`${base}/servers`)
    expect(res.statusCode).toBe(200)
    expect(await res.body.json()).toEqual([{ service: 's', id: 'a1', method: 'handoff', configWeight: 3, fallback: false, state: 'up', up: true, weight: 3, overloaded: false, active: 0, inactive: 0, connections: 0, inBytes: 0, outBytes: 0, cps: 0, inBps: 0, outBps: 0 }])
  })

  it('exports Prometheus metrics with outcome counters', async () => {
    await exchange(b.ports[0]!, 'GET /x HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n', { expect: 1 })
    await exchange(b.ports[0]!, 'BAD\r\n\r\n')
    const res = await request(`${base}/metrics`)
    const text = await res.body.text()
    expect(res.headers['content-type']).toContain('text/plain')
    expect(text).toContain('baton_server_up{service="s",server="a1"} 1')
    expect(text).toContain('baton_server_weight{service="s",server="a1"} 3')
    expect(text).toMatch(/baton_connections_total\{outcome="handoff"\} [1-9]/)
    expect(text).toMatch(/baton_connections_total\{outcome="status-400"\} [1-9]/)
    expect(text).toContain('baton_pending_connections{state="head"} 0')
  })

  it('answers /healthz, 404 elsewhere, 405 to writes', async () => {
    expect((await request(`${base}/healthz`)).statusCode).toBe(200)
    const missing = await request(`${base}/nope`)
    expect(missing.statusCode).toBe(404)
    await missing.body.dump()
    const post = await request(`${base}/servers`, { method: 'POST', body: 'x' })
    expect(post.statusCode).toBe(405)
    await post.body.dump()
  })

  it('fails start-up with BATON_ERR_ADMIN_LISTEN when its port is taken, and leaves nothing open', async () => {
    const taken = b.admin!.split(':')[1]
    const fds = fdCount()
    await expect(h.baton(`listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:${taken} }\n` +
      `services: [ { name: s, scheduler: rr, servers: [ { name: a1, handoff: ${h.sock('a1')} } ] } ]\n`))
      .rejects.toMatchObject({ code: 'BATON_ERR_ADMIN_LISTEN' })
    await waitFor(() => fdCount() <= fds)
  })

  it('listens on a Unix socket when configured so', async () => {
    const agent = new Agent({ connect: { socketPath: sock.admin! } })
    const res = await request('http://localhost/healthz', { dispatcher: agent })
    expect(await res.body.text()).toBe('ok\n')
    await agent.close()
  })
})

// The admin socket follows the back ends' socket rules (net/unix-socket.ts): 0600 from creation even under
// umask 0, '@name' abstract with no file, a stale file replaced, a live one never taken, removed on close.
describe.runIf(process.platform === 'linux' && native.available)('admin API socket file', () => {
  let h: Harness
  const services = (): string => `services: [ { name: s, scheduler: rr, servers: [ { name: a1, handoff: ${h.sock('a1')} } ] } ]`
  const withAdmin = (socket: string): string => `listen: 127.0.0.1:0\nadmin: { socket: "${socket}" }\n${services()}\n`
  beforeAll(() => { h = harness() })
  afterAll(async () => { await h.close() })

  it('is 0600 under umask 0, replaces a stale file, never takes a live one, and is removed on close', async () => {
    const file = path.join(h.dir, 'adm.sock')
    fs.writeFileSync(path.join(h.dir, 'keep'), 'x')
    const umask = process.umask(0)
    let first: Awaited<ReturnType<Harness['baton']>>
    try {
      first = await h.baton(withAdmin(file))
    } finally {
      process.umask(umask)
    }
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(first.admin).toBe(file)
    expect(fs.readdirSync(h.dir).filter((n) => n.startsWith('.baton-'))).toEqual([])
    const fds = fdCount()
    const err = await h.baton(withAdmin(file)).then(() => undefined, (e: unknown) => e)
    expect(err).toMatchObject({ code: 'BATON_ERR_ADMIN_LISTEN' })
    expect((err as Error).message).toBe(`admin API: cannot listen on ${file}: another process is listening on it`)
    await waitFor(() => fdCount() <= fds)
    expect((await request('http://localhost/healthz', { dispatcher: new Agent({ connect: { socketPath: file } }) })).statusCode).toBe(200)
    expect(await h.baton(withAdmin(path.join(h.dir, 'keep'))).then(() => 'started', (e: Error) => e.message)).toContain('not a socket')
    expect(fs.readFileSync(path.join(h.dir, 'keep'), 'utf8')).toBe('x')
    await first.close()
    expect(fs.existsSync(file)).toBe(false)

    fs.writeFileSync(path.join(h.dir, 'stale.js'), `require('node:net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'))`)
    spawnSync(process.execPath, [path.join(h.dir, 'stale.js')])
    expect(fs.statSync(file).isSocket()).toBe(true) // a SIGKILLed admin's file
    const second = await h.baton(withAdmin(file))
    expect((await request('http://localhost/healthz', { dispatcher: new Agent({ connect: { socketPath: file } }) })).statusCode).toBe(200)
    await second.close()
  })

  it('keeps "@name" abstract: no file in the working directory', async () => {
    const name = `@baton-admin-${process.pid}`
    const cwd = process.cwd()
    process.chdir(h.dir)
    try {
      const b = await h.baton(withAdmin(name))
      expect(fs.readdirSync(h.dir).filter((n) => n.startsWith('@') || n.startsWith('.baton-'))).toEqual([])
      // Node 20 (libuv 1.46) pads an abstract name with NULs to the whole sun_path: shown as trailing '@'s.
      expect(fs.readFileSync('/proc/net/unix', 'utf8')).toMatch(new RegExp(` ${name}@*\n`))
      const res = await request('http://localhost/healthz', { dispatcher: new Agent({ connect: { socketPath: `\0${name.slice(1)}` } }) })
      expect(res.statusCode).toBe(200)
      await res.body.dump()
      await b.close()
    } finally {
      process.chdir(cwd)
    }
  })
})
