// Where connections come in. Native: the addon listens and accepts (TCP_DEFER_ACCEPT, accept4, an immediate
// MSG_PEEK), so Node never reads a socket that will be handed off. JS (no addon): a net.Server reads the head
// itself, and the connection is relayed with its already-read bytes.
import net from 'node:net'
import type { ListenAddress } from '../config/types'
import { native } from '../native/binding'
import type { AcceptorHandle } from '../native/types'
import type { DataPath } from './dispatcher'
import { sniffHead } from './sniff'

export interface Listener {
  readonly host: string
  readonly port: number
  close (): Promise<void>
}

const BACKLOG = 4096

export function listenNative (addr: ListenAddress, path: DataPath, maxHeaderBytes: number,
  headerTimeoutMs: number): Listener {
  // The kernel holds a connection that has sent nothing for up to this long before accept() returns it.
  const deferS = Math.max(1, Math.ceil(headerTimeoutMs / 1000))
  const { fd, port } = native.listenTcp(addr.host, addr.port, BACKLOG, deferS)
  const peekBuf = Buffer.allocUnsafe(maxHeaderBytes)
  let acceptor: AcceptorHandle
  try {
    acceptor = native.createAcceptor(fd, peekBuf, (cfd, peeked, address, cport) => {
      path.accepted(path.newConn(cfd, undefined, address, cport, addr.host, port), peekBuf, peeked)
    })
    acceptor.start()
  } catch (err) {
    native.close(fd)
    throw err
  }
  return {
    host: addr.host,
    port,
    close: async () => {
      acceptor.close()
      native.close(fd)
    },
  }
}

export async function listenJs (addr: ListenAddress, path: DataPath, maxHeaderBytes: number,
  headerTimeoutMs: number): Promise<Listener> {
  let port = 0 // the bound port, known once listen() completes; no connection arrives before that
  const server = net.createServer({ noDelay: true }, (socket) => {
    readHead(socket, path, maxHeaderBytes, headerTimeoutMs, addr.host, port)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: addr.host, port: addr.port, backlog: BACKLOG }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  port = (server.address() as net.AddressInfo).port
  return {
    host: addr.host,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

function readHead (socket: net.Socket, path: DataPath, max: number, timeoutMs: number, localHost: string,
  port: number): void {
  const conn = path.newConn(-1, socket, socket.remoteAddress ?? '', socket.remotePort ?? 0, localHost, port)
  let buf: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => { cleanup(); path.answer(conn, 408, 'BATON_ERR_HEADER_TIMEOUT', 'head not complete in time') }, timeoutMs)
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    const r = sniffHead(buf, Math.min(buf.length, max), max)
    if (r.kind === 'incomplete') return
    cleanup()
    socket.pause()
    conn.consumed = buf
    path.sniffed(conn, r)
  }
  const onEnd = (): void => { cleanup(); path.gone(conn, 'closed mid-head') }
  const cleanup = (): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('end', onEnd)
    socket.off('error', onEnd)
  }
  socket.on('data', onData)
  socket.on('end', onEnd)
  socket.on('error', onEnd)
}
