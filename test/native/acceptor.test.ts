// Native listener and acceptor on real sockets: TCP_DEFER_ACCEPT, peek into the acceptor's buffer,
// peer address, EOF before any byte, tick draining between callbacks, a throwing callback.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { BatonNativeError } from '../../src/errors'
import { native } from '../../src/native/binding'
import type { AcceptorHandle } from '../../src/native/types'

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function settleFds (expected: number): Promise<number> {
  for (let i = 0; i < 50 && fdCount() !== expected; i++) await sleep(20)
  return fdCount()
}

interface Accepted { fd: number; peeked: number; head: string; address: string; port: number }

describe.runIf(process.platform === 'linux' && native.available)('native acceptor', () => {
  let before = 0
  const cleanups: Array<() => void> = []

  beforeEach(() => { before = fdCount() })
  afterEach(async () => {
    while (cleanups.length > 0) cleanups.pop()?.()
    expect(await settleFds(before)).toBe(before)
  })

  /** A native listener + acceptor; every accepted fd is recorded and closed at teardown. */
  function listen (host: string, deferAcceptS: number, start = true) {
    const { fd, port } = native.listenTcp(host, 0, 64, deferAcceptS)
    const peekBuf = Buffer.alloc(16 * 1024)
    const accepted: Accepted[] = []
    const waiters: Array<() => void> = []
    const acceptor: AcceptorHandle = native.createAcceptor(fd, peekBuf, (cfd, peeked, address, cport) => {
      const head = peeked > 0 ? peekBuf.toString('latin1', 0, peeked) : ''
      accepted.push({ fd: cfd, peeked, head, address, port: cport })
      waiters.splice(0).forEach((w) => w())
    })
    cleanups.push(() => {
      acceptor.close()
      native.close(fd)
      for (const a of accepted) native.close(a.fd)
    })
    if (start) acceptor.start()
    const next = async (count: number): Promise<Accepted[]> => {
      while (accepted.length < count) await new Promise<void>((resolve) => waiters.push(resolve))
      return accepted
    }
    return { port, acceptor, accepted, next }
  }

  function connect (port: number, host = '127.0.0.1'): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => resolve(s)).on('error', reject)
      cleanups.push(() => s.destroy())
    })
  }

  it('listens on port 0 with TCP_DEFER_ACCEPT and peeks what the client wrote', async () => {
    const l = listen('127.0.0.1', 5)
    expect(l.port).toBeGreaterThan(0)
    const client = await connect(l.port)
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    const [a] = await l.next(1)
    expect(a?.peeked).toBe(27)
    expect(a?.head).toBe('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(a?.address).toBe(client.localAddress)
    expect(a?.port).toBe(client.localPort)
    // MSG_PEEK: the bytes are still queued for the next reader.
    const again = Buffer.alloc(64)
    expect(native.peek(a!.fd, again)).toBe(27)
  })

  it('reports peeked 0 for a client that closed without writing', async () => {
    const l = listen('127.0.0.1', 0, false)
    const client = await connect(l.port)
    await new Promise<void>((resolve) => client.end(resolve))
    await sleep(50) // the FIN is queued before the accept
    l.acceptor.start()
    const [a] = await l.next(1)
    expect(a?.peeked).toBe(0)
  })

  it('reports -EAGAIN when nothing was sent yet (no defer)', async () => {
    const l = listen('127.0.0.1', 0)
    await connect(l.port)
    const [a] = await l.next(1)
    expect(a?.peeked).toBe(-native.constants.EAGAIN)
  })

  it('accepts IPv6 and shows IPv4-mapped peers as IPv4', async () => {
    let v6: ReturnType<typeof listen>
    try {
      v6 = listen('[::1]', 0)
    } catch {
      return // no IPv6 on this host
    }
    const c6 = await connect(v6.port, '::1')
    const [a6] = await v6.next(1)
    expect(a6?.address).toBe('::1')
    expect(a6?.port).toBe(c6.localPort)

    const any = listen('::', 0)
    const c4 = await connect(any.port, '127.0.0.1')
    const [a4] = await any.next(1)
    expect(a4?.address).toBe('127.0.0.1')
    expect(a4?.port).toBe(c4.localPort)
  })

  it('throws BatonNativeError for a busy port and a bad host', () => {
    const l = listen('127.0.0.1', 0, false)
    const err = (() => { try { native.listenTcp('127.0.0.1', l.port, 8, 0) } catch (e) { return e } })()
    expect(err).toBeInstanceOf(BatonNativeError)
    expect(err).toMatchObject({ code: 'BATON_ERR_NATIVE_CALL', errnoCode: 'EADDRINUSE', syscall: 'bind' })
    expect(() => native.listenTcp('not-an-ip', 0, 8, 0)).toThrow(BatonNativeError)
    expect(() => native.listenTcp('127.0.0.1', 70000, 8, 0)).toThrow(/port/)
  })

  it('drains process.nextTick between two connections of one wakeup', async () => {
    const { fd, port } = native.listenTcp('127.0.0.1', 0, 64, 0)
    const order: string[] = []
    const fds: number[] = []
    const acceptor = native.createAcceptor(fd, Buffer.alloc(256), (cfd) => {
      fds.push(cfd)
      const n = fds.length
      order.push(`conn${n}`)
      process.nextTick(() => order.push(`tick${n}`))
    })
    cleanups.push(() => { acceptor.close(); native.close(fd); fds.forEach((f) => native.close(f)) })
    await Promise.all([connect(port), connect(port)])
    acceptor.start()
    while (fds.length < 2) await sleep(5)
    await sleep(5)
    expect(order).toEqual(['conn1', 'tick1', 'conn2', 'tick2'])
  })

  it('routes a throwing callback to uncaughtException and keeps accepting', () => {
    const addon = path.resolve(__dirname, '../../native/build/Release/baton.node')
    const script = `
      const m = require(${JSON.stringify(addon)}); const net = require('net')
      const { fd, port } = m.baton_tcp_listen('127.0.0.1', 0, 16, 0)
      let n = 0, ticks = 0, uncaught = 0
      process.on('uncaughtException', (e) => { if (e.message !== 'boom') throw e; uncaught++ })
      const a = m.baton_acceptor_create(fd, Buffer.alloc(64), (cfd) => {
        n++; m.baton_fd_close(cfd); process.nextTick(() => ticks++)
        if (n === 1) throw new Error('boom')
        setTimeout(() => { console.log(JSON.stringify({ n, ticks, uncaught })); m.baton_acceptor_close(a); m.baton_fd_close(fd) }, 20)
      })
      m.baton_acceptor_start(a)
      net.connect(port, '127.0.0.1', function () { this.destroy(); net.connect(port, '127.0.0.1', function () { this.destroy() }) })
    `
    const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10_000 })
    expect(JSON.parse(out)).toEqual({ n: 2, ticks: 2, uncaught: 1 })
  })
})
