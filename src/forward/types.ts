// The forwarding-method contract, one interface for every method (IPVS binds one packet_xmit per
// destination; Baton binds one Forwarder per real server). The dispatcher owns a client until a forwarder
// says otherwise, and never asks which method a server uses: forwarders.ts picks the implementation.
//
// Who learns what: completions go to the data path through one ForwardSink; liveness and failures go to
// health through HealthInput. A forwarder never counts connections nor flips a server's state itself.
import type { Socket } from 'node:net'
import type { ForwardMethod } from '../config/types'
import type { BatonError } from '../errors'
import type { CheckAddress, HandbackReason } from '../protocol/handoff'
import type { SniffResult } from '../request/types'
import type { MigrateOptions } from './migrate'

export type { ForwardMethod }

/** Request times back ends reported (handoff: LATENCY), per LATENCY_BOUNDS bucket (one more above), seconds. */
export interface RequestTimes {
  readonly bounds: readonly number[]
  readonly counts: Float64Array
  sum: number
}

/** Why a connection moved at a request boundary: its next request routes elsewhere, or its server sheds load. */
export type MoveReason = HandbackReason

/** A client that came back to the dispatcher mid-connection: its fd (native), or its net.Socket (no addon). */
export interface ReturnedClient {
  readonly fd: number
  readonly socket: Socket | undefined
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
}

/** What a forwarder needs to reach one real server. Built once per server by method.ts. */
export interface ForwardTarget {
  readonly method: ForwardMethod
  /** Relayed servers: host and port (host empty for a path target). */
  readonly host: string
  readonly port: number
  /** Handoff servers: the SEQPACKET channel; `pipe` to a handoff back end without the addon: its stream socket. */
  readonly path: string | undefined
  readonly proxyProtocol: 'v1' | 'v2' | undefined
}

/** A real server as forwarders see it (the cluster's server state is one). */
export interface ForwardServer {
  /** The server's name, unique in its service. */
  readonly id: string
  /** The service it belongs to. */
  readonly service: string
  readonly target: ForwardTarget
}

export interface ForwardConn<S extends ForwardServer = ForwardServer> {
  /** Connection id, unique per dispatcher process (logs, handoff metadata). */
  readonly id: number
  /**
   * Client fd (native path), or -1 when the client is a net.Socket (no addon). Written by a forwarder only
   * when it replaced the descriptor before failed() (migrate: the socket restored from its dump).
   */
  fd: number
  /** The client as a Node socket when the dispatcher had to build one (no addon). */
  readonly socket: Socket | undefined
  /** Bytes the dispatcher already consumed from the client (JS ingress only); forward them first. */
  readonly consumed: Buffer | undefined
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
  readonly service: string
  readonly route: string
  /** The scheduler's pick; set before forward() is called. */
  readonly server: S | undefined
  /**
   * Later requests on this connection must be checked (the service's keepAlive is `reroute`): a relay asks
   * the sink at each request boundary (nextRequest); a handoff tells the back end (no HANDOFF_STICKY).
   */
  readonly watch: boolean
}

export interface ForwardStats {
  readonly bytesUp: number
  readonly bytesDown: number
  /** 0, or the errno that ended the connection. */
  readonly errno: number
}

/**
 * The data path's side of forwarding: every completion of every method arrives here, never through
 * closures made per connection. Exactly one of handedOff(), taken() or failed() follows each forward();
 * closed() follows taken() once the relayed connection ends.
 */
