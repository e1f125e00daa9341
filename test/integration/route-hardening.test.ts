// Hostile requests against a running switch, over real sockets, with demo back ends that echo what their
// Node application saw: path parameters on dot segments (Tomcat's `..;`), repeated header fields (routes
// must match the value Node hands the application), and patterns that backtrack exponentially in RegExp.
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, harness, type Harness, type RawResponse } from '../helpers/cluster'

const GET = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: example.com\r\n${extra}\r\n`

interface Echo { backend: string; url: string; via: string; headers: Record<string, string> }

async function ask (port: number, raw: string): Promise<RawResponse> {
  const { responses } = await exchange(port, raw, { expect: 1 })
  expect(responses).toHaveLength(1)
  return responses[0]!
}

const echo = (r: RawResponse): Echo => JSON.parse(r.body) as Echo

describe.runIf(process.platform === 'linux' && native.available)('hostile requests through the switch', () => {
  let h: Harness
  let port: number

  beforeAll(async () => {
    h = harness()
    await Promise.all(['pub1', 'adm1', 'up1', 'can1', 're1', 'k1', 'k2', 'def1'].map((n) => h.backend(n)))
    const svc = (name: string, ...servers: string[]): string =>
      `  - { name: ${name}, scheduler: rr, servers: [ ${servers.map((s) => `{ name: ${s}, handoff: ${h.sock(s)} }`).join(', ')} ] }`
    const b = await h.baton(`
listen: 127.0.0.1:0
services:
${svc('public', 'pub1')}
${svc('admin', 'adm1')}
${svc('uploads', 'up1')}
${svc('canary', 'can1')}
${svc('re', 're1')}
  - { name: keyed, scheduler: dh, key: "header:x-user", servers: [ { name: k1, handoff: ${h.sock('k1')} }, { name: k2, handoff: ${h.sock('k2')} } ] }
${svc('default', 'def1')}
routes:
  - { name: public, match: { path: /public/ }, service: public }
  - { name: admin, match: { path: /admin/ }, service: admin }
  - { name: uploads, match: { header: [ { name: content-type, regex: "^multipart/" } ] }, service: uploads }
  - { name: canary, match: { header: { x-canary: "yes" } }, service: canary }
  - { name: redos, match: { pathRegex: "^/re/(a+)+$" }, service: re }
  - { name: redos-header, match: { header: [ { name: x-q, regex: "^(a|aa)+$" } ] }, service: re }
  - { name: keyed, match: { path: /keyed/ }, service: keyed }
  - { name: default, service: default }
