// Per-request routing on relayed keep-alive connections (issue 12): a forwarder (pipe, then splice) driven
// by a small real sink against real HTTP servers. Every request after the first is judged before it reaches
// the server; one that moves is returned byte for byte with everything after it, once the responses before
// it went down whole and in order; the returned client is then forwarded anew, as the data path does.
import { randomBytes } from 'node:crypto'
import net from 'node:net'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { native } from '../../src/native/binding'
import type { Forwarder } from '../../src/forward/types'
import { FdListener, connectClient, fdCount, linux, type TestConn, type TestServer } from './relay-helpers'
import {
  OPTS, RerouteSink, get, httpUpstream, makeForwarder, post, postChunked, rawUpstream, reader, reforwardedConn,
  watchedConn, type Returned, type Upstream,
} from './relay-reroute-helpers'

const methods = (process.env.RELAY_REROUTE_METHODS ?? 'pipe,splice').split(',') as Array<'pipe' | 'splice'>

describe.runIf(linux && native.available).each(methods)('%s relay, watched', (method) => {
  let listener: FdListener
  let port: number
  let a: Upstream
  let b: Upstream
  let startFds: number

  beforeAll(async () => {
    startFds = fdCount()
    listener = new FdListener()
    port = await listener.listen()
    a = await httpUpstream('A')
    b = await httpUpstream('B')
  })
  afterAll(async () => {
    await a.close()
    await b.close()
    await listener.close()
  })

  /** A client whose first bytes are `first`, forwarded (watched unless told) to `to`. */
  async function open (first: string, to: Upstream | number = a, watch = true) {
    const sink = new RerouteSink()
    sink.serviceB.add(b.port)
    const fwd = makeForwarder(method, sink)
    const client = await connectClient(port)
    const r = reader(client)
    client.write(first)
    const acc = await listener.next()
    const conn = watchedConn(typeof to === 'number' ? to : to.port, acc, { watch })
    fwd.forward(conn)
    return { sink, fwd, client, r, conn }
  }

  function reset (): void { a.seen.length = 0; b.seen.length = 0; a.bodies.length = 0; b.bodies.length = 0 }

  it('sequential: requests that stay are forwarded, the one that moves comes back byte for byte', async () => {
    reset()
    const { sink, fwd, client, r } = await open(get('/a1'))
    await r.until('A:GET /a1 0;')
    client.write(get('/a2'))
    await r.until('A:GET /a2 0;')
    const moving = post('/b1', 'hello')
    client.write(moving)
    await sink.until(() => sink.returns.length === 1)
    expect(sink.log).toEqual(['next GET /a2', 'next POST /b1', 'closed 0', 'returned'])
    const ret = sink.returns[0]!
    expect(ret.consumed.toString('latin1')).toBe(moving)
    expect(ret.reason).toBe('reroute')
    expect(a.seen).toEqual(['GET /a1 0', 'GET /a2 0'])
    // The data path forwards it anew: B answers, and later B requests stay with B.
    again(fwd, b.port, ret)
    await r.until('B:POST /b1 5;')
    client.write(get('/b2'))
    await r.until('B:GET /b2 0;')
    client.write(get('/a3'))
    await sink.until(() => sink.returns.length === 2)
    expect(sink.returns[1]!.consumed.toString('latin1')).toBe(get('/a3'))
    expect(b.seen).toEqual(['POST /b1 5', 'GET /b2 0'])
    expect(a.seen).toEqual(['GET /a1 0', 'GET /a2 0'])
    expect(r.text().split('HTTP/1.1 200').length - 1).toBe(4)
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('pipelined with Content-Length and chunked bodies: /b never reaches A, responses before it arrive in order', async () => {
    reset()
    const before = post('/a1', 'x'.repeat(1000)) + postChunked('/a2', ['abc', 'defgh'], 'x-t: 1\r\n') + get('/a3')
    const after = postChunked('/b1', ['12345', '6'], 'x-t: 2\r\n') + get('/a4') + post('/b2', 'zz')
    const { sink, fwd, client, r } = await open(before + after)
    await sink.until(() => sink.returns.length === 1)
    expect(a.seen).toEqual(['POST /a1 1000', 'POST /a2 8', 'GET /a3 0'])
    expect(a.bodies[1]!.toString()).toBe('abcdefgh')
    const text = await r.until('A:GET /a3 0;')
    const i1 = text.indexOf('A:POST /a1 1000;')
    const i2 = text.indexOf('A:POST /a2 8;')
    const i3 = text.indexOf('A:GET /a3 0;')
    expect(i1).toBeGreaterThan(0)
    expect(i2).toBeGreaterThan(i1)
    expect(i3).toBeGreaterThan(i2)
    expect(text.endsWith('A:GET /a3 0;')).toBe(true)
    const ret = sink.returns[0]!
    expect(ret.consumed.toString('latin1')).toBe(after)
    expect(sink.log).toEqual(['next POST /a2', 'next GET /a3', 'next POST /b1', 'closed 0', 'returned'])
    // Forwarded anew to B: B takes /b1, the pipelined /a4 moves again with /b2 behind it.
    again(fwd, b.port, ret)
    await sink.until(() => sink.returns.length === 2)
    expect(b.seen).toEqual(['POST /b1 6'])
    expect(sink.returns[1]!.consumed.toString('latin1')).toBe(get('/a4') + post('/b2', 'zz'))
    await r.until('B:POST /b1 6;')
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('HEAD, 204, 304, 103 and 100-continue are framed without bodies; a chunked response with trailers ends', async () => {
    reset()
    const reqs = `HEAD /a1 HTTP/1.1\r\nHost: t\r\n\r\n` + get('/s204') + get('/s304') + get('/early') + get('/chunked') +
      `POST /a5 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc`
    const moving = get('/b9')
    const { sink, fwd, client, r } = await open(reqs + moving)
    await sink.until(() => sink.returns.length === 1)
    expect(a.seen).toEqual(['HEAD /a1 0', 'GET /s204 0', 'GET /s304 0', 'GET /early 0', 'GET /chunked 0', 'POST /a5 3'])
    const text = await r.until('A:POST /a5 3;')
    expect(text).toContain('HTTP/1.1 204')
    expect(text).toContain('HTTP/1.1 304')
    expect(text).toContain('HTTP/1.1 103')
    expect(text).toContain('x-end: yes')
    expect(text.endsWith('A:POST /a5 3;')).toBe(true)
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(moving)
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('a move waits for the response in flight; a later head sent in pieces waits to be whole', async () => {
    reset()
    const { sink, fwd, client, r } = await open(get('/aslow'))
    await r.until('A:')
    const moving = get('/b1', 'x-pad: 1\r\n')
    client.write(moving.slice(0, 10))
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(sink.log).toEqual([])
    client.write(moving.slice(10))
    await sink.until(() => sink.returns.length === 1)
    expect(r.text().endsWith('A:GET /aslow 0;') || (await r.until('A:GET /aslow 0;')).endsWith('A:GET /aslow 0;')).toBe(true)
    expect(sink.log).toEqual(['next GET /b1', 'closed 0', 'returned'])
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(moving)
    expect(a.seen).toEqual(['GET /aslow 0'])
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('a large response before the move arrives whole', async () => {
    reset()
    const { sink, fwd, client, r } = await open(get('/large') + get('/b1'))
    await sink.until(() => sink.returns.length === 1)
    await r.until('A:GET /large 0;')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(r.text().endsWith('A:GET /large 0;\r\n0\r\n\r\n')).toBe(true)
    expect(r.text().split('a').length).toBeGreaterThan(1 << 20)
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('4 MiB each way (Content-Length) stay; the move after them is exact', async () => {
    reset()
    const upload = post('/a-up', 'u'.repeat(4 << 20))
    const { sink, fwd, client, r } = await open(upload + get('/alen') + get('/b1'))
    await sink.until(() => sink.returns.length === 1)
    expect(a.seen).toEqual([`POST /a-up ${4 << 20}`, 'GET /alen 0'])
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(get('/b1'))
    await r.until('A:GET /alen 0;')
    expect(r.text().endsWith('A:GET /alen 0;')).toBe(true)
    expect(r.text().length).toBeGreaterThan(4 << 20)
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('a 64 MiB upload and a chunked one in 1 MiB chunks arrive byte for byte; the move after them is exact', async () => {
    reset()
    const big = randomBytes(64 << 20)
    const chunk = randomBytes(1 << 20)
    const head = `POST /a-big HTTP/1.1\r\nHost: t\r\nContent-Length: ${big.length}\r\n\r\n`
    const chunked = Buffer.concat([
      Buffer.from('POST /a-chunks HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'),
      ...[0, 1, 2].flatMap(() => [Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
      Buffer.from('0\r\n\r\n'),
    ])
    const { sink, fwd, client, r } = await open(head)
    client.write(big)
    client.write(chunked)
    client.write(get('/b1'))
    await sink.until(() => sink.returns.length === 1)
    expect(a.seen).toEqual([`POST /a-big ${big.length}`, `POST /a-chunks ${3 * chunk.length}`])
    expect(a.bodies[0]!.equals(big)).toBe(true)
    expect(a.bodies[1]!.equals(Buffer.concat([chunk, chunk, chunk]))).toBe(true)
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(get('/b1'))
    // splice: the bodies went through a pipe (kernel to kernel), which went back to the pool
    if (method === 'splice') expect((fwd as unknown as { stats: () => { pooled: number } }).stats().pooled).toBeGreaterThan(0)
    await r.until('A:POST /a-chunks')
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('large pipelined responses (Content-Length, chunked) arrive exactly as the server sent them before a move', async () => {
    reset()
    const reqs = get('/alen') + get('/large') + get('/alen') + `HEAD /alen HTTP/1.1\r\nHost: t\r\n\r\n` + get('/large')
    const direct = await directText(a.port, reqs, 'A:GET /large 0;\r\n0\r\n\r\n', 2)
    reset()
    const { sink, fwd, client, r } = await open(reqs + get('/b1'))
    await sink.until(() => sink.returns.length === 1)
    await r.until('A:GET /large 0;\r\n0\r\n\r\n', 2)
    const strip = (t: string): string => t.replace(/\r\nDate: [^\r]*/g, '')
    expect(r.text().length).toBe(direct.length)
    expect(strip(r.text()) === strip(direct)).toBe(true)
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(get('/b1'))
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('300 sequential requests stay, 50 pipelined stay, then one moves', async () => {
    reset()
    const { sink, fwd, client, r } = await open(get('/a0'))
    for (let i = 1; i <= 300; i++) {
      client.write(i % 2 === 0 ? get(`/a${i}`) : post(`/a${i}`, 'x'.repeat(i)))
      await r.until(`/a${i} `)
    }
    let burst = ''
    for (let i = 0; i < 50; i++) burst += i % 3 === 0 ? postChunked(`/ap${i}`, ['ab', 'c']) : get(`/ap${i}`)
    client.write(burst + get('/b1'))
    await sink.until(() => sink.returns.length === 1)
    expect(a.seen.length).toBe(351)
    expect(a.seen.some((l) => l.includes('/b'))).toBe(false)
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(get('/b1'))
    await r.until('A:GET /ap49 0;')
    expect(r.text().split('HTTP/1.1 200').length - 1).toBe(351)
    client.destroy()
    closeReturned(sink)
    await fwd.close()
  })

  it('a response framed by close: the connection cannot move and ends as an unwatched relay would', async () => {
    const raw = await rawUpstream('HTTP/1.1 200 OK\r\nx-server: raw\r\n\r\nuntil close', true)
    const { sink, fwd, client, r } = await open(get('/a1') + get('/b1'), raw.port)
    await r.ended
    expect(r.text()).toBe('HTTP/1.1 200 OK\r\nx-server: raw\r\n\r\nuntil close')
    client.end()
    await sink.until(() => sink.stats.length === 1)
    expect(sink.log).toEqual(['next GET /b1', 'closed 0'])
    expect(raw.seen).toEqual([get('/a1')])
    client.destroy()
    await fwd.close()
    await raw.close()
  })

  it('an Upgrade answered with 101 stops watching: later bytes go through unjudged', async () => {
    reset()
    const up = `GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n`
    const { sink, fwd, client, r } = await open(get('/a1') + up + get('/b1'))
    await r.until(get('/b1')) // echoed by the upgraded server: it went through without a verdict
    client.write(get('/b2'))
    await r.until(get('/b2'))
    expect([...a.seen].sort()).toEqual(['GET /a1 0', 'GET /ws upgrade'])
    expect(sink.log).toEqual(['next GET /ws'])
    client.end()
    await sink.until(() => sink.stats.length === 1)
    expect(sink.log).toEqual(['next GET /ws', 'closed 0'])
    client.destroy()
    await fwd.close()
  })

  it('an Upgrade answered without 101: the next request is judged again', async () => {
    reset()
    const up = `GET /a-no-upgrade HTTP/1.1\r\nHost: t\r\nUpgrade: nothing\r\n\r\n`
    const raw = await rawUpstream('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', false)
    const { sink, fwd, client, r } = await open(up + get('/b1'), raw.port)
    await sink.until(() => sink.returns.length === 1)
    expect(await r.until('ok')).toBe('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(get('/b1'))
    expect(raw.seen).toEqual([up])
    client.destroy()
    closeReturned(sink)
    await fwd.close()
    await raw.close()
  })

  it('a bad later head moves with its reject; a head larger than maxHeaderBytes moves as 431', async () => {
    reset()
    const bad = 'GET /a2 HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n'
    const { sink, fwd, client, r } = await open(get('/a1') + bad)
    await sink.until(() => sink.returns.length === 1)
    expect(sink.log).toEqual(['next reject 400', 'closed 0', 'returned'])
    expect(sink.returns[0]!.consumed.toString('latin1')).toBe(bad)
    await r.until('A:GET /a1 0;')
    client.destroy()
    closeReturned(sink)
    await fwd.close()
    const big = `GET /a3 HTTP/1.1\r\nHost: t\r\nx-big: ${'y'.repeat(OPTS.maxHeaderBytes)}\r\n\r\n`
    const o2 = await open(get('/a1'))
    await o2.r.until('A:GET /a1 0;')
    o2.client.write(big)
    await o2.sink.until(() => o2.sink.returns.length === 1)
    expect(o2.sink.log).toEqual(['next reject 431', 'closed 0', 'returned'])
    expect(o2.sink.returns[0]!.consumed.length).toBeGreaterThanOrEqual(OPTS.maxHeaderBytes)
    expect(big.startsWith(o2.sink.returns[0]!.consumed.toString('latin1'))).toBe(true)
    expect(a.seen).toEqual(['GET /a1 0', 'GET /a1 0'])
    o2.client.destroy()
    closeReturned(o2.sink)
    await o2.fwd.close()
  })

  it.runIf(method === 'pipe')('a client that came as a net.Socket (no addon) goes back as that socket, paused', async () => {
    reset()
    const server = net.createServer((s) => { s.pause(); s.once('readable', () => { accepted(s) }) })
    let accepted!: (s: net.Socket) => void
    const got = new Promise<net.Socket>((resolve) => { accepted = resolve })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const sink = new RerouteSink()
    sink.serviceB.add(b.port)
    const fwd = makeForwarder(method, sink)
    const client = await connectClient((server.address() as net.AddressInfo).port)
    const r = reader(client)
    client.write(get('/a1') + get('/b1'))
    const s = await got
    const consumed = s.read() as Buffer // the dispatcher's own read: both requests
    fwd.forward(watchedConn(a.port, { fd: -1, clientAddress: '127.0.0.1', clientPort: 1, localAddress: '127.0.0.1', localPort: 2 },
      { socket: s, consumed }))
    await sink.until(() => sink.returns.length === 1)
    const ret = sink.returns[0]!
    expect(ret.client.fd).toBe(-1)
    expect(ret.client.socket).toBe(s)
    expect(ret.consumed.toString('latin1')).toBe(get('/b1'))
    again(fwd, b.port, ret)
    await r.until('B:GET /b1 0;')
    expect(r.text().indexOf('A:GET /a1 0;')).toBeGreaterThan(0)
    client.destroy()
    await fwd.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it('watch=false relays as before: no judgement, /b reaches A', async () => {
    reset()
    const { sink, fwd, client, r } = await open(get('/a1') + get('/b1'), a, false)
    await r.until('A:GET /b1 0;')
    expect(a.seen).toEqual(['GET /a1 0', 'GET /b1 0'])
    client.end()
    await sink.until(() => sink.stats.length === 1)
    expect(sink.log).toEqual(['closed 0'])
    client.destroy()
    await fwd.close()
  })

  it('a bad chunk line resets the connection (EPROTO) rather than guess where the next request starts', async () => {
    reset()
    const bad = 'POST /a1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n' + get('/b1')
    const { sink, fwd, client } = await open(bad)
    await sink.until(() => sink.stats.length === 1)
    expect(sink.stats[0]!.errno).toBe(71)
    expect(sink.returns).toEqual([])
    client.destroy()
    await fwd.close()
  })

  it('a client that resets while its next head waits, or while it moves, ends the relay once; nothing returns', async () => {
    reset()
    const o1 = await open(get('/a1'))
    await o1.r.until('A:GET /a1 0;')
    o1.client.write('GET /a2 HTT') // half a head: it waits
    await new Promise((resolve) => setTimeout(resolve, 50))
    o1.client.resetAndDestroy()
    await o1.sink.until(() => o1.sink.stats.length === 1)
    expect(o1.sink.stats[0]!.errno).not.toBe(0)
    const o2 = await open(get('/aslow') + get('/b1')) // moving, waiting for the slow response
    await waitUntil(() => o2.sink.log.includes('next GET /b1'))
    o2.client.resetAndDestroy()
    await o2.sink.until(() => o2.sink.stats.length === 1)
    expect(o2.sink.returns).toEqual([])
    expect(a.seen.filter((l) => l.includes('/b'))).toEqual([])
    await o1.fwd.close()
    await o2.fwd.close()
  })

  it('close() while a connection moves or waits for a head resets it (ECANCELED)', async () => {
    reset()
    const { sink, fwd, client } = await open(get('/aslow') + get('/b1'))
    await waitUntil(() => sink.log.includes('next GET /b1')) // moving: the slow response is still on its way
    await fwd.close()
    await sink.until(() => sink.stats.length === 1)
    expect(sink.stats[0]!.errno).toBe(125)
    expect(sink.returns).toEqual([])
    client.destroy()
  })

  it('the idle timeout ends a relay whose next head never completes', async () => {
    reset()
    const sink = new RerouteSink()
    const fwd = makeForwarder(method, sink, { ...OPTS, idleTimeoutMs: 150 })
    const client = await connectClient(port)
    const r = reader(client)
    client.on('error', () => {})
    client.write(get('/a1'))
    fwd.forward(watchedConn(a.port, await listener.next()))
    await r.until('A:GET /a1 0;')
    client.write('GET /a2 HTTP/1.1\r\nHost')
    await sink.until(() => sink.stats.length === 1)
    expect(sink.stats[0]!.errno).toBe(110)
    expect(a.seen).toEqual(['GET /a1 0'])
    client.destroy()
    await fwd.close()
  })

  it('100 connections that each move once leave nothing behind', async () => {
    reset()
    const sink = new RerouteSink()
    sink.serviceB.add(b.port)
    const fwd = makeForwarder(method, sink)
    const clients = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
      const client = await connectClient(port)
      const r = reader(client)
      client.write(get(`/a${i}`) + get(`/b${i}`))
      fwd.forward(watchedConn(a.port, await listener.next()))
      return { client, r }
    }))
    await sink.until(() => sink.returns.length === 100)
    for (const ret of sink.returns) again(fwd, b.port, ret)
    await Promise.all(clients.map(async ({ r }, i) => await r.until(`B:GET /b${i} 0;`)))
    for (const { client } of clients) client.destroy()
    await sink.until(() => sink.stats.length === 200)
    expect(a.seen.length).toBe(100)
    expect(b.seen.length).toBe(100)
    await fwd.close()
  })

  it('leaves no descriptor behind', async () => {
    await new Promise((resolve) => setTimeout(resolve, 100))
    // the listener's and the two upstream servers' (their connections are destroyed by the tests)
    expect(fdCount()).toBe(startFds + 3)
  })
})

/** What the server sends for `reqs` on a direct connection, read until `marker` came `count` times. */
async function directText (port: number, reqs: string, marker: string, count: number): Promise<string> {
  const c = await connectClient(port)
  const r = reader(c)
  c.write(reqs)
  const text = await r.until(marker, count)
  c.destroy()
  return text
}

async function waitUntil (cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((resolve) => setTimeout(resolve, 5))
}

/** Returned clients not forwarded anew: close them (the data path would answer or forward them). */
function closeReturned (sink: RerouteSink): void {
  for (const r of sink.returns) {
    if (reforwarded.has(r)) continue
    if (r.client.socket !== undefined) r.client.socket.destroy()
    else if (r.client.fd >= 0) native.close(r.client.fd)
  }
}

/** Forwards a returned client anew (its new relay owns it from here). */
function again (fwd: Forwarder<TestConn, TestServer>, port: number, r: Returned): void {
  reforwarded.add(r)
  fwd.forward(reforwardedConn(port, r))
}
const reforwarded = new WeakSet<object>()
