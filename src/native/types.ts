// The contract of the native addon as TypeScript sees it. binding.ts implements it by loading the .node and
// wrapping each call in argument checks. Conventions:
// - fds are plain ints; every fd the addon creates is O_NONBLOCK | O_CLOEXEC.
// - "would block" and per-socket conditions come back as negative errno numbers (-EAGAIN, -ECONNRESET),
//   because they are control flow on the hot path. Setup failures (bind, listen, connect of a channel)
//   throw BatonNativeError with `errnoCode` = errno name.
import type { BatonNativeError } from '../errors'
import type { NativeRelay, RelayHandler, RelayOptions } from './splice-relay'

/**
 * An established TCP connection as TCP_REPAIR dumps it (native/src/repair.h), everything a restore on
 * another host needs. Sequence numbers and window fields are u32 and wrap. protocol/migrate-state.ts is
 * its wire form. What it does not hold: congestion state, SACK scoreboard, ts_recent, socket options.
 */
export interface TcpRepairState {
  /** 4 or 6: the family of the flow on the wire (an IPv4-mapped IPv6 socket dumps as 4). */
  readonly family: 4 | 6
  readonly localAddress: string
  readonly localPort: number
  readonly peerAddress: string
  readonly peerPort: number
  /** tcpi_options bits: TCPI_OPT_TIMESTAMPS 1, TCPI_OPT_SACK 2, TCPI_OPT_WSCALE 4 (others ignored). */
  readonly options: number
  readonly sndWscale: number
  readonly rcvWscale: number
  /** rx_opt.mss_clamp (TCP_MAXSEG read in repair mode). */
  readonly mssClamp: number
  /** TCP_TIMESTAMP as read (bit 0 set: microsecond timestamps). restore moves it forward a little. */
  readonly timestamp: number
  /** struct tcp_repair_window. */
  readonly sndWl1: number
  readonly sndWnd: number
  readonly maxWindow: number
  readonly rcvWnd: number
  readonly rcvWup: number
  /** TCP_QUEUE_SEQ of the receive queue: the sequence number after recvQueue's last byte. */
  readonly rcvNxt: number
  /** TCP_QUEUE_SEQ of the send queue: the sequence number after sendQueue's last byte. */
  readonly writeSeq: number
  /** Received, not yet read by the application (the request the dispatcher peeked). */
  readonly recvQueue: Buffer
  /** The whole send queue: sent-but-unacknowledged bytes, then unsentBytes never sent. */
  readonly sendQueue: Buffer
  /** SIOCOUTQNSD: the tail of sendQueue that was never sent; repairGo sends it. */
  readonly unsentBytes: number
}

/** What repairRestoreWire gives the agent: the restored socket and what it needs of the flow afterwards. */
export interface RestoredFlow {
  /** The restored socket: O_NONBLOCK | O_CLOEXEC, in repair mode until repairGo, the caller's. */
  readonly fd: number
  /** The client's end, IPv4 ("a.b.c.d") and port. */
  readonly peerAddress: string
  readonly peerPort: number
  /** The send queue's never-sent tail, a view into the wire buffer (do not reuse it before repairGo). */
  readonly unsent: Buffer
}

/** The part of TCP_INFO that a migration keeps or loses (tcpInfo). */
export interface TcpInfo {
  readonly state: number
  readonly options: number
  readonly sndWscale: number
  readonly rcvWscale: number
  readonly sndMss: number
  readonly rcvMss: number
  readonly rttUs: number
  readonly rtoUs: number
  readonly totalRetrans: number
  readonly sndCwnd: number
}

/** One flow element of an nftables set or map keyed by `ipv4_addr . inet_service`. */
export interface NftElement {
  readonly address: string
  readonly port: number
  /** The map's value (meta mark); required for a map, refused for a set. */
  readonly mark?: number
  /** Element timeout; 0 or absent = the set's default (the set needs `flags timeout` for > 0). */
  readonly timeoutMs?: number
}

/** NftSetHandle.moveOut's marks and element timeouts (ms; 0 = the map's default). */
export interface MoveOutOptions {
  /** The frozen flow's mark (the prerouting chain drops it). */
  readonly freezeMark: number
  readonly freezeTimeoutMs: number
  /** The mark that routes the flow to its new host. */
  readonly steerMark: number
  readonly steerTimeoutMs: number
  /**
   * Steering first only (freeze = steer): leave fd open, in repair mode, for the caller to close (it sends
   * nothing) once the MIGRATE is sent, off the migration's clock. Where the freeze is needed the close must
   * come before the steer, and this is refused.
   */
  readonly keepOpen?: boolean
}

