// The JavaScript relay's own cases: a client that is already a net.Socket with bytes the dispatcher consumed,
// connect failures that leave the client untouched, the connect and idle timeouts, and close().
import net from 'node:net'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { native } from '../../src/native/binding'
import {
  FdListener, closedPort, connOf, connectClient, echoServer, linux, recorder, targetOf, pipeForwarder, type TestForwarder,
} from './relay-helpers'
import type { Accepted } from './relay-helpers'

/** A listener that reads the first chunk itself, as the dispatcher does without the addon. */
async function socketListener (): Promise<{ port: number; next: () => Promise<{ a: Accepted; socket: net.Socket; consumed: Buffer }>; close: () => Promise<void> }> {
  const queue: Array<(v: { a: Accepted; socket: net.Socket; consumed: Buffer }) => void> = []
  const server = net.createServer((s) => {
    s.once('data', (consumed: Buffer) => {
      s.pause()
      const a = { fd: -1, clientAddress: s.remoteAddress ?? '', clientPort: s.remotePort ?? 0, localAddress: s.localAddress ?? '', localPort: s.localPort ?? 0 }
      queue.shift()?.({ a, socket: s, consumed })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => new Promise((resolve) => queue.push(resolve)),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

const factories: Array<[string, () => TestForwarder]> = [['pipe', () => pipeForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })]]

describe.runIf(linux)('pipe relay', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>
  beforeAll(async () => { echo = await echoServer() })
  afterAll(() => echo.close())

  it.each(factories)('%s: a net.Socket client: consumed bytes go first, after the PROXY header', async (_n, make) => {
    const lis = await socketListener()
    const fwd = make()
    const client = await connectClient(lis.port)
    client.write('GET /first')
    const { a, socket, consumed } = await lis.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(echo.port, { proxyProtocol: 'v1' }), a, { socket, consumed }))
    await rec.takenP
    client.end(' and the rest')
    const got: Buffer[] = []
    client.on('data', (d: Buffer) => got.push(d))
    await new Promise((resolve) => client.once('end', resolve))
    expect(Buffer.concat(got).toString())
      .toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${a.clientPort} ${lis.port}\r\nGET /first and the rest`)
    const { stats } = await rec.done
    expect(stats).toMatchObject({ bytesUp: 23, errno: 0 })
    client.destroy()
    await fwd.close()
    await lis.close()
  })

  it.runIf(native.available)('a refused connect fails retryable; the fd is untouched and still readable', async () => {
    const listener = new FdListener()
    const port = await listener.listen()
    const fwd = pipeForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(port)
    client.write('hello')
    const a = await listener.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(await closedPort()), a))
    const { failed } = await rec.done
    expect(failed).toMatchObject({ code: 'BATON_ERR_CONNECT_FAILED', retryable: true, source: 'backend' })
    // Retry elsewhere: the dispatcher picks another server with the same fd.
    const rec2 = recorder()
    fwd.forward(connOf(rec2, targetOf(echo.port), a))
    client.end()
    const got = await new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())))
    expect(got).toBe('hello')
    expect((await rec2.done).stats).toMatchObject({ bytesUp: 5, bytesDown: 5, errno: 0 })
    client.destroy()
    await fwd.close()
    await listener.close()
  })

  it.runIf(native.available)('a connect that never completes times out (retryable), and close() fails new work', async () => {
    // A listener nobody accepts from, with its backlog filled: further SYNs are dropped.
    const l = native.listenTcp('127.0.0.1', 0, 0, 0)
    const fillers = [0, 1, 2].map(() => net.connect(l.port, '127.0.0.1').on('error', () => {}))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const lis = await socketListener()
    const fwd = pipeForwarder({ connectTimeoutMs: 100, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const client = await connectClient(lis.port)
    client.write('x')
    const { a, socket, consumed } = await lis.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(l.port), a, { socket, consumed }))
    const { failed } = await rec.done
    expect(failed?.code).toBe('BATON_ERR_CONNECT_TIMEOUT')
    expect(failed?.retryable).toBe(true)
    expect(socket.destroyed).toBe(false)
    await fwd.close()
    const rec2 = recorder()
    fwd.forward(connOf(rec2, targetOf(echo.port), a, { socket, consumed }))
    expect((await rec2.done).failed?.retryable).toBe(false)
    client.destroy()
    socket.destroy()
    for (const f of fillers) f.destroy()
    native.close(l.fd)
    await lis.close()
  })

  it('an idle relay is reset; close() resets live relays and waits for closed()', async () => {
    const lis = await socketListener()
    const fwd = pipeForwarder({ connectTimeoutMs: 1000, idleTimeoutMs: 100, channelTimeoutMs: 2000, maxHeaderBytes: 16384 })
    const c1 = await connectClient(lis.port)
    c1.write('a')
    const one = await lis.next()
    const rec1 = recorder()
    fwd.forward(connOf(rec1, targetOf(echo.port), one.a, one))
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => c1.once('error', resolve))
    expect(err.code).toBe('ECONNRESET')
    expect((await rec1.done).stats?.errno).toBe(110)

    const c2 = await connectClient(lis.port)
    c2.write('b')
    const two = await lis.next()
    const rec2 = recorder()
    fwd.forward(connOf(rec2, targetOf(echo.port), two.a, two))
    await rec2.takenP
    expect(fwd.active).toBe(1)
    await fwd.close()
    expect(rec2.events).toEqual(['taken', 'closed'])
    expect((await rec2.done).stats?.errno).toBe(125)
    expect(fwd.active).toBe(0)
    c1.destroy()
    c2.destroy()
    await lis.close()
  })
})
