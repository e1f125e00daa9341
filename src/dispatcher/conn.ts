// One client connection while the dispatcher owns it: from accept until it is handed off, taken by a relay,
// or answered. Exactly one owner for the fd at any moment: `fd >= 0` (native) or `socket` (JS ingress) while
// the dispatcher owns it; both cleared when ownership moves on.
import type net from 'node:net'
import type { Service } from '../cluster/service'
import type { ServerState } from '../cluster/types'
import type { ForwardConn, MoveReason } from '../forward/types'
import type { RequestHead } from '../request/types'

export class Conn implements ForwardConn<ServerState> {
  readonly id: number
  fd: number
  socket: net.Socket | undefined
  consumed: Buffer | undefined = undefined
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
  /** performance.now() at accept. */
  readonly startedAt: number
  head: RequestHead | undefined = undefined
  svc: Service | undefined = undefined
  route = ''
  hashKey: string | undefined = undefined
  server: ServerState | undefined = undefined
  /** Servers that already failed for this connection (allocated on the first failure only). */
  avoid: Set<string> | undefined = undefined
  /** Later requests are checked (the service's keepAlive is reroute). */
  watch = false
  /** Set when the connection came back mid-way (a move): where from, why, and its id there. */
  moved: { readonly from: ServerState; readonly reason: MoveReason; readonly prevId: number } | undefined = undefined

  constructor (id: number, fd: number, socket: net.Socket | undefined, clientAddress: string, clientPort: number,
    localAddress: string, localPort: number, startedAt: number) {
    this.id = id
    this.fd = fd
    this.socket = socket
    this.clientAddress = clientAddress
    this.clientPort = clientPort
    this.localAddress = localAddress
    this.localPort = localPort
    this.startedAt = startedAt
  }

  get service (): string { return this.svc?.name ?? '' }

  /** Ownership moved on (forwarded or answered): the dispatcher holds nothing of the client any more. */
  release (): void {
    this.fd = -1
    this.socket = undefined
  }
}
