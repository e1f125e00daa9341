// Per-request routing on kept-alive connections (issue 12), end to end: a real dispatcher on 127.0.0.1:0,
// real back-end processes (test/fixtures/echo-backend.js on baton/backend) that hand a connection back when
// a later request routes elsewhere, real client sockets. Every check reads what the back ends' applications
// saw (their own request logs), not only what the client got.
import { fork, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import net from 'node:net'
import path from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Baton } from '../../src/baton'
import { parseConfig } from '../../src/config/load'
import { native } from '../../src/native/binding'
import { fdCount, harness, parseResponses, ROOT, waitFor, type Harness, type RawResponse } from '../helpers/cluster'

const FIXTURE = path.join(ROOT, 'test/fixtures/echo-backend.js')
const NAMES = ['p1', 'a1', 'x1', 'x2', 's1'] as const
type Name = typeof NAMES[number]

interface Echo {
  backend: string; n: number; method: string; url: string; httpVersion: string; rawHeaders: string[]
  trailers: Record<string, string>; sha256: string; length: number; client: string; service?: string; connId?: number
  pad: string
}
interface Seen { n: number; method: string; url: string; sha256: string; length: number; client: string }

const GET = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: example.com\r\n${extra}\r\n`
const sha256 = (b: Buffer | string): string => crypto.createHash('sha256').update(b).digest('hex')
/** Response bodies are read as latin1 (one char per byte); the JSON in them is UTF-8. */
const echo = (r: RawResponse): Echo => JSON.parse(Buffer.from(r.body, 'latin1').toString('utf8')) as Echo
const backendOf = (r: RawResponse): string | undefined => r.headers['x-baton-backend']

/** One kept-alive client connection: write when you like, read the next n responses. */
class Client {
  readonly s: net.Socket
  raw = ''
  #taken = 0
  closed = false
  constructor (port: number) {
    this.s = net.connect(port, '127.0.0.1')
    this.s.on('data', (d) => { this.raw += d.toString('latin1') })
    this.s.on('close', () => { this.closed = true })
    this.s.on('error', () => {})
  }

  /** The client's own address and port, as back ends should see it (kept: a closed socket forgets it). */
  local = ''

  static async open (port: number): Promise<Client> {
    const c = new Client(port)
    await new Promise((resolve) => c.s.once('connect', resolve))
    c.local = `${c.s.localAddress!}:${c.s.localPort!}`
    return c
  }

  send (data: string | Buffer): void { this.s.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data) }

  /** The next n responses (Content-Length framed); rejects with what arrived if they do not in time. */
  async next (n: number, timeoutMs = 5000): Promise<RawResponse[]> {
    try {
      await waitFor(() => parseResponses(this.raw).length >= this.#taken + n || this.closed, timeoutMs)
    } catch {
      throw new Error(`expected ${n} more responses, have ${JSON.stringify(this.raw)}`)
    }
    const all = parseResponses(this.raw)
    const out = all.slice(this.#taken, this.#taken + n)
    this.#taken += out.length
    return out
  }

  async roundTrip (req: string | Buffer): Promise<RawResponse> {
    this.send(req)
    const [r] = await this.next(1)
    if (r === undefined) throw new Error(`no response; have ${JSON.stringify(this.raw)}`)
    return r
  }

  async close (): Promise<void> {
    if (this.closed) return
    const done = new Promise((resolve) => this.s.once('close', resolve))
    this.s.destroy()
    await done
  }
}

describe.runIf(process.platform === 'linux' && native.available)('keep-alive reroute (hand-back)', () => {
  let h: Harness
  let baton: Baton
  let port: number
  const kids = new Map<Name, ChildProcess>()
  const clients: Client[] = []

  const ask = async <K extends string>(name: Name, key: K): Promise<unknown> => {
    const child = kids.get(name)!
    return await new Promise((resolve) => {
      const on = (m: Record<string, unknown>): void => {
        if (!(key in m)) return
        child.off('message', on)
        resolve(m[key])
      }
      child.on('message', on)
      child.send({ [key]: true })
    })
  }
  const seen = async (name: Name): Promise<Seen[]> => await ask(name, 'log') as Seen[]
  const seenAll = async (): Promise<Map<Name, Seen[]>> =>
    new Map(await Promise.all(NAMES.map(async (n) => [n, await seen(n)] as [Name, Seen[]])))
  /** Every application-level request whose url contains `marker`, by back end. */
  const whoSaw = async (marker: string): Promise<Array<[Name, Seen]>> => {
    const out: Array<[Name, Seen]> = []
    for (const [n, log] of await seenAll()) for (const s of log) if (s.url.includes(marker)) out.push([n, s])
    return out
  }
  const open = async (): Promise<Client> => {
    const c = await Client.open(port)
    clients.push(c)
    return c
  }
  /** Unique per test, so back-end logs can be searched by url. */
  let seq = 0
  const tag = (): string => `t${++seq}-${process.hrtime.bigint()}`

  const config = (publicTo = 'pub', maxHeaderBytes = 4096): string => `
