// Where connections come in. Native: the addon listens and accepts (TCP_DEFER_ACCEPT, accept4, an immediate
// MSG_PEEK), so Node never reads a socket that will be handed off. JS (no addon): a net.Server gives each
// socket to the data path, which reads the head itself and relays the connection with its already-read bytes.
import net from 'node:net'
import type { ListenAddress, LimitsConfig } from '../config/types'
import { native } from '../native/binding'
import type { AcceptorHandle } from '../native/types'
import type { DataPath, LocalEnd } from './data-path'

export interface Listener extends LocalEnd {
  /** The listening socket (native listeners only): what a takeover hands to a new process. */
  readonly fd?: number
  /** Wall-clock ms (sub-ms precision) of the first and the last accept, NaN before any. */
  readonly firstAcceptAt?: number
  readonly lastAcceptAt?: number
  /** The client port of the first accepted connection (a takeover's bench matches it to its client). */
  readonly firstAcceptPort?: number
  close (): Promise<void>
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes of one host. */
export function wallMs (): number { return performance.timeOrigin + performance.now() }

const BACKLOG = 4096

/** Listens natively; the peek buffer is sized by the limits in force at start (heads larger get 431). */
export function listenNative (addr: ListenAddress, path: DataPath, limits: LimitsConfig): Listener {
  // The kernel holds a connection that has sent nothing for up to this long before accept() returns it.
  const deferS = Math.max(1, Math.ceil(limits.headerTimeoutMs / 1000))
  const { fd, port } = native.listenTcp(addr.host, addr.port, BACKLOG, deferS)
  return listenNativeFd(fd, { host: addr.host, port }, path, limits)
}

/**
 * Accepts on a listening socket that already exists (one taken over from another process, which may still
 * accept on it too). On failure the fd is closed. TCP_DEFER_ACCEPT and the backlog are the socket's own.
 */
export function listenNativeFd (fd: number, local: LocalEnd, path: DataPath, limits: LimitsConfig): Listener {
  const l = armNativeFd(fd, local, path, limits)
  l.start()
  return l
}

/** A listener whose acceptor is built but not started: start() makes it accept (a takeover's last step). */
export interface ArmedListener extends Listener { start (): void }

/** listenNativeFd without the start: everything the first accept needs is built. On failure the fd is closed. */
export function armNativeFd (fd: number, local: LocalEnd, path: DataPath, limits: LimitsConfig): ArmedListener {
  const peekBuf = Buffer.allocUnsafe(limits.maxHeaderBytes)
  let acceptor: AcceptorHandle
  let first = NaN
  let last = NaN
  let firstPort = 0
  try {
    acceptor = native.createAcceptor(fd, peekBuf, (cfd, peeked, address, cport) => {
      last = wallMs()
      if (Number.isNaN(first)) { first = last; firstPort = cport }
      path.accept(cfd, peekBuf, peeked, address, cport, local)
    })
  } catch (err) {
    native.close(fd)
    throw err
  }
  return {
    ...local,
    fd,
    get firstAcceptAt () { return first },
    get lastAcceptAt () { return last },
    get firstAcceptPort () { return firstPort },
    start: () => { acceptor.start() },
    close: async () => {
      acceptor.close()
      native.close(fd)
    },
  }
}

export async function listenJs (addr: ListenAddress, path: DataPath): Promise<Listener> {
  const local = { host: addr.host, port: 0 } // the bound port, known once listen() completes
  const server = net.createServer({ noDelay: true }, (socket) => { path.acceptSocket(socket, local) })
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
