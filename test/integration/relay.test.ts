// Both relays (splice: native thread; pipe: JavaScript) against real sockets and a real server process:
// bulk bytes arrive identical (sha256 on both ends), half-close, backpressure with bounded memory, a killed
// server, Unix-socket targets, fd/pipe counts after 2,000 connections, and (splice) idle relays hold no pipes.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import readline from 'node:readline'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { native } from '../../src/native/binding'
import {
  FdListener, connOf, connectClient, echoServer, fdCount, linux, pipeCount, readHash, recorder, targetOf, writePattern, pipeForwarder, spliceForwarder, type TestForwarder,
} from './relay-helpers'

const GiB = 1 << 30
const MiB = 1 << 20

interface Fixture { port: number; lines: AsyncIterator<string>; child: ChildProcess }

async function spawnServer (args: string[]): Promise<Fixture> {
  const child = spawn(process.execPath, [path.join(__dirname, 'relay-fixture-server.js'), ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const first = await lines.next()
  const port = Number(String(first.value).split(' ')[1])
  return { port, lines, child }
}

function stopServer (f: Fixture): Promise<void> {
  if (f.child.exitCode !== null || f.child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => { f.child.once('exit', () => resolve()); f.child.kill('SIGKILL') })
}

const methods = [
  { name: 'splice', make: (idleTimeoutMs = 0) => spliceForwarder({ connectTimeoutMs: 2000, idleTimeoutMs, channelTimeoutMs: 2000, maxHeaderBytes: 16384 }) },
  { name: 'pipe', make: (idleTimeoutMs = 0) => pipeForwarder({ connectTimeoutMs: 2000, idleTimeoutMs, channelTimeoutMs: 2000, maxHeaderBytes: 16384 }) },
]

describe.runIf(linux && native.available).each(methods)('$name relay', ({ name, make }) => {
  let listener: FdListener
  let port: number

  beforeAll(async () => {
    listener = new FdListener()
    port = await listener.listen()
  })
  afterAll(() => listener.close())

  /** A client connected through fwd to targetPort; resolves once the forwarder took it. */
  async function through (fwd: TestForwarder, targetPort: number, clientOpts: { allowHalfOpen?: boolean } = {}) {
    const client = clientOpts.allowHalfOpen === false
      ? await new Promise<net.Socket>((resolve) => { const c = net.connect(port, '127.0.0.1', () => resolve(c)) })
      : await connectClient(port)
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(targetPort), await listener.next()))
    await rec.takenP
    return { client, rec }
  }

  const bulk = name === 'splice' ? GiB : 128 * MiB
  it(`${bulk / MiB} MiB each way arrive byte-identical`, async () => {
    const server = await spawnServer(['hash', String(bulk)])
    const fwd = make()
    const { client, rec } = await through(fwd, server.port)
    const t0 = process.hrtime.bigint()
    const [down, upHash] = await Promise.all([readHash(client), writePattern(client, bulk, 1).then((h) => { client.end(); return h })])
    const report = JSON.parse(String((await server.lines.next()).value)) as { recvBytes: number; recvHash: string; sentHash: string }
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    console.log(`${name}: ${bulk / MiB} MiB each way in ${s.toFixed(2)} s`)
    expect(report.recvBytes).toBe(bulk)
    expect(report.recvHash).toBe(upHash)
    expect(down.bytes).toBe(bulk)
    expect(down.hash).toBe(report.sentHash)
    expect((await rec.done).stats).toEqual({ bytesUp: bulk, bytesDown: bulk, errno: 0 })
    client.destroy()
    await fwd.close()
    await stopServer(server)
  }, 60_000)

  it('carries half-close: the client shuts its write side, the response still arrives', async () => {
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      let n = 0
      s.on('data', (d: Buffer) => { n += d.length })
      s.on('end', () => { s.end(`got ${n} bytes`) })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const fwd = make()
    const { client, rec } = await through(fwd, (server.address() as net.AddressInfo).port)
    client.end(Buffer.alloc(300_000, 7)) // request body, then FIN
    const got: Buffer[] = []
    client.on('data', (d: Buffer) => got.push(d))
    await new Promise((resolve) => client.once('end', resolve))
    expect(Buffer.concat(got).toString()).toBe('got 300000 bytes')
    expect((await rec.done).stats).toMatchObject({ bytesUp: 300_000, bytesDown: 16, errno: 0 })
    client.destroy()
    await fwd.close()
    await new Promise((resolve) => server.close(resolve))
  })

  it('a slow reader holds the server back with bounded memory', async () => {
    const total = 256 * MiB
    let sock: net.Socket | undefined
    let sentHash: Promise<string> | undefined
    const server = net.createServer((s) => { sock = s; sentHash = writePattern(s, total, 2).then((h) => { s.end(); return h }) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const fwd = make()
    const rss0 = process.memoryUsage().rss
    const { client, rec } = await through(fwd, (server.address() as net.AddressInfo).port)
    client.pause()
    await new Promise((resolve) => setTimeout(resolve, 700))
    const accepted = sock!.bytesWritten - sock!.writableLength
    const grown = process.memoryUsage().rss - rss0
    console.log(`${name}: stalled reader: server got ${(accepted / MiB).toFixed(1)} MiB out, rss +${(grown / MiB).toFixed(1)} MiB`)
    expect(accepted).toBeLessThan(64 * MiB)
    expect(grown).toBeLessThan(64 * MiB)
    const down = await readHash(client.resume())
    expect(down.bytes).toBe(total)
    expect(down.hash).toBe(await sentHash)
    client.end()
    expect((await rec.done).stats?.errno).toBe(0)
    await fwd.close()
    await new Promise((resolve) => server.close(resolve))
  })

  it('small writes to a stalled reader: every byte arrives, in order', async () => {
    // 12 KB writes, 1 ms apart: each is read whole, below the 16 KiB copy buffer (the recv+send path). Once the
    // paused client's receive queue is full, a partial send must keep the rest (in a pipe) and lose nothing.
    const chunks = 8004
    const server = net.createServer((s) => {
      let i = 0
      const more = (): void => {
        if (i >= chunks) { s.end(); return }
        const b = Buffer.alloc(12 * 1000)
        for (let k = 0; k < 12; k++, i++) { b.fill(i % 251, k * 1000, (k + 1) * 1000); b.writeUInt32LE(i, k * 1000) }
        if (s.write(b)) setTimeout(more, 1)
        else s.once('drain', more)
      }
      more()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const fwd = make()
    const { client, rec } = await through(fwd, (server.address() as net.AddressInfo).port)
    client.pause()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const got: Buffer[] = []
    client.on('data', (d: Buffer) => got.push(d))
    client.resume()
    await new Promise((resolve) => client.once('end', resolve))
    const all = Buffer.concat(got)
    expect(all.length).toBe(chunks * 1000)
    for (let i = 0; i < chunks; i++) {
      const b = all.subarray(i * 1000, (i + 1) * 1000)
      if (b.readUInt32LE(0) !== i || b[999] !== i % 251) throw new Error(`chunk ${i} is wrong`)
    }
    client.end()
    expect((await rec.done).stats).toMatchObject({ bytesDown: chunks * 1000, errno: 0 })
    await fwd.close()
    await new Promise((resolve) => server.close(resolve))
  })

  it('small data and FIN in one go: the data and the EOF both get through', async () => {
    const echo = await echoServer()
    const fwd = make()
    const one = async (i: number): Promise<void> => {
      const { client, rec } = await through(fwd, echo.port)
      client.setEncoding('latin1')
      let got = ''
      client.on('data', (d: string) => { got += d })
      client.end(`msg ${i}`)
      await new Promise((resolve) => client.once('end', resolve))
      client.destroy()
      expect(got).toBe(`msg ${i}`)
      expect((await rec.done).stats).toMatchObject({ bytesUp: got.length, bytesDown: got.length, errno: 0 })
    }
    for (let i = 0; i < 300; i++) await one(i) // one at a time: through() pairs the next accept with this client
    await fwd.close()
    await echo.close()
  })

  it('a server killed mid-stream closes the client and ends the relay', async () => {
    const server = await spawnServer(['stream'])
    const fwd = make()
    const { client, rec } = await through(fwd, server.port, { allowHalfOpen: false })
    let got = 0
    const closed = new Promise<string>((resolve) => {
      client.on('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)))
      client.on('close', () => resolve('close'))
    })
    await new Promise<void>((resolve) => client.on('data', (d: Buffer) => { got += d.length; if (got > 4 * MiB) resolve() }))
    await stopServer(server)
    expect(['close', 'ECONNRESET', 'EPIPE']).toContain(await closed)
    const { stats } = await rec.done
    expect(stats?.bytesDown).toBeGreaterThan(4 * MiB)
    expect(fwd.active).toBe(0)
    await fwd.close()
  })

  it('relays to a Unix stream socket target', async () => {
    const sockPath = path.join('/tmp', `baton-relay-${process.pid}-${name}.sock`)
    const server = net.createServer((s) => s.pipe(s))
    await new Promise<void>((resolve) => server.listen(sockPath, resolve))
    const fwd = make()
    const client = await connectClient(port)
    const rec = recorder()
    fwd.forward(connOf(rec, { ...targetOf(0), path: sockPath }, await listener.next()))
    client.end('over unix')
    const got: Buffer[] = []
    client.on('data', (d: Buffer) => got.push(d))
    await new Promise((resolve) => client.once('end', resolve))
    expect(Buffer.concat(got).toString()).toBe('over unix')
    expect((await rec.done).stats?.errno).toBe(0)
    client.destroy()
    await fwd.close()
    await new Promise((resolve) => server.close(resolve))
  })

  it('fd and pipe counts return to their start after 2,000 relayed connections', async () => {
    const echo = await echoServer()
    const fds0 = fdCount()
    const pipes0 = pipeCount()
    const fwd = make()
    const one = async (): Promise<void> => {
      const client = await connectClient(port)
      client.write('ping')
      const rec = recorder()
      fwd.forward(connOf(rec, targetOf(echo.port), await listener.next()))
      await new Promise((resolve) => client.once('data', resolve))
      client.end()
      await new Promise((resolve) => client.once('end', resolve))
      client.destroy()
      expect((await rec.done).stats).toEqual({ bytesUp: 4, bytesDown: 4, errno: 0 })
    }
    const run = async (n: number, concurrency: number): Promise<void> => {
      let left = n
      await Promise.all(Array.from({ length: concurrency }, async () => { while (left-- > 0) await one() }))
    }
    await run(200, 50) // fills the pipe pool
    const fdsWarm = fdCount()
    const pipesWarm = pipeCount()
    const t0 = process.hrtime.bigint()
    await run(2000, 50)
    console.log(`${name}: 2000 connections in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms`)
    expect(fwd.active).toBe(0)
    expect(fdCount()).toBe(fdsWarm)
    expect(pipeCount()).toBe(pipesWarm)
    if (name === 'splice') {
      const st = (fwd as ReturnType<typeof spliceForwarder>).stats()
      expect(st).toMatchObject({ relaying: 0, connecting: 0, errors: 0, failed: 0 })
      expect(st.pipes).toBe(st.pooled)
    }
    await fwd.close()
    await echo.close()
    expect(fdCount()).toBe(fds0 - 1) // the echo server's listening socket is gone too
    expect(pipeCount()).toBe(pipes0)
  })
})

// Pipes are held only while bytes are in flight: idle keep-alive relays cost their two sockets. The clients
// and the upstream echo server run in a child process, so /proc/self/fd here counts only the relay's fds.
const CHILD = `
const net = require('node:net')
const clients = []
const server = net.createServer((s) => { s.on('error', () => {}); s.pipe(s) })
function exchange (c, msg) {
  return new Promise((resolve, reject) => {
    let got = ''
    const onData = (d) => { got += d; if (got.length >= msg.length) { c.off('data', onData); got === msg ? resolve() : reject(new Error('got ' + got)) } }
    c.on('data', onData)
    c.write(msg)
  })
}
function open (port, i) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => { exchange(c, 'GET /' + i + ' HTTP/1.1\\r\\n\\r\\n').then(() => resolve(c), reject) })
    c.setEncoding('latin1')
    c.once('error', reject)
  })
}
process.on('message', async (m) => {
  try {
    if (m.open !== undefined) {
      let next = 0
      await Promise.all(Array.from({ length: 100 }, async () => { while (next < m.open) { const i = next++; clients[i] = await open(m.port, i) } }))
      process.send({ opened: clients.length })
    } else if (m.sample !== undefined) {
      let ok = 0
      for (let i = 0; i < clients.length; i += m.sample) { await exchange(clients[i], 'again ' + i); ok++ }
      process.send({ ok })
    } else if (m.close) {
      await Promise.all(clients.map((c) => new Promise((resolve) => { c.once('close', resolve); c.end() })))
      process.send({ closed: true })
    }
  } catch (err) { process.send({ error: String(err) }) }
})
server.listen(0, '127.0.0.1', () => process.send({ echo: server.address().port }))
`

function softFdLimit (): number {
  const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
  const soft = line?.split(/\s{2,}/)[1]
  return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft)
}

describe.runIf(linux && native.available)('splice relay: idle connections hold no pipes', () => {
  // Here: 2 fds per relay plus the pool and transients; in the child: client + server socket per relay.
  const n = Math.min(3000, Math.floor((softFdLimit() - fdCount() - 400) / 2.2))
  if (n < 1000) console.warn(`relay idle fd test skipped: soft fd limit ${softFdLimit()} is too low for 1,000 connections (ulimit -n)`)

  it.runIf(n >= 1000)(`${n} idle keep-alive relays cost ~2 fds each; the pool stays bounded`, async () => {
    const listener = new FdListener()
    const port = await listener.listen()
    const child = spawn(process.execPath, ['-e', CHILD], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const replies: Array<Record<string, unknown>> = []
    let wake: (() => void) | undefined
    child.on('message', (m: Record<string, unknown>) => { replies.push(m); wake?.() })
    const reply = async (): Promise<Record<string, unknown>> => {
      while (replies.length === 0) await new Promise<void>((resolve) => { wake = resolve })
      const m = replies.shift()!
      if (m.error !== undefined) throw new Error(`child: ${String(m.error)}`)
      return m
    }
    const echoPort = Number((await reply()).echo)
    const fds0 = fdCount()
    const pipes0 = pipeCount()
    const fwd = spliceForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const recs: ReturnType<typeof recorder>[] = []
    const t0 = process.hrtime.bigint()
    child.send({ open: n, port })
    for (let i = 0; i < n; i++) {
      const rec = recorder()
      recs.push(rec)
      fwd.forward(connOf(rec, targetOf(echoPort), await listener.next()))
    }
    await Promise.all(recs.map((r) => r.takenP))
    expect((await reply()).opened).toBe(n)
    const grown = fdCount() - fds0
    const pipes = pipeCount() - pipes0
    const st = fwd.stats()
    console.log(`splice: ${n} idle relays in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0)} ms: ` +
      `fds +${grown} (${(grown / n).toFixed(3)} per relay), pipe fds +${pipes}, pipes ${st.pipes} (pooled ${st.pooled})`)
    expect(st).toMatchObject({ relaying: n, connecting: 0, errors: 0, failed: 0 })
    expect(st.pipes).toBe(st.pooled) // no idle relay holds a pipe
    expect(st.pooled).toBeLessThanOrEqual(64)
    expect(pipes).toBeLessThanOrEqual(2 * 64)
    expect(grown).toBeLessThan(2 * n + 200)
    child.send({ sample: 10 })
    expect((await reply()).ok).toBe(Math.ceil(n / 10))
    expect(fwd.stats().pipes).toBe(fwd.stats().pooled)
    child.send({ close: true })
    await reply()
    const done = await Promise.all(recs.map((r) => r.done))
    expect(done.every((d) => d.stats?.errno === 0)).toBe(true)
    expect(fwd.active).toBe(0)
    expect(fwd.stats()).toMatchObject({ relaying: 0, errors: 0 })
    await fwd.close()
    expect(fdCount()).toBe(fds0)
    expect(pipeCount()).toBe(pipes0)
    child.kill()
    await listener.close()
  }, 30_000)
})
