// Loopback TCP connections for the TCP_REPAIR tests (repair.test.ts, repair-wire.test.ts,
// migrate-out.test.ts): a net.Socket client and the accepted server fd, which Node never reads, so the
// kernel's receive queue is what a dump sees.
import { once } from 'node:events'
import net from 'node:net'

import { native } from '../../src/native/binding'
import { until } from './netns'

/** A connection to a listener on listenHost (default: host), from a net.Socket client to host. */
export async function openPair (host = '127.0.0.1', listenHost = host): Promise<{ listenFd: number; port: number; client: net.Socket; fd: number }> {
  const l = native.listenTcp(listenHost, 0, 8, 0)
  const client = net.connect(l.port, host)
  client.setNoDelay(true)
  await once(client, 'connect')
  let fd = -1
  await until('accept', () => (fd = native.accept(l.fd)) >= 0)
  return { listenFd: l.fd, port: l.port, client, fd }
}

/** Resolves once exactly n bytes wait in fd's receive queue. */
export async function queued (fd: number, n: number): Promise<void> {
  const buf = Buffer.alloc(n + 1)
  await until(`${n} bytes queued`, () => native.peek(fd, buf) === n)
}

/** A connection whose request `req` waits unread in the server's queue; ended(): the client saw a FIN or an RST. */
export async function requestPair (req: Buffer): Promise<Awaited<ReturnType<typeof openPair>> & { ended: () => boolean }> {
  const p = await openPair()
  let ended = false
  p.client.on('end', () => { ended = true })
  p.client.on('error', () => { ended = true })
  p.client.write(req)
  await queued(p.fd, req.length)
  return { ...p, ended: () => ended }
}
