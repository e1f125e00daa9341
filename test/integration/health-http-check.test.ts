// The HTTP check conversation (src/health/http-check.ts) against a raw TCP server that answers as each case
// says: the connection is kept between checks and counted; Content-Length, chunked and close-framed bodies;
// HEAD; Connection: close; a kept connection the server closes just as a request goes out (retried once on
// a fresh one); a failed check resets the connection; no fd is left after close().
import fs from 'node:fs'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HttpCheckConnection, type HttpCheck } from '../../src/health/http-check'

type Answer = (req: string, nth: number) => string | null // null: close without answering
const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`
const fds = (): number => fs.readdirSync('/proc/self/fd').length

describe('HTTP check connection', () => {
  let answer: Answer = () => ok('ok')
  let accepted = 0
  const requests: string[] = []
  const server = net.createServer((s) => {
    accepted++
    let nth = 0
    let buf = ''
    s.on('error', () => {})
    s.on('data', (d) => {
      buf += d.toString('latin1')
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const req = buf.slice(0, end + 4)
        buf = buf.slice(end + 4)
        requests.push(req)
        const a = answer(req, nth++)
        if (a === null) { s.destroy(); return }
        s.write(a)
        if (/connection: close/i.test(a) || a.startsWith('HTTP/1.0')) s.end()
      }
    })
  })
  let addr = { host: '127.0.0.1', port: 0 }
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    addr = { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port }
  })
  afterAll(async () => { await new Promise((resolve) => server.close(resolve)) })

  const get = (over: Partial<HttpCheck> = {}): HttpCheck =>
    ({ method: 'GET', path: '/healthz', host: undefined, expect: undefined, body: undefined, ...over })

  async function run (n: number, http: HttpCheck, a: Answer): Promise<{ results: string[]; conns: number }> {
    answer = a
    const before = accepted
    const conn = new HttpCheckConnection()
    const results: string[] = []
    for (let i = 0; i < n; i++) results.push(await conn.check(addr, http, 1000))
    conn.close()
    return { results, conns: accepted - before }
  }

  it('keeps one connection for many checks, sends the request line, Host and user-agent', async () => {
    requests.length = 0
    expect(await run(5, get(), () => ok('ok'))).toEqual({ results: ['', '', '', '', ''], conns: 1 })
    expect(requests[0]).toBe(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${addr.port}\r\nUser-Agent: baton-check\r\nAccept: */*\r\n\r\n`)
  })

  it('frames chunked and close-delimited bodies, and finds the substring in them', async () => {
    const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nall \r\n4\r\ngood\r\n0\r\n\r\n'
    expect(await run(3, get({ body: 'all good' }), () => chunked)).toEqual({ results: ['', '', ''], conns: 1 })
    const closeFramed = 'HTTP/1.0 200 OK\r\n\r\nall good, then close'
    const r = await run(2, get({ body: 'all good' }), () => closeFramed)
    expect(r.results).toEqual(['', ''])
    expect(r.conns).toBe(2) // HTTP/1.0 without keep-alive: a connection per check
    expect((await run(1, get({ body: 'nope' }), () => ok('all good'))).results[0]).toBe('body does not contain "nope"')
  })

  it('HEAD: no body is read even with a Content-Length; the connection is kept', async () => {
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n'
    expect(await run(3, get({ method: 'HEAD' }), () => head)).toEqual({ results: ['', '', ''], conns: 1 })
  })

  it('reconnects when the server says Connection: close, and after any failed check', async () => {
    expect(await run(3, get(), () => ok('ok', 'Connection: close\r\n'))).toEqual({ results: ['', '', ''], conns: 3 })
    let n = 0
    const flaky: Answer = () => (++n === 2 ? 'HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n' : ok('ok'))
    const r = await run(4, get({ expect: [200] }), flaky) // the 2nd check fails: a new connection after it
    expect(r.results).toEqual(['', 'status 500, expected 200', '', ''])
    expect(r.conns).toBe(2)
  })

  it('retries once on a fresh connection when a kept one closes before any answer', async () => {
    const r = await run(4, get(), (_req, nth) => (nth === 1 ? null : ok('ok'))) // each connection dies at its 2nd request
    expect(r.results).toEqual(['', '', '', ''])
    expect(r.conns).toBe(4) // checks 2, 3 and 4 each found their kept connection closed, and retried
    expect((await run(1, get(), () => null)).results[0]).toBe('connection closed without an answer') // a fresh one: no retry
  })

  it('fails a refused connect and a bad response, and leaves no fd behind', async () => {
    const before = fds()
    const closed = await new Promise<number>((resolve) => {
      const t = net.createServer().listen(0, '127.0.0.1', () => { const p = (t.address() as net.AddressInfo).port; t.close(() => resolve(p)) })
    })
    const conn = new HttpCheckConnection()
    expect(await conn.check({ host: '127.0.0.1', port: closed }, get(), 1000)).toBe('connect failed: ECONNREFUSED')
    answer = () => 'NOT HTTP\r\n\r\n'
    expect(await conn.check(addr, get(), 1000)).toMatch(/^bad HTTP response/)
    answer = () => ok('ok')
    expect(await conn.check(addr, get(), 1000)).toBe('')
    conn.close()
    for (let i = 0; i < 50 && fds() !== before; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(fds()).toBe(before)
  })
})