export interface ForwardSink<C extends ForwardConn<S>, S extends ForwardServer> {
  /** The connection left this process (handoff): the forwarder closed the dispatcher's fd. */
  handedOff (conn: C): void
  /** A relay took the client: it owns the client's fd/socket until closed(). */
  taken (conn: C): void
  /** A taken connection ended. */
  closed (conn: C, stats: ForwardStats): void
  /** Nothing reached the client; it is the dispatcher's again. `err.retryable`: another server may be tried. */
  failed (conn: C, err: BatonError): void
  /** Counter deltas a back end reported for connections it was handed (coalesced per event-loop turn). */
  feedback (server: S, dActive: number, dInactive: number, closed: number): void
  /** Every connection the server held is gone (its process died): its counters go to zero. */
  lost (server: S): void
  /**
   * A relay of a watched connection (conn.watch) read the head of a later request: undefined when it stays
   * with conn.server, else why it moves. `r` is sniffHead's result over the bytes read so far (never
   * 'incomplete'); a rejected head moves too (the data path answers it). Hot for relayed keep-alive.
   */
  nextRequest (conn: C, r: SniffResult): MoveReason | undefined
  /**
   * A client comes back at a request boundary: a handoff back end handed it back (HANDBACK), or a relay
   * stopped before a request that moves (after closed(), once every response before it was relayed).
   * `client` is the dispatcher's now; `consumed` starts with the next request's complete head and holds
   * every byte read after it. `from` already counted the connection down. The data path routes that
   * request and forwards the connection anew, or answers it.
   */
  returned (from: S, client: ReturnedClient, consumed: Buffer, reason: MoveReason, connId: number): void
}

/** Health's inputs from forwarders (src/health/state.ts implements it). */
export interface HealthInput<S extends ForwardServer> {
  /**
   * A liveness channel (handoff) came up or went down; `why` is for the log. `gone`: the channel itself closed,
   * so what the process behind it said (its REPORT) no longer holds.
   */
  channel (server: S, up: boolean, why: string, gone?: boolean): void
  /** A passive signal: connecting to the server failed, or it reset the connection before its first byte. */
  connectFailed (server: S, err: BatonError): void
  /** The back end's own report (handoff channel): ready / drain / maint and a weight percentage. */
  agent (server: S, state: 'ready' | 'drain' | 'maint' | undefined, percent: number | undefined): void
}

export interface Forwarder<C extends ForwardConn<S>, S extends ForwardServer> {
  readonly method: ForwardMethod
  /**
   * True when a server on this method is down until the forwarder reports it up through
   * HealthInput.channel (handoff: until its channel connects).
   */
  readonly reportsLiveness: boolean
  /** The server joined (start, reload, admin add): prepare what reaching it needs. */
  attach (server: S): void
  /** The server left: release what attach() made. Connections already forwarded are not touched. */
  detach (server: S): void
  /** Forward conn to conn.server. Never calls the sink synchronously for relays; see ForwardSink. Hot path. */
  forward (conn: C): void
  /** Where active health checks reach the server (relays: its target; handoff: what the back end said). */
  checkAddress (server: S): CheckAddress | 'pending' | undefined
  /** Relayed connections open now (0 for methods that keep nothing). */
  readonly active: number
  /** Request times the servers reported, keyed `service\0server` (methods whose back ends report them). */
  readonly requestTimes?: ReadonlyMap<string, RequestTimes>
  /** Migration times, keyed `service\0server\0phase` (migrate: phases dispatcher and ready). */
  readonly migrateTimes?: ReadonlyMap<string, RequestTimes>
  /** The routes later requests are checked against (request/route-table.ts JSON), for methods whose servers check them. */
  setRoutes? (json: string): void
  /**
   * Asks the server to have `count` of its kept-alive connections move at their next request (load shedding);
   * 0 cancels. Methods that cannot ask (relays: the data path decides at each boundary) leave it out.
   */
  rebalance? (server: S, count: number): void
  /** Stops taking work; connects in flight fail (not retryable), relays are reset, threads joined. */
  close (): Promise<void>
}

export interface ForwarderOptions {
  readonly connectTimeoutMs: number
  /** 0 = none. */
  readonly idleTimeoutMs: number
  /** Native relay only: pipe capacity per direction (F_SETPIPE_SZ). */
  readonly pipeSize?: number
  /** Handoff: a back end that does not answer its channel's heartbeat within this is reported down. */
  readonly channelTimeoutMs: number
  /** Relays watching request boundaries: a later head larger than this moves the connection (the data path answers 431). */
  readonly maxHeaderBytes: number
  /** Migrate: the config's `migrate:` and the VIPs (the listen hosts); absent = no agent: servers can attach. */
  readonly migrate?: MigrateOptions
}