/**
 * The two ends of a flow that NftSetHandle.moveOut moves, IPv4 only (the map is `ipv4_addr . inet_service`):
 * the client's (the element's key) and the local one it was accepted on (the VIP). A ForwardConn is one.
 */
export interface FlowEnds {
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
}

export interface MoveOutResult {
  /**
   * The whole MIGRATE frame, ready to write: the prefix moveOut was given (its length field patched) and the
   * dump's state in its wire form (protocol/migrate-state.ts) from `stateAt` on. The socket is closed (in
   * repair mode: no FIN, no RST).
   */
  readonly frame: Buffer
  /** Where the state starts in frame (the prefix's length): repairRestoreWire(frame, stateAt, ...) restores it. */
  readonly stateAt: number
  /**
   * Why the steer failed (the flow is still frozen: restore it here from the frame's state, then unfreeze),
   * or undefined when the flow is steered.
   */
  readonly steerError: BatonNativeError | undefined
}

/**
 * A netlink handle on one nftables set or map (native/src/nft.cc). Each call is one transaction: all of
 * its elements are applied or none is. A failure throws BatonNativeError whose `syscall` names the
 * operation and the first failed element (`nft add baton.flows[3] 10.0.0.1 . 40000`) and whose errno is
 * the kernel's (EEXIST, ENOENT, ...). Not for the per-byte hot path, but cheap enough per connection.
 */
export interface NftSetHandle {
  readonly family: 'ip' | 'inet'
  readonly table: string
  readonly set: string
  /** The set is a map (elements carry a mark). */
  readonly isMap: boolean
  /** The set has `flags timeout` (elements may carry timeoutMs). */
  readonly hasTimeout: boolean
  /** NEWSETELEM each; an element that exists with another mark fails with EEXIST, with the same: no-op. */
  add (elements: readonly NftElement[]): void
  /** DELSETELEM + NEWSETELEM each, atomically (the steer after a freeze); a missing element: ENOENT. */
  replace (elements: readonly NftElement[]): void
  /** DELSETELEM each (mark and timeout are ignored); a missing element: ENOENT. */
  delete (elements: readonly NftElement[]): void
  /**
   * The dispatcher's half of a migration in one addon call (native/src/migrate_out.cc), for a map: freeze
   * (add `clientAddress . clientPort : freezeMark`; an element already there with another mark is replaced),
   * the dump of repairDump written straight into the MIGRATE frame (`prefix`: the frame up to its state,
   * protocol/migrate-control.ts encodeMigratePrefix; the state's addresses are `ends`, not read from the
   * socket), close in repair mode, steer (replace with steerMark). Each nft step is one ACKed transaction.
   * - ends not numeric IPv4 with ports 1..65535 (or localAddress 0.0.0.0), a prefix not a Buffer of at
   *   least 5 bytes: throws an AssertionError before any system call.
   * - the freeze fails: throws BatonNativeError (syscall `nft add|replace TABLE.SET ADDR . PORT (freeze)`);
   *   fd is untouched.
   * - the dump fails: throws BatonNativeError as repairDump does (syscall = the failed step); fd is out of
   *   repair mode, open and the caller's, and the element is deleted again (if that failed too, the error
   *   has `unfreezeErrno` > 0 and the element expires after freezeTimeoutMs).
   * - otherwise fd is closed, and a failed steer comes back as steerError: never thrown.
   */
  moveOut (fd: number, ends: FlowEnds, prefix: Buffer, options: MoveOutOptions): MoveOutResult
  /** Closes the netlink socket. Idempotent. */
  close (): void
}

export interface PollerHandle {
  /** events: a mask of constants.READABLE | WRITABLE | DISCONNECT. Spurious wakeups happen. */
  start (events: number): void
  stop (): void
  /** Synchronous epoll DEL; the fd may be closed right after. Idempotent. */
  close (): void
  ref (): void
  unref (): void
}

/**
 * Called once per accepted connection, synchronously from the accept loop.
 * peeked > 0: that many bytes of the head are in the acceptor's peek buffer (MSG_PEEK: still queued).
 * peeked == 0: the client closed before sending. peeked < 0: -errno (-EAGAIN = nothing yet).
 * The callback owns `fd` from here on.
 */
