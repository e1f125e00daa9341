// The native splice relay through createSpliceForwarder: establish/close events, byte counts, connect
// failures that give the client back untouched, connect and idle timeouts, shutdown, and no fd leaks.
import net from 'node:net'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { native } from '../../src/native/binding'
import {
  FdListener, closedPort, connOf, connectClient, echoServer, fdCount, linux, recorder, targetOf, spliceForwarder,
} from '../integration/relay-helpers'

describe.runIf(linux && native.available)('native splice relay', () => {
  let listener: FdListener
  let port: number
  let echo: Awaited<ReturnType<typeof echoServer>>
  let startFds: number

  beforeAll(async () => {
    startFds = fdCount()
    listener = new FdListener()
    port = await listener.listen()
    echo = await echoServer()
  })

  afterAll(async () => {
    await echo.close()
    await listener.close()
  })

  it('relays both ways, carries half-close, reports byte counts and frees everything', async () => {
    const fwd = spliceForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(port)
    client.write('hello relay')
    const a = await listener.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(echo.port), a))
    expect(rec.events).toEqual([]) // never inside forward()
    await rec.takenP
    expect(fwd.active).toBe(1)
    const got: Buffer[] = []
    client.on('data', (d: Buffer) => got.push(d))
    client.write(' and more')
    client.end()
    await new Promise((resolve) => client.once('end', resolve))
    expect(Buffer.concat(got).toString()).toBe('hello relay and more')
    const { stats } = await rec.done
    expect(stats).toEqual({ bytesUp: 20, bytesDown: 20, errno: 0 })
    expect(rec.events).toEqual(['taken', 'closed'])
    expect(fwd.active).toBe(0)
    client.destroy()
    await fwd.close()
  })

  it('a refused connect fails retryable and leaves the client untouched', async () => {
    const fwd = spliceForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(port)
    client.write('GET / HTTP/1.1\r\n\r\n')
    const a = await listener.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(await closedPort()), a))
    const { failed } = await rec.done
    expect(failed?.code).toBe('BATON_ERR_CONNECT_FAILED')
    expect(failed?.retryable).toBe(true)
    expect(rec.events).toEqual(['failed'])
    // Still the dispatcher's: the head is unread and the socket works.
    const s = new net.Socket({ fd: a.fd, readable: true, writable: true })
    const head = await new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString())))
    expect(head).toBe('GET / HTTP/1.1\r\n\r\n')
    s.end('503')
    expect(await new Promise((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())))).toBe('503')
    client.destroy()
    s.destroy()
    await fwd.close()
  })

  it('a connect that hangs times out (retryable)', async () => {
    // A listener nobody accepts from, with its backlog filled: further SYNs are dropped.
    const l = native.listenTcp('127.0.0.1', 0, 0, 0)
    const fillers = [0, 1, 2].map(() => net.connect(l.port, '127.0.0.1').on('error', () => {}))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const fwd = spliceForwarder({ connectTimeoutMs: 150, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(port)
    const a = await listener.next()
    const rec = recorder()
    const t0 = Date.now()
    fwd.forward(connOf(rec, targetOf(l.port), a))
    const { failed } = await rec.done
    expect(failed?.code).toBe('BATON_ERR_CONNECT_TIMEOUT')
    expect(failed?.retryable).toBe(true)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140)
    native.close(a.fd)
    client.destroy()
    for (const f of fillers) f.destroy()
    native.close(l.fd)
    await fwd.close()
  })

  it('an idle relay is reset after idleTimeoutMs', async () => {
    const fwd = spliceForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 100, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(port)
    const a = await listener.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(echo.port), a))
    await rec.takenP
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve))
    expect(err.code).toBe('ECONNRESET')
    const { stats } = await rec.done
    expect(stats?.errno).toBe(110) // ETIMEDOUT
    client.destroy()
    await fwd.close()
  })

  it('close() fails connects in flight (not retryable) and resets relays', async () => {
    const fwd = spliceForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(port)
    const a = await listener.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(echo.port), a))
    await rec.takenP
    await fwd.close()
    const { stats } = await rec.done
    expect(stats?.errno).toBe(125) // ECANCELED
    const rec2 = recorder()
    fwd.forward(connOf(rec2, targetOf(echo.port), a))
    expect((await rec2.done).failed?.retryable).toBe(false)
    await new Promise((resolve) => client.once('close', resolve))
  })

  it('leaves no descriptor behind', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(fdCount()).toBe(startFds + 2) // the listener's and the echo server's
  })
})
