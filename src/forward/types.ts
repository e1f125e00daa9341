// The forwarding-method contract. The dispatcher owns the client until a forwarder says it has taken it.
import type { BatonError } from '../errors'
import type { Socket } from 'node:net'

export interface ForwardConn {
  /** Connection id, unique per dispatcher process (logs, handoff metadata). */
  readonly id: number
  /** Client fd (native path), or -1 when the client is a net.Socket (no addon). */
  readonly fd: number
  /** The client as a Node socket when the dispatcher had to build one (no addon, or pipe). */
  readonly socket: Socket | undefined
  /** Bytes the dispatcher already consumed from the client (JS ingress only); forward them first. */
  readonly consumed: Buffer | undefined
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
  readonly service: string
  readonly route: string
}

export interface ForwardTarget {
  readonly id: string
  /** Relayed servers: host/port. Handoff servers in JS mode: the stream socket path. */
  readonly host: string
  readonly port: number
  readonly path: string | undefined
  readonly proxyProtocol: 'v1' | 'v2' | undefined
}

export interface ForwardStats {
  readonly bytesUp: number
  readonly bytesDown: number
  /** 0, or the errno that ended the connection. */
  readonly errno: number
}

export interface ForwardCallbacks {
  /**
   * The forwarder took the client: from now on it owns the client's fd/socket, and the dispatcher
   * must not touch them. Called at most once, before closed().
   */
  taken (): void
  /**
   * Nothing reached the client and the forwarder gave the client back (it still belongs to the dispatcher).
   * `err.retryable` says whether another server may be tried.
   */
  failed (err: BatonError): void
  /** A taken connection ended. Counters drop here. */
  closed (stats: ForwardStats): void
}

export interface Forwarder {
  readonly method: 'splice' | 'pipe'
  forward (conn: ForwardConn, target: ForwardTarget, cb: ForwardCallbacks): void
  /** Active relayed connections. */
  readonly active: number
  /** Stops accepting work, ends relays, joins threads. */
  close (): Promise<void>
}