export type AcceptCallback = (fd: number, peeked: number, address: string, port: number) => void

export interface AcceptorHandle {
  start (): void
  stop (): void
  close (): void
}

export interface NativeConstants {
  readonly READABLE: number
  readonly WRITABLE: number
  readonly DISCONNECT: number
  /** Positive errno values of this platform. */
  readonly EAGAIN: number
  readonly EINTR: number
  readonly ECONNRESET: number
  readonly EPIPE: number
  readonly ENOENT: number
  readonly ECONNREFUSED: number
  readonly EMFILE: number
}

export interface NativeApi {
  readonly available: boolean
  /** Why it did not load (undefined when available). */
  readonly loadError: Error | undefined
  readonly constants: NativeConstants
  /** errno number (either sign) -> name ('ECONNRESET'), for logs; errno.ts errnoName, addon or not. */
  errnoName (errno: number): string

  /** socket+bind+listen with SO_REUSEADDR; deferAcceptS > 0 sets TCP_DEFER_ACCEPT. Returns the bound port. */
  listenTcp (host: string, port: number, backlog: number, deferAcceptS: number): { fd: number; port: number }
  /**
   * Polls listenFd (uv_poll, main loop) and on readiness accepts up to 64 sockets (accept4, NONBLOCK|CLOEXEC,
   * TCP_NODELAY on), peeks each into peekBuf (peekBuf.length bytes at most) and calls onConn.
   */
  createAcceptor (listenFd: number, peekBuf: Buffer, onConn: AcceptCallback): AcceptorHandle
  /** recv(MSG_PEEK | MSG_DONTWAIT) into buf: >0 bytes, 0 = EOF, <0 = -errno. */
  peek (fd: number, buf: Buffer): number
  /**
   * send(MSG_DONTWAIT | MSG_NOSIGNAL) of buf on a stream socket: bytes written (maybe fewer), or -errno
   * (-EAGAIN: full). Only for a socket whose owner has nothing queued ahead of buf.
   */
  write (fd: number, buf: Buffer): number
  setRcvLowat (fd: number, bytes: number): void
  /** uv_poll on fd; cb(status, events) with status 0 or -errno. EEXIST if libuv already watches fd. */
  createPoller (fd: number, cb: (status: number, events: number) => void): PollerHandle
  /** close(2), never retried (EINTR counts as closed); throws BatonNativeError on EBADF/EIO. */
  close (fd: number): void
  /** F_DUPFD_CLOEXEC: a new fd the caller owns, or -errno. */
  dup (fd: number): number

  /**
   * AF_UNIX SOCK_SEQPACKET listener. '@name' = abstract (no file, no mode). A file path is created with
   * `mode` (default 0o600) & ~umask, fixed before bind(); an existing file fails with EADDRINUSE (nothing
   * is ever unlinked here: telling a stale file from a live one is the back end's policy).
   */
  seqpacketListen (path: string, backlog: number, mode?: number): number
  /** Connected channel fd; throws BatonNativeError (ENOENT, ECONNREFUSED, ...). */
  seqpacketConnect (path: string): number
  /** accept4 on a SEQPACKET listener: fd, or -errno (-EAGAIN). */
  accept (listenFd: number): number
  /** SO_PEERCRED of a connected Unix socket. */
  peerCred (fd: number): { pid: number; uid: number; gid: number }
  /**
   * sendmsg(SCM_RIGHTS) of `fd` with meta[0..metaLen) as the payload, MSG_NOSIGNAL|MSG_DONTWAIT.
   * 0 = sent (the caller then closes its copy); -EAGAIN = nothing sent, caller still owns fd; other -errno.
   */
  sendFd (chanFd: number, fd: number, meta: Buffer, metaLen: number): number
  /** A plain message (no fd): 0 or -errno. */
  sendMsg (chanFd: number, buf: Buffer, len: number): number
  /**
   * recvmsg(MSG_CMSG_CLOEXEC | MSG_DONTWAIT) into buf: >0 = message length, 0 = EOF, <0 = -errno.
   * out[0] = the received fd or -1 (extra fds are closed); out[1] = 1 if MSG_CTRUNC or MSG_TRUNC was set.
   */
  recvMsg (chanFd: number, buf: Buffer, out: Int32Array): number

