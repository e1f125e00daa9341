// Fixtures for the per-request routing tests of the relays (relay-reroute.test.ts): a sink that routes by
// path and records what the forwarder told it, real HTTP upstreams that log every request they saw, and a
// raw client that reads responses until a marker.
import http from 'node:http'
import net from 'node:net'

import type { BatonError } from '../../src/errors'
import { createPipeForwarder } from '../../src/forward/pipe'
import { createSpliceForwarder } from '../../src/forward/splice'
import type {
  Forwarder, ForwarderOptions, ForwardSink, ForwardStats, HealthInput, MoveReason, ReturnedClient,
} from '../../src/forward/types'
import { silentLogger } from '../../src/log'
import type { SniffResult } from '../../src/request/types'
import type { Accepted, TestConn, TestServer } from './relay-helpers'
import { recorder } from './relay-helpers'

export interface Returned {
  readonly from: TestServer
  readonly client: ReturnedClient
  readonly consumed: Buffer
  readonly reason: MoveReason
  readonly connId: number
}

/** The data path as these tests need it: later requests whose path starts with `movePrefix` move. */
export class RerouteSink implements ForwardSink<TestConn, TestServer>, HealthInput<TestServer> {
  /** One line per call, in order: `next GET /a`, `closed`, `returned`, ... */
  readonly log: string[] = []
  readonly returns: Returned[] = []
  readonly stats: ForwardStats[] = []
  readonly #waiters: Array<() => void> = []
  /** Ports of the servers of service B; every other server is service A. */
  readonly serviceB = new Set<number>()

  /** Paths under /b belong to service B, all others to A; a request for the other service moves. */
  nextRequest (conn: TestConn, r: SniffResult): MoveReason | undefined {
    if (r.kind !== 'ok') {
      this.log.push(`next reject ${r.status}`)
      return 'reroute'
    }
    this.log.push(`next ${r.head.method} ${r.head.path}`)
    return r.head.path.startsWith('/b') === this.serviceB.has(conn.server.target.port) ? undefined : 'reroute'
  }

  returned (from: TestServer, client: ReturnedClient, consumed: Buffer, reason: MoveReason, connId: number): void {
    this.log.push('returned')
    this.returns.push({ from, client, consumed, reason, connId })
    this.#wake()
  }

  handedOff (): void { this.log.push('handedOff') }
  taken (conn: TestConn): void { conn.server.rec.taken() }
  closed (conn: TestConn, stats: ForwardStats): void {
    this.log.push(`closed ${stats.errno}`)
    this.stats.push(stats)
    conn.server.rec.closed(stats)
    this.#wake()
  }

  failed (conn: TestConn, err: BatonError): void { this.log.push(`failed ${err.code}`); conn.server.rec.failed(err) }
  feedback (): void {}
  lost (): void {}
  channel (): void {}
  connectFailed (): void {}
  agent (): void {}