listen: 127.0.0.1:0
limits: { maxHeaderBytes: ${maxHeaderBytes} }
admin: { listen: 127.0.0.1:0 }
services:
  - { name: pub, scheduler: rr, servers: [ { name: p1, handoff: ${h.sock('p1')} } ] }
  - { name: adm, scheduler: rr, servers: [ { name: a1, handoff: ${h.sock('a1')} } ] }
  - { name: api, scheduler: rr, servers: [ { name: x1, handoff: ${h.sock('x1')} }, { name: x2, handoff: ${h.sock('x2')} } ] }
  - { name: st, scheduler: rr, keepAlive: sticky, servers: [ { name: s1, handoff: ${h.sock('s1')} } ] }
  - { name: dead, scheduler: rr, servers: [ { name: nobody, handoff: ${h.sock('nobody')} } ] }
routes:
  - { name: public, match: { path: /public/ }, service: ${publicTo} }
  - { name: admin, match: { path: /admin/ }, service: adm }
  - { name: api, match: { path: /api/ }, service: api }
  - { name: sticky, match: { path: /sticky/ }, service: st }
  - { name: dead, match: { path: /dead/ }, service: dead }
`

  beforeAll(async () => {
    h = harness()
    await Promise.all(NAMES.map(async (name) => {
      const child = fork(FIXTURE, [JSON.stringify({ name, handoff: h.sock(name) })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      ;(h.children as ChildProcess[]).push(child) // the harness kills it on close
      kids.set(name, child)
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve())
        child.once('exit', (code) => reject(new Error(`${name} exited ${code}`)))
      })
    }))
    baton = await h.baton(config())
    port = baton.ports[0]!
    await waitFor(() => baton.servers().every((s) => s.state === 'up' || s.service === 'dead'), 5000)
    // Every channel must have its ROUTES (and the dispatcher the back end's CAPS) before connections are
    // checked: probe until a move works from each service.
    const probe = async (from: string, to: string, want: string): Promise<boolean> => {
      const c = await Client.open(port)
      try {
        await c.roundTrip(GET(`${from}probe`))
        const r = await c.roundTrip(GET(`${to}probe`))
        return backendOf(r)?.startsWith(want) === true
      } finally { await c.close() }
    }
    const pairs = [['/public/', '/admin/', 'a'], ['/admin/', '/public/', 'p'], ['/api/', '/public/', 'p'], ['/public/', '/api/', 'x']]
    for (const [from, to, want] of [...pairs, ...pairs]) {
      const until = Date.now() + 5000
      while (!(await probe(from!, to!, want!))) {
        if (Date.now() > until) throw new Error(`no move from ${from!} to ${to!}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }, 20_000)

  afterAll(async () => {
    for (const c of clients) await c.close()
    await h?.close()
  })

  it('one connection, three services in turn, sequential: each answered by its own service, in order, with the client address', async () => {
    const t = tag()
    const c = await open()
    const paths = ['/public/', '/admin/', '/api/', '/public/', '/api/', '/admin/'].map((p, i) => `${p}${t}-${i}`)
    const got: RawResponse[] = []
    for (const p of paths) got.push(await c.roundTrip(GET(p, 'X-Probe: one\r\nX-Probe: two\r\nX-Latin: caf\xe9\r\n')))
    expect(got.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
    const bodies = got.map(echo)
    expect(bodies.map((b) => b.url)).toEqual(paths)
    expect(bodies.map((b) => b.service)).toEqual(['pub', 'adm', 'api', 'pub', 'api', 'adm'])
    expect(bodies.map((b) => b.backend[0])).toEqual(['p', 'a', 'x', 'p', 'x', 'a'])
    for (const b of bodies) {
      expect(b.client).toBe(c.local)
      // The moved head was written again from Node's parse: fields in order, repeats and latin1 bytes kept.
      expect(b.rawHeaders).toEqual(['Host', 'example.com', 'X-Probe', 'one', 'X-Probe', 'two', 'X-Latin', 'caf\xe9'])
    }
    expect(c.closed).toBe(false)
    // Each request reached exactly one application, once.
    const saw = await whoSaw(t)
    expect(saw.map(([, s]) => s.url).sort()).toEqual([...paths].sort())
    const serviceOf: Record<string, string> = { public: 'p', admin: 'a', api: 'x' }
    for (const [n, s] of saw) {
      expect(s.client).toBe(c.local)
      expect(n[0]).toBe(serviceOf[s.url.split('/')[1]!])
    }
  })

  it('one connection, three services, pipelined in one write: answered in order, each by its own service, each seen once', async () => {
    const t = tag()
    const c = await open()
    const paths = ['/public/', '/admin/', '/api/', '/api/', '/public/', '/admin/', '/public/'].map((p, i) => `${p}${t}-${i}`)
    c.send(paths.map((p) => GET(p)).join(''))
    const got = await c.next(paths.length)
    expect(got.map((r) => r.status)).toEqual(paths.map(() => 200))
    const bodies = got.map(echo)
    expect(bodies.map((b) => b.url)).toEqual(paths)
    expect(bodies.map((b) => b.service)).toEqual(['pub', 'adm', 'api', 'api', 'pub', 'adm', 'pub'])
    for (const b of bodies) expect(b.client).toBe(c.local)
    const saw = await whoSaw(t)
    expect(saw).toHaveLength(paths.length)
    expect(new Set(saw.map(([, s]) => s.url)).size).toBe(paths.length)
  })

  it('pipelined, written a byte at a time across the boundary: the moving head arrives in pieces', async () => {
    const t = tag()
    const c = await open()
    const first = GET(`/public/${t}-0`)
    const second = GET(`/admin/${t}-1`, 'X-Split: yes\r\n') + GET(`/public/${t}-2`)
    c.send(first)
    await c.next(1)
    for (let i = 0; i < second.length; i += 7) {
      c.send(second.slice(i, i + 7))
      await new Promise((r) => setTimeout(r, 2))
    }
    const got = await c.next(2)
    expect(got.map(backendOf)).toEqual(['a1', 'p1'])
    expect(got.map((r) => echo(r).url)).toEqual([`/admin/${t}-1`, `/public/${t}-2`])
    expect((await whoSaw(t)).map(([n]) => n).sort()).toEqual(['a1', 'p1', 'p1'])
  })

  describe('a request with a body that must move is delivered byte for byte; later pipelined requests stay in order', () => {
    const cases: Array<[string, number, boolean]> = [
      ['Content-Length, small', 11, false],
      ['Content-Length, 1 MiB', 1024 * 1024, false],
      ['chunked with a trailer, small', 11, true],
      ['chunked with a trailer, 1 MiB', 1024 * 1024, true],
    ]
    const chunked = (body: Buffer): Buffer => {
      const parts: Buffer[] = []
      for (let off = 0, k = 0; off < body.length; k++) {
        const n = Math.min(body.length - off, [1, 1000, 65_536, 7][k % 4]!)
        parts.push(Buffer.from(`${n.toString(16)}\r\n`), body.subarray(off, off + n), Buffer.from('\r\n'))
        off += n
      }
      parts.push(Buffer.from('0\r\nX-Trailer: done\r\n\r\n'))
      return Buffer.concat(parts)
    }
    const post = (p: string, body: Buffer, isChunked: boolean): Buffer => Buffer.concat([
      Buffer.from(`POST ${p} HTTP/1.1\r\nHost: example.com\r\n` +
        (isChunked ? 'Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n\r\n' : `Content-Length: ${body.length}\r\n\r\n`)),
      isChunked ? chunked(body) : body,
    ])

    it.each(cases)('%s, pipelined after a request to another service', async (_name, size, isChunked) => {
      const t = tag()
      const body = crypto.randomBytes(size)
      const c = await open()
      c.send(Buffer.concat([Buffer.from(GET(`/public/${t}-0`)), post(`/admin/${t}-1`, body, isChunked),
        Buffer.from(GET(`/api/${t}-2`) + GET(`/public/${t}-3`))]))
      const got = await c.next(4, 10_000)
      const bodies = got.map(echo)
      expect(bodies.map((b) => b.url)).toEqual([`/public/${t}-0`, `/admin/${t}-1`, `/api/${t}-2`, `/public/${t}-3`])
      expect(bodies.map((b) => b.service)).toEqual(['pub', 'adm', 'api', 'pub'])
      expect(bodies[1]!.length).toBe(size)
      expect(bodies[1]!.sha256).toBe(sha256(body))
      if (isChunked) expect(bodies[1]!.trailers).toEqual({ 'x-trailer': 'done' })
      const saw = await whoSaw(t)
      expect(saw).toHaveLength(4)
      expect(saw.filter(([, s]) => s.method === 'POST').map(([n, s]) => [n, s.sha256, s.length])).toEqual([['a1', sha256(body), size]])
    }, 15_000)

    it.each(cases)('%s, sequential (sent after the first response)', async (_name, size, isChunked) => {
      const t = tag()
      const body = crypto.randomBytes(size)
      const c = await open()
      expect(backendOf(await c.roundTrip(GET(`/api/${t}-0`)))).toMatch(/^x/)
      c.send(Buffer.concat([post(`/public/${t}-1`, body, isChunked), Buffer.from(GET(`/admin/${t}-2`))]))
      const got = await c.next(2, 10_000)
      expect(got.map(backendOf)).toEqual(['p1', 'a1'])
      const moved = echo(got[0]!)
      expect([moved.length, moved.sha256]).toEqual([size, sha256(body)])
      expect(moved.client).toBe(c.local)
    }, 15_000)

    it('a 1 MiB body that stays, then a request that moves: the back end reads the body itself, then hands back', async () => {
      const t = tag()
      const body = crypto.randomBytes(1024 * 1024)
      const c = await open()
      c.send(Buffer.concat([Buffer.from(GET(`/public/${t}-0`)), post(`/public/${t}-1`, body, false), Buffer.from(GET(`/admin/${t}-2`))]))
      const got = await c.next(3, 10_000)
      expect(got.map(backendOf)).toEqual(['p1', 'p1', 'a1'])
      expect(echo(got[1]!).sha256).toBe(sha256(body))
      expect(echo(got[2]!).url).toBe(`/admin/${t}-2`)
    }, 15_000)
  })

  it.each([['sequential', false], ['pipelined', true]])('/public then /admin, %s: /admin never reaches the public back end', async (_n, pipelined) => {
    const t = tag()
    const before = (await seen('p1')).length
    const c = await open()
    const reqs = [GET(`/public/${t}-0`), GET(`/admin/${t}-secret`), GET(`/public/${t}-2`), GET(`/admin/${t}-secret2`)]
    let got: RawResponse[]
    if (pipelined) {
      c.send(reqs.join(''))
      got = await c.next(4)
    } else {
      got = []
      for (const r of reqs) got.push(await c.roundTrip(r))
    }
    expect(got.map(backendOf)).toEqual(['p1', 'a1', 'p1', 'a1'])
    const pub = (await seen('p1')).slice(before)
    expect(pub.map((s) => s.url)).toEqual([`/public/${t}-0`, `/public/${t}-2`])
    expect(pub.some((s) => s.url.includes('admin'))).toBe(false)
    expect((await seen('a1')).filter((s) => s.url.includes(t)).map((s) => [s.url, s.client]))
      .toEqual([[`/admin/${t}-secret`, c.local], [`/admin/${t}-secret2`, c.local]])
  })

  describe('a later request the dispatcher would refuse gets the dispatcher\'s answer, never the application\'s', () => {
    const refused: Array<[string, (t: string) => string, number]> = [
      ['two Host headers', (t) => `GET /public/${t}-x HTTP/1.1\r\nHost: example.com\r\nHost: other.example\r\n\r\n`, 400],
      ['dot segments', (t) => GET(`/public/../admin/${t}-x`), 400],
      ['encoded dot segments', (t) => GET(`/public/%2e%2e/admin/${t}-x`), 400],
      ['an empty segment', (t) => GET(`/public//${t}-x`), 400],
      ['absolute-form whose host disagrees with Host', (t) => `GET http://evil.example/public/${t}-x HTTP/1.1\r\nHost: example.com\r\n\r\n`, 400],
      ['no route', (t) => GET(`/nowhere/${t}-x`), 404],
    ]
    it.each(refused)('%s', async (_name, make, status) => {
      const t = tag()
      const c = await open()
      const first = await c.roundTrip(GET(`/public/${t}-0`))
      expect(backendOf(first)).toBe('p1')
      c.send(make(t) + GET(`/public/${t}-after`))
      const [r] = await c.next(1)
      expect(r?.status).toBe(status)
      expect(r?.headers['x-baton-error']).toMatch(/^BATON_ERR_/)
      expect(backendOf(r!)).toBeUndefined()
      await waitFor(() => c.closed) // the dispatcher's answer closes the connection
      expect(parseResponses(c.raw)).toHaveLength(2) // nothing after it: not even the request pipelined behind
      const saw = await whoSaw(t)
      expect(saw.map(([n, s]) => [n, s.url])).toEqual([['p1', `/public/${t}-0`]])
    })

    // BUG (issue 12, open): llhttp flags a CONNECT head as an upgrade, so Node does not report the pause as
    // a parse error: it gives the request to the application's 'connect' handler (or, without one, destroys
    // the socket before the responses before it were written). Marked fails until the back end handles it.
    it('CONNECT: the dispatcher\'s 400, after the response before it; the application never sees it', async () => {
      const t = tag()
      const c = await open()
      c.send(GET(`/public/${t}-0`) + `CONNECT ${t}.example:443 HTTP/1.1\r\nHost: ${t}.example:443\r\n\r\n`)
      await waitFor(() => c.closed || parseResponses(c.raw).length >= 2)
      const got = parseResponses(c.raw)
      expect(got.map((r) => [r.status, backendOf(r)])).toEqual([[200, 'p1'], [400, undefined]])
      expect(got[1]!.headers['x-baton-error']).toBe('BATON_ERR_BAD_REQUEST')
      expect((await ask('p1', 'upgrades') as string[]).filter((u) => u.includes(t))).toEqual([])
    })

    /** A later request for p1's own service that `baton at port` refuses: refused there too, never seen by p1. */
    const refusedLater = async (at: number, make: (t: string) => string, status: number): Promise<void> => {
      const t = tag()
      const fresh = new Client(at)
      clients.push(fresh)
      fresh.send(make(`${t}-fresh`))
      const [f] = await fresh.next(1)
      expect([f?.status, backendOf(f!)]).toEqual([status, undefined])
      const c = new Client(at)
      clients.push(c)
      c.send(GET(`/public/${t}-0`) + make(t))
      await waitFor(() => c.closed || parseResponses(c.raw).length >= 2)
      const got = parseResponses(c.raw)
      expect(got.map((r) => [r.status, backendOf(r)])).toEqual([[200, 'p1'], [status, undefined]])
      expect((await whoSaw(t)).map(([n, s]) => [n, s.url])).toEqual([['p1', `/public/${t}-0`]])
    }

    it('a head over maxHeaderBytes (4096, below Node\'s 16 KiB): 431, as on a first request', async () => {
      await refusedLater(port, (t) => GET(`/public/${t}-x`, `X-Big: ${'y'.repeat(5000)}\r\n`), 431)
    })

    // BUG (issue 12, open): sniff.ts refuses HTAB in a Content-Length or Transfer-Encoding value in its byte
    // scan, which checkParsedHead does not repeat, and Node 20.20's llhttp accepts it: a back end keeps such
    // a later request for its own service and its application reads it.
    it('HTAB in a Content-Length value: 400, as on a first request', async () => {
      await refusedLater(port, (t) => `POST /public/${t}-x HTTP/1.1\r\nHost: example.com\r\nContent-Length:\t1\r\n\r\nz`, 400)
    })

    // Header line counts, where the size limit does not hide them: a second dispatcher in front of the same
    // back ends (each channel has its own routes and limits) with maxHeaderBytes far above Node's own.
    describe('with maxHeaderBytes 65536', () => {
      let wide: Baton
      beforeAll(async () => {
        wide = await h.baton(config('pub', 65_536))
        await waitFor(() => wide.servers().every((s) => s.state === 'up' || s.service === 'dead'), 5000)
        // ROUTES reach each back end over the new channel: wait until a move works through it.
        const until = Date.now() + 5000
        for (;;) {
          const c = await Client.open(wide.ports[0]!)
          c.send(GET('/public/probe') + GET('/admin/probe'))
          const got = await c.next(2)
          await c.close()
          if (backendOf(got[1]!) === 'a1') break
          if (Date.now() > until) throw new Error('the second dispatcher\'s routes never arrived')
          await new Promise((r) => setTimeout(r, 50))
        }
      })
      afterAll(async () => { await wide.close() })

      // BUG (issue 12, open): sniff.ts counts header lines (MAX_HEADER_LINES = 1000: Node keeps only the
      // first 2000 and drops the rest silently) in its byte scan, which checkParsedHead does not repeat.
      it('1001 header lines: 431, as on a first request', async () => {
        await refusedLater(wide.ports[0]!, (t) => GET(`/public/${t}-x`, 'X-N: 1\r\n'.repeat(1001)), 431)
      })
      it('2001 header lines, then a second Host (which Node drops unseen): 431, as on a first request', async () => {
        await refusedLater(wide.ports[0]!, (t) => GET(`/public/${t}-x`, 'X: 1\r\n'.repeat(2001) + 'Host: other.example\r\n'), 431)
      })
    })

    it('Content-Length with Transfer-Encoding: refused with 400, never seen by the application', async () => {
      const t = tag()
      const c = await open()
      expect(backendOf(await c.roundTrip(GET(`/public/${t}-0`)))).toBe('p1')
      c.send(`POST /public/${t}-x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)
      await waitFor(() => c.closed || parseResponses(c.raw).length >= 2)
      const r = parseResponses(c.raw)[1]
      expect(r?.status).toBe(400)
      expect(backendOf(r!)).toBeUndefined()
      expect((await whoSaw(t)).map(([n, s]) => [n, s.url])).toEqual([['p1', `/public/${t}-0`]])
    })

    it('on a fresh connection too (the same rules at the dispatcher)', async () => {
      const t = tag()
      const c = await open()
      c.send(GET(`/public/../admin/${t}`))
      const [r] = await c.next(1)
      expect(r?.status).toBe(400)
      expect(await whoSaw(t)).toEqual([])
    })
  })

  it('keepAlive: sticky keeps later requests where the first went, whatever their route', async () => {
    const t = tag()
    const c = await open()
    const paths = [`/sticky/${t}-0`, `/public/${t}-1`, `/admin/${t}-2`, `/nowhere/${t}-3`]
    c.send(GET(paths[0]!))
    const first = await c.next(1)
    c.send(paths.slice(1).map((p) => GET(p)).join(''))
    const got = [...first, ...await c.next(3)]
    expect(got.map(backendOf)).toEqual(['s1', 's1', 's1', 's1'])
    expect(got.map((r) => echo(r).url)).toEqual(paths)
    expect((await whoSaw(t)).map(([n]) => n)).toEqual(['s1', 's1', 's1', 's1'])
  })

  it('a connection that moves into a sticky service stays there', async () => {
    const t = tag()
    const c = await open()
    c.send(GET(`/public/${t}-0`) + GET(`/sticky/${t}-1`) + GET(`/admin/${t}-2`))
    const got = await c.next(3)
    expect(got.map(backendOf)).toEqual(['p1', 's1', 's1'])
  })

  it('after an Upgrade (101) the connection stays and later bytes are not checked', async () => {
    const t = tag()
    const c = await open()
    expect(backendOf(await c.roundTrip(GET(`/public/${t}-0`)))).toBe('p1')
    c.send(GET(`/public/${t}-ws`, 'Upgrade: echo\r\nConnection: Upgrade\r\n'))
    await waitFor(() => c.raw.includes('101 Switching Protocols'))
    const after = GET(`/admin/${t}-tunnelled`)
    c.send(after)
    await waitFor(() => c.raw.includes(`p1:${after}`))
    c.send(GET(`/nowhere/${t}-tunnelled2`))
    await waitFor(() => c.raw.includes(`p1:GET /nowhere/${t}-tunnelled2`))
    expect(c.closed).toBe(false)
    expect(await ask('p1', 'upgrades')).toContain(`/public/${t}-ws`)
    expect((await whoSaw(t)).map(([n, s]) => [n, s.url])).toEqual([['p1', `/public/${t}-0`]])
  })

  // BUG (issue 12, open): an Upgrade head for another service is not moved. llhttp flags it as an upgrade,
  // so the pause that should stop it is taken for the upgrade: Node emits 'upgrade' on the public back end
  // with the /admin request, and the socket, whose reading the rerouter stopped, never reads again.
  it('an Upgrade request for another service moves: the upgrade happens on that service', async () => {
    const t = tag()
    const c = await open()
    expect(backendOf(await c.roundTrip(GET(`/public/${t}-0`)))).toBe('p1')
    c.send(GET(`/admin/${t}-ws`, 'Upgrade: echo\r\nConnection: Upgrade\r\n'))
    await waitFor(() => c.raw.includes('101 Switching Protocols') || c.closed)
    const upgradedBy = async (n: Name): Promise<string[]> => (await ask(n, 'upgrades') as string[]).filter((u) => u.includes(t))
    expect(await upgradedBy('p1')).toEqual([])
    expect(await upgradedBy('a1')).toEqual([`/admin/${t}-ws`])
    c.send('ping')
    await waitFor(() => c.raw.includes('a1:ping'), 1000)
  })

  it('HTTP/1.0 keep-alive requests move too', async () => {
    const t = tag()
    const c = await open()
    const g10 = (p: string): string => `GET ${p} HTTP/1.0\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n`
    c.send(g10(`/public/${t}-0`) + g10(`/admin/${t}-1`) + g10(`/api/${t}-2`))
    const got = await c.next(3)
    expect(got.map((r) => echo(r).service)).toEqual(['pub', 'adm', 'api'])
    expect(got.map((r) => echo(r).httpVersion)).toEqual(['1.0', '1.0', '1.0'])
  })

  it('a moving POST with Expect: 100-continue: the next back end says 100, then the body goes there', async () => {
    const t = tag()
    const c = await open()
    await c.roundTrip(GET(`/public/${t}-0`))
    const body = crypto.randomBytes(200_000)
    c.send(`POST /admin/${t}-1 HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`)
    await waitFor(() => c.raw.includes('HTTP/1.1 100 Continue\r\n\r\n'))
    const rest = c.raw.slice(c.raw.indexOf('HTTP/1.1 100 Continue\r\n\r\n') + 25)
    expect(rest).toBe('')
    c.send(body)
    const responses = (): RawResponse[] => parseResponses(c.raw.replace('HTTP/1.1 100 Continue\r\n\r\n', ''))
    await waitFor(() => responses().length >= 2)
    const r = responses()[1]!
    expect(backendOf(r)).toBe('a1')
    expect([echo(r).length, echo(r).sha256]).toEqual([body.length, sha256(body)])
  })

  it('a large response the client reads slowly, then a move: the hand-back waits until it is written; all in order', async () => {
    const t = tag()
    const c = await open()
    c.s.pause()
    c.send(GET(`/public/${t}-0?size=${8 * 1024 * 1024}`) + GET(`/admin/${t}-1`) + GET(`/public/${t}-2?size=100000`))
    await new Promise((r) => setTimeout(r, 300))
    c.s.resume()
    const got = await c.next(3, 10_000)
    expect(got.map(backendOf)).toEqual(['p1', 'a1', 'p1'])
    expect(echo(got[0]!).pad.length).toBe(8 * 1024 * 1024)
    expect(echo(got[2]!).pad.length).toBe(100000)
  }, 15_000)

  it('a slow response before a moving request: responses still in order, the move waits for it', async () => {
    const t = tag()
    const c = await open()
    const t0 = Date.now()
    c.send(GET(`/public/${t}-0?delayMs=300`) + GET(`/admin/${t}-1`) + GET(`/api/${t}-2?delayMs=100`) + GET(`/public/${t}-3`))
    const got = await c.next(4)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390)
    expect(got.map((r) => echo(r).url)).toEqual([`/public/${t}-0?delayMs=300`, `/admin/${t}-1`, `/api/${t}-2?delayMs=100`, `/public/${t}-3`])
    expect(got.map((r) => echo(r).service)).toEqual(['pub', 'adm', 'api', 'pub'])
  })

  it('100 pipelined requests alternating between two services on one connection: each moves, all in order', async () => {
    const t = tag()
    const c = await open()
    const paths = Array.from({ length: 100 }, (_, i) => `/${i % 2 === 0 ? 'public' : 'admin'}/${t}-${i}`)
    c.send(paths.map((p) => GET(p)).join(''))
    const got = await c.next(100, 10_000)
    expect(got.map((r) => echo(r).url)).toEqual(paths)
    expect(got.map(backendOf)).toEqual(paths.map((_, i) => (i % 2 === 0 ? 'p1' : 'a1')))
    const saw = await whoSaw(t)
    expect(saw).toHaveLength(100)
    for (const [, s] of saw) expect(s.client).toBe(c.local)
  }, 15_000)

  it('a move to a service with no server up: the dispatcher\'s 503, logged with where it came from', async () => {
    const t = tag()
    const before = h.logs.length
    const c = await open()
    c.send(GET(`/public/${t}-0`) + GET(`/dead/${t}-1`))
    const got = await c.next(2)
    expect(got.map((r) => [r.status, backendOf(r) ?? r.headers['x-baton-error']])).toEqual([[200, 'p1'], [503, 'BATON_ERR_NO_SERVER']])
    await waitFor(() => h.logs.slice(before).some((l) => l.target === `/dead/${t}-1`), 3000)
    expect(h.logs.slice(before).find((l) => l.target === `/dead/${t}-1`)).toMatchObject({ client: c.local, movedFrom: 'pub/p1', moveReason: 'reroute' })
  })

  it('the client half-closes right after pipelining a request that moves: both answered, then the end', async () => {
    const t = tag()
    const c = await open()
    c.s.end(GET(`/public/${t}-0`) + GET(`/admin/${t}-1`) + GET(`/api/${t}-2`))
    await waitFor(() => c.closed, 3000)
    expect(parseResponses(c.raw).map((r) => echo(r).url)).toEqual([`/public/${t}-0`, `/admin/${t}-1`, `/api/${t}-2`])
  })

  it('each move counts once in /metrics (baton_connection_moves_total by the service it left)', async () => {
    const moves = async (): Promise<Record<string, number>> => {
      const text = await (await request(`http://${baton.admin!}/metrics`)).body.text()
      const out: Record<string, number> = {}
      for (const m of text.matchAll(/^baton_connection_moves_total\{service="(\w+)",outcome="(\w+)"\} (\d+)$/gm)) out[`${m[1]!}/${m[2]!}`] = Number(m[3])
      return out
    }
    const before = await moves()
    const c = await open()
    c.send(GET('/public/metric-0') + GET('/admin/metric-1') + GET('/public/metric-2') + GET('/api/metric-3'))
    await c.next(4)
    const after = await moves()
    const d = (k: string): number => (after[k] ?? 0) - (before[k] ?? 0)
    expect({ pub: d('pub/reroute'), adm: d('adm/reroute'), api: d('api/reroute') }).toEqual({ pub: 2, adm: 1, api: 0 })
  })

  it('the client goes away while a move waits for a slow response: counters and descriptors come back', async () => {
    for (const c of clients.splice(0)) await c.close()
    const total = (): number => baton.servers().reduce((n, s) => n + s.active + s.inactive, 0)
    let last = -1
    await waitFor(() => { const n = total(); const same = n === last; last = n; return same }, 5000)
    await new Promise((r) => setTimeout(r, 100))
    const base = total()
    const fds = fdCount()
    const t = tag()
    const gone = await Promise.all(Array.from({ length: 10 }, async () => {
      const c = await Client.open(port)
      c.send(GET(`/public/${t}-0?delayMs=200`) + GET(`/admin/${t}-1`))
      return c
    }))
    await new Promise((r) => setTimeout(r, 50))
    for (const c of gone) await c.close()
    await new Promise((r) => setTimeout(r, 400)) // the slow responses are written (to nobody), the moves fail or go on
    await waitFor(() => total() === base, 5000)
    await waitFor(() => fdCount() <= fds, 5000)
  })

  it('counts a moved connection on the server that has it now; the dispatcher keeps no descriptor', async () => {
    type Row = { active: number; inactive: number }
    const snapshot = (): Map<string, Row> => new Map(baton.servers().map((s) => [s.id, { active: s.active, inactive: s.inactive }]))
    const total = (m: Map<string, Row>): number => [...m.values()].reduce((n, r) => n + r.active + r.inactive, 0)
    for (const c of clients.splice(0)) await c.close()
    // Connections the it.fails tests above leave stuck in a back end stay counted: measure from here.
    let last = -1
    await waitFor(() => { const n = total(snapshot()); const same = n === last; last = n; return same }, 5000)
    await new Promise((r) => setTimeout(r, 100))
    const base = snapshot()
    const delta = (id: string): Row => {
      const now = snapshot().get(id)!
      const b = base.get(id)!
      return { active: now.active - b.active, inactive: now.inactive - b.inactive }
    }
    const added = (): number => total(snapshot()) - total(base)
    const fds = fdCount()
    const c = await Client.open(port)
    await c.roundTrip(GET('/public/count'))
    await c.roundTrip(GET('/admin/count'))
    const to = backendOf(await c.roundTrip(GET('/api/count')))!
    await waitFor(() => delta(to).inactive === 1 && added() === 1, 3000)
    expect(delta('p1')).toEqual({ active: 0, inactive: 0 })
    expect(delta('a1')).toEqual({ active: 0, inactive: 0 })
    expect(delta(to)).toEqual({ active: 0, inactive: 1 })
    // Many connections, each moving twice, then closed: counters back where they were, no descriptor left.
    const many = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const k = await Client.open(port)
      k.send(GET(`/public/m${i}`) + GET(`/admin/m${i}`) + GET(`/api/m${i}`))
      const got = await k.next(3)
      expect(got.map((r) => echo(r).service)).toEqual(['pub', 'adm', 'api'])
      return k
    }))
    // Feedback comes once per event-loop turn from each back end: wait until every count settled.
    const settled = (): boolean => added() === 41 && delta('x1').inactive + delta('x2').inactive === 41
    await waitFor(settled, 3000).catch(() => {})
    expect(Object.fromEntries(['p1', 'a1', 'x1', 'x2'].map((id) => [id, delta(id)])))
      .toEqual({ p1: { active: 0, inactive: 0 }, a1: { active: 0, inactive: 0 }, x1: { active: 0, inactive: expect.any(Number) },
        x2: { active: 0, inactive: expect.any(Number) } })
    expect(delta('x1').inactive + delta('x2').inactive).toBe(41)
    await c.close()
    for (const k of many) await k.close()
    await waitFor(() => added() === 0, 5000)
    await waitFor(() => fdCount() <= fds, 5000)
    expect(fdCount()).toBeLessThanOrEqual(fds)
  }, 20_000)

  it('logs one access line per move with movedFrom, moveReason and prevConn', async () => {
    const t = tag()
    const before = h.logs.length
    const c = await open()
    c.send(GET(`/public/${t}-0`) + GET(`/admin/${t}-1`) + GET(`/api/${t}-2`))
    const got = await c.next(3)
    const mine = (): Array<Record<string, unknown>> => h.logs.slice(before).filter((l) => l.client === c.local && l.outcome !== undefined)
    await waitFor(() => mine().length >= 3, 3000) // access lines are batched, within 100 ms
    await new Promise((r) => setTimeout(r, 150))
    const lines = mine()
    expect(lines).toHaveLength(3)
    const [l0, l1, l2] = lines as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>]
    expect(l0).toMatchObject({ svc: 'pub', backend: 'p1', route: 'public', outcome: 'handoff', target: `/public/${t}-0` })
    expect(l0.movedFrom).toBeUndefined()
    expect(l1).toMatchObject({ svc: 'adm', backend: 'a1', route: 'admin', outcome: 'handoff', target: `/admin/${t}-1`,
      movedFrom: 'pub/p1', moveReason: 'reroute', prevConn: l0.conn })
    const x = backendOf(got[2]!)
    expect(l2).toMatchObject({ svc: 'api', backend: x, route: 'api', outcome: 'handoff', target: `/api/${t}-2`,
      movedFrom: 'adm/a1', moveReason: 'reroute', prevConn: l1.conn })
    // The connection ids the back ends were told are the dispatcher's ids of each leg.
    expect(got.map((r) => echo(r).connId)).toEqual([l0.conn, l1.conn, l2.conn])
  })

  it('a move the dispatcher answers (no route) is logged with where it came from', async () => {
    const t = tag()
    const before = h.logs.length
    const c = await open()
    c.send(GET(`/public/${t}-0`) + GET(`/nowhere/${t}-1`))
    await c.next(2)
    const mine = (): Array<Record<string, unknown>> => h.logs.slice(before).filter((l) => l.client === c.local && l.outcome !== undefined)
    await waitFor(() => mine().length >= 2, 3000)
    const l = mine()[1]!
    expect(l).toMatchObject({ target: `/nowhere/${t}-1`, movedFrom: 'pub/p1', moveReason: 'reroute', code: 'BATON_ERR_NO_ROUTE' })
  })

  it('no back end reported a problem (onError)', async () => {
    for (const n of NAMES) expect([n, await ask(n, 'errors')]).toEqual([n, []])
  })

  // Last: it changes the routes.
  it('a reload sends the new routes: a kept-alive connection follows them at its next request', async () => {
    const t = tag()
    const c = await open()
    expect(backendOf(await c.roundTrip(GET(`/public/${t}-0`)))).toBe('p1')
    baton.reload(parseConfig(config('adm'), path.join(h.dir, 'baton.yaml')))
    await new Promise((r) => setTimeout(r, 200)) // ROUTES reach the back ends over their channels
    const r1 = await c.roundTrip(GET(`/public/${t}-1`))
    expect([backendOf(r1), echo(r1).service, echo(r1).client]).toEqual(['a1', 'adm', c.local])
    expect(backendOf(await c.roundTrip(GET(`/public/${t}-2`)))).toBe('a1')
    expect((await whoSaw(t)).map(([n, s]) => [n, s.url])).toEqual([['p1', `/public/${t}-0`], ['a1', `/public/${t}-1`], ['a1', `/public/${t}-2`]])
  })
})