  /**
   * Starts a splice relay thread (splice-relay.ts): connects upstream natively and splices both directions.
   * Throws BatonNativeError if the thread cannot start. handler runs on the JS thread and must not throw.
   */
  createRelay (opts: RelayOptions, handler: RelayHandler): NativeRelay
  /** The sockaddr bytes of a numeric IPv4/IPv6 address and port, for NativeRelay.connect. */
  sockaddr (host: string, port: number): Buffer
  /** A sockaddr_un for a path; '@name' is the abstract namespace (as in seqpacketListen/Connect). */
  sockaddrUnix (path: string): Buffer

  /**
   * TCP_REPAIR dump of an established socket (the flow should be frozen first). The socket is left in
   * repair mode, still owned by the caller: repairClose (migrated) or repairOff (serve it here).
   * Throws BatonNativeError (syscall = the failed step; EPERM without CAP_NET_ADMIN, ENOTCONN if not
   * ESTABLISHED); the socket has then left repair mode again. Node must not be reading the fd.
   */
  repairDump (fd: number): TcpRepairState
  /** close(2) in repair mode: no FIN, no RST. Refuses (EINVAL, fd kept) a socket not in repair mode. */
  repairClose (fd: number): void
  /** Leaves repair mode (windowProbe, default true: TCP_REPAIR_OFF, else TCP_REPAIR_OFF_NO_WP). */
  repairOff (fd: number, windowProbe?: boolean): void
  /**
   * Rebuilds `state` in a new socket bound to its local address (also while a listener or another flow
   * holds it). Nothing is sent; the fd (O_NONBLOCK | O_CLOEXEC, the caller's) stays in repair mode until
   * repairGo. The timestamp is moved forward by timestampSlackMs (default 2, pitfall 4). Throws
   * BatonNativeError (syscall = the failed step); no fd is left open then.
   */
  repairRestore (state: TcpRepairState, timestampSlackMs?: number): number
  /**
   * The agent's restore, straight from a MIGRATE's bytes: buf[offset..] is one wire state
   * (protocol/migrate-state.ts; nothing may follow it). Decoded in C (the checks of decodeMigrateState), its
   * local end checked against `vip` (numeric IPv4; the flow's family must be 4), then restored as
   * repairRestore does (the timestamp moved forward by timestampSlackMs, default 2), the queues read from buf.
   * Nothing is restored, and no fd left open, when it throws:
   * - a bad state: Error{message `bad state: ${decodeMigrateState's reason}`, code 'EINVAL'};
   * - another local end: Error{message `flow is for A:P, this agent's VIP is V:Q`, code 'EADDRNOTAVAIL'};
   *   neither has a `syscall` nor is a BatonNativeError;
   * - a failed step: BatonNativeError (syscall = the step), as repairRestore.
   */
  repairRestoreWire (buf: Buffer, offset: number, vip: { readonly host: string; readonly port: number },
    timestampSlackMs?: number): RestoredFlow
  /**
   * Leaves repair mode (window probe unless windowProbe is false), sets SO_REUSEADDR, and sends `unsent`
   * (state.sendQueue's last unsentBytes; unsentOf(state)). Returns the bytes of it written: the caller
   * writes the rest through its own stream. transparent (default false): first sets IP_TRANSPARENT, the
   * mark `baton host realserver`'s table lets a migrated flow's packets through by. Throws
   * BatonNativeError; the caller owns the fd either way.
   */
  repairGo (fd: number, unsent: Buffer, windowProbe?: boolean, transparent?: boolean): number
  /** TCP_INFO of a TCP socket; throws BatonNativeError. */
  tcpInfo (fd: number): TcpInfo
  /**
   * Opens a netlink handle on an existing set or map (checked with GETSET: its key must be 8 bytes,
   * ipv4_addr . inet_service; a map's value 4 bytes). Throws BatonNativeError ENOENT naming the table and
   * set if either does not exist in this network namespace, EPERM without CAP_NET_ADMIN.
   */
  nftOpen (spec: { family?: 'ip' | 'inet'; table: string; set: string }): NftSetHandle
  /**
   * Moves the calling (main JS) thread into the network namespace at `path` (/run/netns/NAME): sockets
   * created afterwards belong to it. Returns an fd for netnsReturn. Needs CAP_SYS_ADMIN.
   */
  netnsEnter (path: string): number
  /** Back to the namespace netnsEnter left; closes that fd. */
  netnsReturn (fd: number): void
}
