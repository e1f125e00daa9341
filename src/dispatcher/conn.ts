// One client connection while the dispatcher owns it: from accept until it is handed off, taken by a relay,
// or answered. Exactly one owner for the fd at any moment: `fd >= 0` (native) or `socket` (JS ingress) while
// the dispatcher owns it; both cleared when ownership moves on.
import type net from 'node:net'
import type { ServerState } from '../cluster/types'
import type { ForwardConn } from '../forward/types'
import type { ServiceEntry } from './services'
import type { RequestHead } from './types'

export class Conn implements ForwardConn {
  readonly id: number
  fd: number
  socket: net.Socket | undefined
  consumed: Buffer | undefined
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
  /** performance.now() at accept. */
  readonly startedAt: number
  head: RequestHead | undefined = undefined
  entry: ServiceEntry | undefined = undefined
  route = ''
  hashKey: string | undefined = undefined
  server: ServerState | undefined = undefined
  /** Servers that already failed for this connection (allocated on the first failure only). */
  avoid: Set<string> | undefined = undefined

  constructor (id: number, fd: number, socket: net.Socket | undefined, clientAddress: string, clientPort: number,
    localAddress: string, localPort: number, startedAt: number) {
    this.id = id
    this.fd = fd
    this.socket = socket
    this.consumed = undefined
    this.clientAddress = clientAddress
    this.clientPort = clientPort
    this.localAddress = localAddress
    this.localPort = localPort
    this.startedAt = startedAt
  }

  get service (): string { return this.entry?.pool.name ?? '' }
}
