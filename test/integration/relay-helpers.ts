// Shared fixtures for the relay tests (splice and pipe): a client side that yields raw fds with the request
// still queued in the kernel (as the dispatcher hands them over), callbacks that record what happened, and
// small upstream servers. Everything on 127.0.0.1, port 0, registered for teardown.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'

import type { BatonError } from '../../src/errors'
import { createPipeForwarder } from '../../src/forward/pipe'
import { createSpliceForwarder, type SpliceForwarder } from '../../src/forward/splice'
import type {
  ForwardConn, Forwarder, ForwarderOptions, ForwardServer, ForwardSink, ForwardStats, ForwardTarget, HealthInput,
} from '../../src/forward/types'
import { silentLogger } from '../../src/log'
import { native } from '../../src/native/binding'

export const linux = process.platform === 'linux'

export function fdCount (): number {
  return fs.readdirSync('/proc/self/fd').length
}

export function pipeCount (): number {
  let n = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('pipe:')) n++
    } catch {}
  }
  return n
}

/** What one forwarded connection went through, as the sink and health heard it. */
export interface Recorder {
  readonly events: string[]
  /** Health reports about the connection's server (connect-failed). */
  readonly health: string[]
  readonly takenP: Promise<void>
  /** Resolves with the error for failed(), or the stats for closed(). */
  readonly done: Promise<{ failed?: BatonError; stats?: ForwardStats }>
  taken (): void
  failed (err: BatonError): void
  closed (stats: ForwardStats): void
}

export interface TestServer extends ForwardServer { readonly rec: Recorder }
export interface TestConn extends ForwardConn<TestServer> { readonly server: TestServer }

/** The data path's and health's side of a forwarder in these tests: each report goes to its conn's recorder. */
class RecordingSink implements ForwardSink<TestConn, TestServer>, HealthInput<TestServer> {
  handedOff (conn: TestConn): void { conn.server.rec.events.push('handedOff') }
  taken (conn: TestConn): void { conn.server.rec.taken() }
  closed (conn: TestConn, stats: ForwardStats): void { conn.server.rec.closed(stats) }
  failed (conn: TestConn, err: BatonError): void { conn.server.rec.failed(err) }
  feedback (): void {}
  lost (): void {}
  nextRequest (): undefined { return undefined }
  returned (): void {}
  channel (server: TestServer, up: boolean): void { server.rec.health.push(up ? 'channel-up' : 'channel-down') }
  connectFailed (server: TestServer): void { server.rec.health.push('connect-failed') }
  agent (): void {}
}

const sink = new RecordingSink()

export type TestForwarder = Forwarder<TestConn, TestServer>

export function pipeForwarder (opts: ForwarderOptions): TestForwarder {
  return createPipeForwarder(sink, sink, opts, silentLogger())
}

export function spliceForwarder (opts: ForwarderOptions): SpliceForwarder<TestConn, TestServer> {
  return createSpliceForwarder(sink, sink, opts, silentLogger())
}

export function recorder (): Recorder {
  const events: string[] = []
  const health: string[] = []
  let onTaken!: () => void
  let onDone!: (v: { failed?: BatonError; stats?: ForwardStats }) => void
  const takenP = new Promise<void>((resolve) => { onTaken = resolve })
  const done = new Promise<{ failed?: BatonError; stats?: ForwardStats }>((resolve) => { onDone = resolve })
  return {
    events,
    health,
    takenP,
    done,
    taken () { events.push('taken'); onTaken() },
    failed (err) { events.push('failed'); onDone({ failed: err }) },
    closed (stats) { events.push('closed'); onDone({ stats }) },
  }
}

export interface Accepted {
  /** The client as the dispatcher would hand it: a raw fd (our dup) with nothing read from it. */
  readonly fd: number
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
}

/** A listener playing the dispatcher's accept step: each connection becomes a raw fd, libuv never reads it. */
export class FdListener {
  readonly server: net.Server
  readonly #queue: Accepted[] = []
  readonly #waiters: Array<(a: Accepted) => void> = []

  constructor () {
    this.server = net.createServer({ pauseOnConnect: true }, (s) => {
      const fd = native.dup((s as unknown as { _handle: { fd: number } })._handle.fd)
      const a: Accepted = {
        fd,
        clientAddress: s.remoteAddress ?? '',
        clientPort: s.remotePort ?? 0,
        localAddress: s.localAddress ?? '',
        localPort: s.localPort ?? 0,
      }
      s.destroy() // close(2) of libuv's copy only: no FIN, our dup keeps the socket
      const w = this.#waiters.shift()
      if (w !== undefined) w(a)
      else this.#queue.push(a)
    })
  }

  async listen (): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return (this.server.address() as net.AddressInfo).port
  }

  next (): Promise<Accepted> {
    const a = this.#queue.shift()
    if (a !== undefined) return Promise.resolve(a)
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  close (): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

let nextId = 1

/** The connection to forward: the accepted client, bound to `target`; its completions go to `rec`. */
export function connOf (rec: Recorder, target: ForwardTarget, a: Accepted,
  extra: Partial<Pick<ForwardConn, 'socket' | 'consumed'>> = {}): TestConn {
  return {
    id: nextId++,
    fd: extra.socket !== undefined ? -1 : a.fd,
    socket: extra.socket,
    consumed: extra.consumed,
    clientAddress: a.clientAddress,
    clientPort: a.clientPort,
    localAddress: a.localAddress,
    localPort: a.localPort,
    service: 'test',
    route: 'default',
    server: { id: `s${target.port}`, service: 'test', target, rec },
    watch: false,
  }
}

export function targetOf (port: number, extra: Partial<ForwardTarget> = {}): ForwardTarget {
  return { method: 'pipe', host: '127.0.0.1', port, path: undefined, proxyProtocol: undefined, ...extra }
}

/** An echo server; resolves with its port. Every socket is destroyed on close(). */
export async function echoServer (): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.pipe(s)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/** A port nothing listens on (bound, then closed). */
export async function closedPort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** Writes `total` bytes of a seeded pattern to w with backpressure; resolves with their sha256. */
export async function writePattern (w: net.Socket, total: number, seed: number): Promise<string> {
  const block = Buffer.alloc(1 << 20)
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, i)
  const hash = createHash('sha256')
  let sent = 0
  while (sent < total) {
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, total - sent)))
    chunk.writeUInt32LE(sent / block.length, 0) // every block differs: reordering would show
    hash.update(chunk)
    sent += chunk.length
    if (!w.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: Error): void => { reject(e) }
        w.once('error', onErr)
        w.once('drain', () => { w.removeListener('error', onErr); resolve() })
      })
    }
  }
  return hash.digest('hex')
}

/** Reads r to its end; resolves with byte count and sha256. */
export function readHash (r: net.Socket): Promise<{ bytes: number; hash: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  return new Promise((resolve, reject) => {
    r.on('data', (d: Buffer) => { bytes += d.length; hash.update(d) })
    r.once('end', () => resolve({ bytes, hash: hash.digest('hex') }))
    r.once('error', reject)
  })
}

export function connectClient (port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(c))
    c.once('error', reject)
  })
}
