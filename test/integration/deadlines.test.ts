// Every connection the dispatcher owns has an absolute deadline that no client behaviour extends (head wait
// and post-answer drain alike), and their number is bounded by limits.maxPendingConns, oldest shed first.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Baton } from '../../src/baton'
import { native } from '../../src/native/binding'
import { exchange, fdCount, harness, ROOT, waitFor, type Harness } from '../helpers/cluster'

const GET = 'GET / HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n'

interface Trickler {
  readonly socket: net.Socket
  readonly closedAt: Promise<number>
  data: string
  stop (): void
}

/** Connects, sends `first`, then one byte every `everyMs` until the server closes the connection. */
function trickle (port: number, first: string, everyMs: number): Promise<Trickler> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    let timer: NodeJS.Timeout | undefined
    const t: Trickler = {
      socket,
      data: '',
      closedAt: new Promise((res) => socket.once('close', () => { clearInterval(timer); res(Date.now()) })),
      stop: () => { clearInterval(timer); socket.destroy() },
    }
    socket.on('data', (d) => { t.data += d.toString('latin1') })
    socket.on('error', () => {})
    socket.once('connect', () => {
      socket.write(first)
      timer = setInterval(() => { if (!socket.destroyed) socket.write('x') }, everyMs)
      resolve(t)
    })
    socket.once('error', reject)
  })
}

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

describe.runIf(process.platform === 'linux' && native.available)('dispatcher deadlines', () => {
  let h: Harness
  let b: Baton
  let port: number

  beforeAll(async () => {
    h = harness()
    await h.backend('A')
    b = await h.baton(`
listen: 127.0.0.1:0
limits: { headerTimeoutMs: 400, drainTimeoutMs: 300, maxPendingConns: 10 }
services: [ { name: s, servers: [ { name: A, handoff: ${h.sock('A')} } ] } ]
`)
    port = b.ports[0]!
    await waitFor(() => b.servers()[0]!.up)
  })
  afterAll(async () => { await h.close() })

  it('closes an answered client at drainTimeoutMs however it keeps sending (400)', async () => {
    const fds = fdCount()
    const t = await trickle(port, 'GARBAGE\r\n\r\n', 50)
    await waitFor(() => t.data.includes('\r\n\r\n'))
    const answeredAt = Date.now()
    expect(t.data).toMatch(/^HTTP\/1\.1 400 /)
    const closedAt = await t.closedAt
    expect(closedAt - answeredAt).toBeLessThan(2000) // 300 ms deadline; slack for a slow shared machine
    await waitFor(() => b.pending().head + b.pending().drain === 0)
    await waitFor(() => fdCount() === fds)
  })

  it('answers a trickled partial head with 408 at headerTimeoutMs, then closes at drainTimeoutMs', async () => {
    const start = Date.now()
    const t = await trickle(port, 'GET / HTTP/1.1\r\nX-Slow: ', 50)
    const closedAt = await t.closedAt
    expect(t.data).toMatch(/^HTTP\/1\.1 408 /)
    expect(closedAt - start).toBeLessThan(3000) // 400 + 300 ms of deadlines
  })

  it('sheds the oldest beyond maxPendingConns and still serves a normal client', async () => {
    const fds = fdCount()
    const shedBefore = b.pending().shed
    const slow: Trickler[] = []
    for (let i = 0; i < 25; i++) slow.push(await trickle(port, 'GET / HTTP/1.1\r\n', 1000))
    await waitFor(() => b.pending().shed - shedBefore >= 15)
    expect(b.pending().head).toBeLessThanOrEqual(10)
    // Fifteen were closed without an answer (the oldest: the order the dispatcher accepted them in, which
    // can differ from the order they connected in by a few places); ten still wait.
    let closed = 0
    for (const s of slow) void s.closedAt.then(() => { closed++ })
    await waitFor(() => closed >= 15)
    await new Promise((r) => setTimeout(r, 50))
    expect(closed).toBe(15)
    expect(slow.every((t) => t.data === '')).toBe(true)
    expect(slow.slice(0, 5).every((t) => t.socket.destroyed)).toBe(true)
    const ok = await exchange(port, GET)
    expect(ok.responses[0]?.status).toBe(200)
    for (const t of slow) t.stop()
    await waitFor(() => b.pending().head + b.pending().drain === 0, 5000)
    await waitFor(() => fdCount() === fds)
    await waitFor(() => h.logs.some((l) => l.outcome === 'shed' && l.code === 'BATON_ERR_PENDING_LIMIT'))
  })

  it('leaves no timer behind', async () => {
    await waitFor(() => b.pending().head + b.pending().drain === 0)
    const before = timers()
    const t = await trickle(port, 'GARBAGE\r\n\r\n', 50)
    await t.closedAt
    await waitFor(() => b.pending().drain === 0)
    expect(timers()).toBeLessThanOrEqual(before)
  })
})

// The review's case: 300 clients trickling a byte every 800 ms against a 200-descriptor limit.
describe.runIf(process.platform === 'linux' && native.available)('300 trickling clients, 200 descriptors', () => {
  let h: Harness
  let proc: ChildProcess | undefined
  const clients: Trickler[] = []
  afterAll(async () => {
    for (const t of clients) t.stop()
    proc?.kill('SIGKILL')
    await h.close()
  })

  it('serves a normal client within a second', async () => {
    h = harness()
    await h.backend('A')
    const port = await freePort()
    const file = path.join(h.dir, 'baton.yaml')
    fs.writeFileSync(file, `
listen: 127.0.0.1:${port}
log: { level: warn }
limits: { headerTimeoutMs: 5000, drainTimeoutMs: 1000, maxPendingConns: 100 }
services: [ { name: s, servers: [ { name: A, handoff: ${h.sock('A')} } ] } ]
`)
    proc = spawn('sh', ['-c', `ulimit -n 200 && exec "${process.execPath}" dist/src/cli/main.js start -c "${file}"`],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
    for (let i = 0; i < 50; i++) {
      if ((await exchange(port, GET).catch(() => undefined))?.responses[0]?.status === 200) break
      await new Promise((r) => setTimeout(r, 100))
    }
    for (let i = 0; i < 300; i++) {
      clients.push(await trickle(port, i % 2 === 0 ? 'GARBAGE\r\n\r\n' : 'GET / HTTP/1.1\r\nX-Slow: ', 800))
    }
    const t0 = Date.now()
    const r = await exchange(port, GET, { timeoutMs: 5000 })
    expect(r.responses[0]?.status).toBe(200)
    expect(Date.now() - t0).toBeLessThan(1000)
  })
})

function freePort (): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}