  /** Resolves once pred() holds (checked after each closed/returned). */
  async until (pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  #wake (): void { for (const w of this.#waiters.splice(0)) w() }
}

export const OPTS: ForwarderOptions = { connectTimeoutMs: 2000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 }

export function makeForwarder (method: 'pipe' | 'splice', sink: RerouteSink,
  opts: ForwarderOptions = OPTS): Forwarder<TestConn, TestServer> {
  return method === 'pipe'
    ? createPipeForwarder(sink, sink, opts, silentLogger())
    : createSpliceForwarder(sink, sink, opts, silentLogger())
}

let nextId = 1000

/** A watched connection of the accepted client (or of a returned one) to port. */
export function watchedConn (port: number, a: Pick<Accepted, 'clientAddress' | 'clientPort' | 'localAddress' | 'localPort'> & { fd: number },
  extra: { socket?: net.Socket | undefined; consumed?: Buffer | undefined; watch?: boolean } = {}): TestConn {
  return {
    id: nextId++,
    fd: extra.socket !== undefined ? -1 : a.fd,
    socket: extra.socket,
    consumed: extra.consumed,
    clientAddress: a.clientAddress,
    clientPort: a.clientPort,
    localAddress: a.localAddress,
    localPort: a.localPort,
    service: 'svc',
    route: 'default',
    server: {
      id: `s${port}`, service: 'svc', rec: recorder(),
      target: { method: 'pipe', host: '127.0.0.1', port, path: undefined, proxyProtocol: undefined },
    },
    watch: extra.watch ?? true,
  }
}

/** The next connection forwarded anew after a return: what the data path does with a moved request. */
export function reforwardedConn (port: number, r: Returned): TestConn {
  const c = r.client
  return watchedConn(port, c, { socket: c.socket, consumed: r.consumed })
}

export interface Upstream {
  readonly port: number
  /** `METHOD url bodyBytes` per request, in arrival order. */
  readonly seen: string[]
  /** Raw bytes of each request body, in order. */
  readonly bodies: Buffer[]
  close (): Promise<void>
}

/**
 * A real node:http server named `name`. Every response carries `x-server: name` and a body
 * `<name>:<METHOD> <url> <bodyBytes>;`, except: /chunked* (chunked with a trailer), /s204, /s304, /early
 * (103 first), /aslow* (the body's end 150 ms late), /large (1 MiB chunked), /alen (4 MiB + the text, Content-Length). HEAD gets the headers only; Expect: 100-continue gets a 100 first.
 */
export async function httpUpstream (name: string): Promise<Upstream> {
  const seen: string[] = []
  const bodies: Buffer[] = []
  const sockets = new Set<net.Socket>()
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => {
      const body = Buffer.concat(parts)
      seen.push(`${req.method} ${req.url} ${body.length}`)
      bodies.push(body)
      const text = `${name}:${req.method} ${req.url} ${body.length};`
      res.setHeader('x-server', name)
      const url = req.url ?? ''
      if (url.startsWith('/aslow')) {
        res.setHeader('content-length', Buffer.byteLength(text))
        res.write(text.slice(0, 2))
        setTimeout(() => res.end(text.slice(2)), 150)
      } else if (url.startsWith('/chunked')) {
        res.setHeader('Trailer', 'x-end')
        res.write(text.slice(0, 3))
        res.addTrailers({ 'x-end': 'yes' })
        res.end(text.slice(3))
      } else if (url === '/s204') {
        res.writeHead(204).end()
      } else if (url === '/s304') {
        res.writeHead(304, { etag: '"x"' }).end()
      } else if (url === '/early') {
        res.writeEarlyHints({ link: '</a.css>; rel=preload' })
        res.setHeader('content-length', Buffer.byteLength(text))
        res.end(text)
      } else if (url === '/alen') {
        const body = Buffer.alloc(4 << 20, 0x62)
        res.setHeader('content-length', body.length + Buffer.byteLength(text))
        res.write(body)
        res.end(text)
      } else if (url === '/large') {
        const block = Buffer.alloc(64 * 1024, 0x61)
        for (let i = 0; i < 16; i++) res.write(block)
        res.end(text)
      } else {
        res.setHeader('content-length', Buffer.byteLength(text))
        res.end(text)
      }
    })
  })
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    seen.push(`${req.method} ${req.url} upgrade`)
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nx-server: ${name}\r\n\r\n`)
    if (head.length > 0) socket.write(head)
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    bodies,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/** A raw server: each connection gets `reply` once its first request head arrived, then (close) is closed. */
export async function rawUpstream (reply: string, close: boolean): Promise<Upstream> {
  const seen: string[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    let got = ''
    let answered = false
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1')
      seen.splice(0, seen.length, got)
      if (!answered && got.includes('\r\n\r\n')) {
        answered = true
        if (close) s.end(reply)
        else s.write(reply)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    bodies: [],
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/** Everything the client received so far, and a wait for a marker in it. */
export function reader (client: net.Socket): { text: () => string; until: (marker: string, count?: number) => Promise<string>; ended: Promise<void> } {
  let text = ''
  const waiters: Array<() => void> = []
  client.on('data', (d: Buffer) => { text += d.toString('latin1'); for (const w of waiters.splice(0)) w() })
  const ended = new Promise<void>((resolve) => {
    client.once('end', () => { for (const w of waiters.splice(0)) w(); resolve() })
  })
  return {
    text: () => text,
    ended,
    until: async (marker, count = 1) => {
      while (text.split(marker).length - 1 < count) {
        if (client.readableEnded) throw new Error(`ended before ${count} x ${JSON.stringify(marker)}; got ${JSON.stringify(text)}`)
        await new Promise<void>((resolve) => waiters.push(resolve))
      }
      return text
    },
  }
}

export function get (path: string, extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`
}

export function post (path: string, body: string): string {
  return `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

export function postChunked (path: string, chunks: string[], trailer = ''): string {
  let s = `POST ${path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n`
  for (const [i, c] of chunks.entries()) s += `${Buffer.byteLength(c).toString(16)}${i === 0 ? ';ext=1' : ''}\r\n${c}\r\n`
  return `${s}0\r\n${trailer}\r\n`
}