`)
    port = b.ports[0]!
  })
  afterAll(async () => { await h.close() })

  describe('item 3: path parameters on dot segments', () => {
    it.each([
      '/public/..;/admin/x', '/public/..;jsessionid=1/admin/x', '/public/.;/admin/x', '/public/.;x=1/../admin/x',
      '/public/%2e%2e;/admin/x', '/public/%2E%2E;/admin/x', '/public/.%2e;/admin/x', '/public/%2e;/x',
      '/public/..%3B/admin/x', '/public/..%3b/admin/x', '/public/%2e%2e%3b/admin/x', '/public/..;a;b/admin/x',
      '/public/..;', '/public/.;', '/public/..%3Bx', '/..;/admin/x',
      '/public/;x/../admin/x', '/;x/admin/x', '//admin/x', '/public//admin/x', '/public/x;y/..;/admin/x',
    ])('refuses %s with 400', async (path) => {
      const r = await ask(port, GET(path))
      expect(r.status).toBe(400)
      expect(r.headers.connection).toBe('close')
      expect(r.headers['x-baton-error']).toBe('BATON_ERR_BAD_REQUEST')
    })

    it.each([
      ['/public;jsessionid=1/x', 'pub1'], // Tomcat reads /public/x
      ['/admin;jsessionid=1/secret', 'adm1'], // ... and /admin/secret: it must not reach the default service
      ['/admin%3Bx/secret', 'adm1'],
      ['/public/a;v=1/b;w', 'pub1'],
      ['/a;v=1/b', 'def1'],
      ['/public/...;x/y', 'pub1'],
    ])('routes %s without its parameters (to %s); the back end gets the target as sent', async (path, backend) => {
      const r = await ask(port, GET(path))
      expect(r.status).toBe(200)
      expect(r.headers['x-baton-backend']).toBe(backend)
      expect(echo(r).url).toBe(path)
    })
  })

  describe('item 4: header routes match the value Node gives the application', () => {
    it('a repeated Content-Type is the first field (Node drops the rest): no multipart route', async () => {
      const r = await ask(port, GET('/x', 'Content-Type: application/json\r\nContent-Type: multipart/form-data; boundary=z\r\n'))
      expect(r.headers['x-baton-backend']).toBe('def1')
      expect(echo(r).headers['content-type']).toBe('application/json')
      const m = await ask(port, GET('/x', 'Content-Type: multipart/form-data; boundary=z\r\ncontent-type: application/json\r\n'))
      expect(m.headers['x-baton-backend']).toBe('up1')
      expect(echo(m).headers['content-type']).toBe('multipart/form-data; boundary=z')
    })

    it('a repeated X-Canary is joined with ", " (Node joins them): "no, yes" is not "yes"', async () => {
      const r = await ask(port, GET('/x', 'X-Canary: no\r\nX-Canary: yes\r\n'))
      expect(r.headers['x-baton-backend']).toBe('def1')
      expect(echo(r).headers['x-canary']).toBe('no, yes')
      const twice = await ask(port, GET('/x', 'X-Canary: yes\r\nx-canary: yes\r\n'))
      expect(twice.headers['x-baton-backend']).toBe('def1')
      expect(echo(twice).headers['x-canary']).toBe('yes, yes')
      const once = await ask(port, GET('/x', 'X-Canary: yes\r\n'))
      expect(once.headers['x-baton-backend']).toBe('can1')
      expect(echo(once).headers['x-canary']).toBe('yes')
    })

    it('a header: key is the joined value: repeated fields land where one field with the joined value lands', async () => {
      for (const [a, b] of [['alice', 'bob'], ['carol', 'dave'], ['erin', 'frank'], ['x', 'y']]) {
        const split = await ask(port, GET('/keyed/', `X-User: ${a}\r\nX-User: ${b}\r\n`))
        const joined = await ask(port, GET('/keyed/', `X-User: ${a}, ${b}\r\n`))
        expect(echo(split).headers['x-user']).toBe(`${a}, ${b}`)
        expect(split.headers['x-baton-backend']).toBe(joined.headers['x-baton-backend'])
      }
    })
  })

  describe('item 5: patterns run in linear time', () => {
    it('answers the ReDoS path and header at once, and the event loop keeps serving', async () => {
      const loop = monitorEventLoopDelay({ resolution: 10 })
      loop.enable()
      const t0 = performance.now()
      const evil = [
        ask(port, GET(`/re/${'a'.repeat(29)}!`)),
        ask(port, GET(`/re/${'a'.repeat(5000)}!`)),
        ask(port, GET('/x', `X-Q: ${'a'.repeat(4000)}!\r\n`)),
      ]
      const normal = ask(port, GET('/public/ok'))
      const [r29, r5000, rq] = await Promise.all(evil)
      const ok = await normal
      const elapsedMs = performance.now() - t0
      loop.disable()
      for (const r of [r29!, r5000!, rq!]) expect(r.headers['x-baton-backend']).toBe('def1') // no match: the default route
      expect(ok.headers['x-baton-backend']).toBe('pub1')
      expect(elapsedMs).toBeLessThan(1000) // RegExp needs seconds for the 29 a's alone, forever for the rest
      expect(loop.max / 1e6).toBeLessThan(1000)
      const match = await ask(port, GET(`/re/${'a'.repeat(5000)}`))
      expect(match.headers['x-baton-backend']).toBe('re1')
    })
  })
})
