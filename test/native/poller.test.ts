// Poller (uv_poll_t) on real TCP sockets: a split head with SO_RCVLOWAT wakes once per segment and does
// not spin, DISCONNECT, close-then-close(fd), EEXIST on a socket libuv reads, GC of unclosed pollers.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { BatonNativeError } from '../../src/errors'
import { native } from '../../src/native/binding'

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function settleFds (expected: number): Promise<number> {
  for (let i = 0; i < 50 && fdCount() !== expected; i++) await sleep(20)
  return fdCount()
}

describe.runIf(process.platform === 'linux' && native.available)('native poller', () => {
  let before = 0
  const cleanups: Array<() => void> = []

  beforeEach(() => { before = fdCount() })
  afterEach(async () => {
    while (cleanups.length > 0) cleanups.pop()?.()
    expect(await settleFds(before)).toBe(before)
  })

  /** A connected pair: the client net.Socket and the server side as a raw fd (never read by libuv). */
  async function pair (): Promise<{ client: net.Socket; fd: number }> {
    const { fd: lfd, port } = native.listenTcp('127.0.0.1', 0, 8, 0)
    const client = net.connect({ port, host: '127.0.0.1' }).setNoDelay(true)
    client.on('error', () => {}) // closing the server side with unread bytes sends an RST
    cleanups.push(() => client.destroy())
    await new Promise((resolve) => client.once('connect', resolve))
    let fd = -native.constants.EAGAIN
    for (let i = 0; i < 100 && fd < 0; i++) { fd = native.accept(lfd); if (fd < 0) await sleep(5) }
    native.close(lfd)
    expect(fd).toBeGreaterThanOrEqual(0)
    return { client, fd }
  }

  it('wakes once per segment of a split head with SO_RCVLOWAT = peeked + 1', async () => {
    const { client, fd } = await pair()
    const buf = Buffer.alloc(1024)
    const peeks: number[] = []
    let wakeups = 0
    const poller = native.createPoller(fd, (status, events) => {
      expect(status).toBe(0)
      expect(events & native.constants.READABLE).toBeTruthy()
      wakeups++
      const n = native.peek(fd, buf)
      peeks.push(n)
      native.setRcvLowat(fd, n + 1)
    })
    cleanups.push(() => { poller.close(); native.close(fd) })
    poller.start(native.constants.READABLE)
    await sleep(50)
    expect(wakeups).toBe(0)
    for (const [i, part] of ['GET / HT', 'TP/1.1\r\nHost: a\r\n', '\r\n'].entries()) {
      client.write(part)
      await sleep(100) // a level-triggered poll without the low-water mark would fire thousands of times here
      expect(wakeups).toBe(i + 1)
    }
    expect(peeks).toEqual([8, 25, 27])
    native.setRcvLowat(fd, 1)
  })

  it('reports DISCONNECT when the client leaves with a partial head', async () => {
    const { client, fd } = await pair()
    const events: number[] = []
    const poller = native.createPoller(fd, (status, ev) => { if (status === 0) events.push(ev) })
    cleanups.push(() => { poller.close(); native.close(fd) })
    client.write('GET /')
    await sleep(20)
    native.setRcvLowat(fd, 6)
    poller.start(native.constants.READABLE | native.constants.DISCONNECT)
    await sleep(30)
    expect(events).toEqual([])
    client.end()
    while (events.length === 0) await sleep(5)
    poller.stop()
    expect(events[0]! & native.constants.DISCONNECT).toBeTruthy()
    expect(native.peek(fd, Buffer.alloc(16))).toBe(5)
  })

  it('closes synchronously: the fd can be closed right after, and close is idempotent', async () => {
    const { client, fd } = await pair()
    let calls = 0
    const poller = native.createPoller(fd, () => { calls++ })
    poller.start(native.constants.READABLE)
    client.write('x')
    poller.close()
    native.close(fd)
    poller.close()
    poller.stop()
    await sleep(50)
    expect(calls).toBe(0)
    expect(() => poller.start(native.constants.READABLE)).toThrow(/closed/)
  })

  it('throws EEXIST on an fd libuv already reads', async () => {
    const { fd: lfd, port } = native.listenTcp('127.0.0.1', 0, 8, 0)
    cleanups.push(() => native.close(lfd))
    const client = net.connect({ port, host: '127.0.0.1' })
    cleanups.push(() => client.destroy())
    await new Promise((resolve) => client.once('connect', resolve))
    cleanups.push(() => { const a = native.accept(lfd); if (a >= 0) native.close(a) })
    await sleep(10) // the client socket started reading
    const clientFd = (client as unknown as { _handle: { fd: number } })._handle.fd
    const err = (() => { try { native.createPoller(clientFd, () => {}) } catch (e) { return e } })()
    expect(err).toBeInstanceOf(BatonNativeError)
    expect(err).toMatchObject({ errnoCode: 'EEXIST', syscall: 'uv_poll_init' })
  })

  it('survives GC: an unclosed idle poller is closed by its finalizer, an active one keeps firing', () => {
    const addon = path.resolve(__dirname, '../../native/build/Release/baton.node')
    const script = `
      const m = require(${JSON.stringify(addon)}); const net = require('net')
      const { fd, port } = m.baton_tcp_listen('127.0.0.1', 0, 16, 0)
      let collected = 0
      const reg = new FinalizationRegistry(() => collected++)
      ;(() => { const p = m.baton_poller_create(fd, () => {}); m.baton_poller_start(p, 1); m.baton_poller_stop(p); reg.register(p, 1) })()
      const spin = async (cond) => { for (let i = 0; i < 100 && !cond(); i++) { gc(); await new Promise((r) => setTimeout(r, 10)) } }
      ;(async () => {
        await spin(() => collected === 1)
        await new Promise((r) => setTimeout(r, 20))
        // the finalizer closed the uv handle: a new poller on the same fd is not EEXIST
        let fired = 0
        ;(() => {
          const p = m.baton_poller_create(fd, function () { fired++; m.baton_poller_close(this); m.baton_fd_close(m.baton_fd_accept(fd)) })
          m.baton_poller_start(p, 1)
        })()
        for (let i = 0; i < 5; i++) gc()
        const c = net.connect(port, '127.0.0.1', () => c.destroy())
        await spin(() => fired > 0)
        console.log(JSON.stringify({ collected, fired }))
        m.baton_fd_close(fd)
      })()
    `
    const out = execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 10_000 })
    expect(JSON.parse(out)).toEqual({ collected: 1, fired: 1 })
  })
})
