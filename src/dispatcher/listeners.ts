// Where connections come in. Native: the addon listens and accepts (TCP_DEFER_ACCEPT, accept4, an immediate
// MSG_PEEK), so Node never reads a socket that will be handed off. JS (no addon): a net.Server reads the head
// itself, and the connection is relayed with its already-read bytes.
import net from 'node:net'
import type { ListenAddress, LimitsConfig } from '../config/types'
import { native } from '../native/binding'
import type { AcceptorHandle } from '../native/types'
import { sniffHead } from '../request/sniff'
import type { DataPath, LocalEnd } from './data-path'
import type { HeadWaitResult } from './head-wait'

export interface Listener extends LocalEnd {
  close (): Promise<void>
}

const BACKLOG = 4096
const TIMEOUT: HeadWaitResult = { kind: 'timeout' }
const GONE: HeadWaitResult = { kind: 'gone' }

/** Listens natively; the peek buffer is sized by the limits in force at start (heads larger get 431). */
export function listenNative (addr: ListenAddress, path: DataPath, limits: LimitsConfig): Listener {
  // The kernel holds a connection that has sent nothing for up to this long before accept() returns it.
  const deferS = Math.max(1, Math.ceil(limits.headerTimeoutMs / 1000))
  const { fd, port } = native.listenTcp(addr.host, addr.port, BACKLOG, deferS)
  const local: LocalEnd = { host: addr.host, port }
  const peekBuf = Buffer.allocUnsafe(limits.maxHeaderBytes)
  let acceptor: AcceptorHandle
  try {
    acceptor = native.createAcceptor(fd, peekBuf, (cfd, peeked, address, cport) => {
      path.accept(cfd, peekBuf, peeked, address, cport, local)
    })
    acceptor.start()
  } catch (err) {
    native.close(fd)
    throw err
  }
  return {
    ...local,
    close: async () => {
      acceptor.close()
      native.close(fd)
    },
  }
}

export async function listenJs (addr: ListenAddress, path: DataPath): Promise<Listener> {
  const local = { host: addr.host, port: 0 } // the bound port, known once listen() completes
  const server = net.createServer({ noDelay: true }, (socket) => { readHead(socket, path, local) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: addr.host, port: addr.port, backlog: BACKLOG }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  local.port = (server.address() as net.AddressInfo).port
  return {
    ...local,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** Reads until the head is complete, rejected, timed out or abandoned, then gives the socket to the data path. */
function readHead (socket: net.Socket, path: DataPath, local: LocalEnd): void {
  const { maxHeaderBytes: max, headerTimeoutMs } = path.routing.limits
  let buf: Buffer = Buffer.alloc(0)
  const done = (r: HeadWaitResult): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('end', onEnd)
    socket.off('error', onEnd)
    socket.pause()
    path.acceptRead(socket, buf, r, local)
  }
  const timer = setTimeout(() => { done(TIMEOUT) }, headerTimeoutMs)
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    const r = sniffHead(buf, Math.min(buf.length, max), max)
    if (r.kind !== 'incomplete') done(r)
  }
  const onEnd = (): void => { done(GONE) }
  socket.on('data', onData)
  socket.on('end', onEnd)
  socket.on('error', onEnd)
}
