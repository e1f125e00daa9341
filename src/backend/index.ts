// baton/backend: attach any http.Server (Express, Fastify, Koa...) to a handoff socket.
//
//   const server = http.createServer(app)
//   await acceptHandoffs(server, { path: '/run/baton/api-1.sock' })
//
// The dispatcher connects to `path` (AF_UNIX SOCK_SEQPACKET) and sends each client's TCP socket itself; the
// server answers the client directly and sees its real address. Only peers running as this process's uid, as
// root, or as a uid in `allowUids` may connect. Without the native addon the back end listens on a Unix stream
// socket at `path` instead and reads the client address from a PROXY v2 header (the dispatcher relays then).
// Socket files: created with their final mode before anyone can reach them, never taken from a live back
// end, a dead one's stale file replaced, removed on close() (net/unix-socket.ts); '@name' stays abstract.
import type http from 'node:http'
import net from 'node:net'
import { BatonError, BatonNativeError } from '../errors'
import { native } from '../native/binding'
import type { PollerHandle } from '../native/types'
import type { CheckAddress, ReportState } from '../protocol/handoff'
import { BackendChannel, kConn, requestStarted, type BackendChannelHost, type ConnRecord } from './channel'
import { listenRelayFallback } from './relay-fallback'
import { fileId, isAbstract, reclaimStale, unlinkIfSame, type FileId } from '../net/unix-socket'
import { attachError, attachFailure } from './attach-error'
import { ensureTracking } from './tracking'

export interface AcceptHandoffsOptions {
  /**
   * The channel socket path; '@name' = Linux abstract namespace (no file). A stale socket file (its back end
   * is gone: connecting is refused) is replaced; a live back end's is not (BATON_ERR_BACKEND_ATTACH).
   */
  readonly path: string
  /** Extra uids allowed to connect (this process's uid and root always are). */
  readonly allowUids?: readonly number[]
  /** Permission bits of the socket file (default 0o600), masked by the umask, set before it can be reached. */
  readonly mode?: number
  /** Called for problems that concern one peer or one connection; default: process.emitWarning. */
  readonly onError?: (err: Error) => void
}

export interface HandoffHandle {
  readonly path: string
  /** 'handoff' (SCM_RIGHTS) or 'relay' (no addon: stream socket with PROXY v2). */
  readonly mode: 'handoff' | 'relay'
  /** Connected dispatchers. */
  readonly channels: number
  /**
   * The back end's own word to every connected dispatcher (HAProxy's agent-check), applied at once:
   * 'ready' (take connections), 'drain' (no new connections; open ones finish), 'maint' (out of rotation).
   * Kept and sent again to dispatchers that connect later. No effect in relay mode (no addon).
   */
  setState (state: 'ready' | 'drain' | 'maint'): void
  /** This back end's share of its configured weight, 0..100 percent (load shedding); 100 = all of it. */
  setWeight (percent: number): void
  /** Stops taking connections (dispatchers are told to send nothing new); connections in progress go on. */
  close (): Promise<void>
}

export interface HandoffInfo { readonly connId: number; readonly service: string; readonly route: string }

/** What the dispatcher said about a handed-off socket: undefined for sockets that did not come by handoff. */
export function handoffInfo (socket: net.Socket): HandoffInfo | undefined {
  return (socket as unknown as Record<symbol, ConnRecord | undefined>)[kConn]?.meta
}

export async function acceptHandoffs (server: http.Server, options: AcceptHandoffsOptions): Promise<HandoffHandle> {
  const onError = options.onError ?? ((err: Error) => process.emitWarning(err.message, 'BatonBackendWarning'))
  const mode = options.mode ?? 0o600
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw attachError(options.path, `mode must be an integer 0..0o777, got ${String(mode)}`)
  const untrack = await ensureTracking(server, options.path)
  try {
    if (!native.available) return await listenRelayFallback(server, options.path, mode, onError)
    return await listenHandoff(server, options, mode, onError, untrack === undefined)
  } catch (err) {
    await untrack?.()
    throw err
  }
}

/** ownListener: the server listens where the application put it (else only on the unreachable tracking socket). */
async function listenHandoff (server: http.Server, options: AcceptHandoffsOptions, mode: number,
  onError: (err: Error) => void, ownListener: boolean): Promise<HandoffHandle> {
  const { listenFd, id } = await bindSeqpacket(options.path, mode)
  const allowed = new Set<number>([0, process.getuid?.() ?? 0, ...(options.allowUids ?? [])])
  const channels = new Set<BackendChannel>()
  const report: { state: ReportState | undefined; percent: number | undefined } = { state: undefined, percent: undefined }
  const host: BackendChannelHost = {
    adopt: (socket: net.Socket) => server.emit('connection', socket),
    allowHalfOpen: (server as unknown as { allowHalfOpen?: boolean }).allowHalfOpen ?? true,
    closed: (ch: BackendChannel) => {
      channels.delete(ch)
      for (const heir of channels) if (heir.inheritOrphans()) break
    },
    orphans: new Set<ConnRecord>(),
    error: onError,
    // The tracking socket has no name left (tracking.ts): no one can check there, so say nothing.
    checkAddress: () => (ownListener ? checkAddressOf(server) : undefined),
    report: () => report,
    handbackChannel: () => {
      for (const ch of channels) if (ch.takesHandbacks) return ch
      return undefined
    },
  }
  const restoreEmit = interceptEvents(server)

  const onReadable = (): void => {
    for (;;) {
      const fd = native.accept(listenFd)
      if (fd < 0) return
      const cred = native.peerCred(fd)
      if (!allowed.has(cred.uid)) {
        native.close(fd)
        onError(new BatonError('BATON_ERR_CHANNEL_PEER',
          `refused handoff channel from pid ${cred.pid} uid ${cred.uid} on ${options.path}`, { source: 'client' }))
        continue
      }
      channels.add(new BackendChannel(fd, host))
    }
  }
  let poller: PollerHandle | undefined
  try {
    poller = native.createPoller(listenFd, onReadable)
    poller.start(native.constants.READABLE)
  } catch (err) {
    poller?.close()
    unlinkIfSame(options.path, id)
    native.close(listenFd)
    throw attachError(options.path, (err as Error).message, err)
  }

  let closed = false
  return {
    path: options.path,
    mode: 'handoff',
    get channels () { return channels.size },
    setState: (state) => {
      if (state !== 'ready' && state !== 'drain' && state !== 'maint') throw new TypeError(`state must be ready, drain or maint, got ${String(state)}`)
      report.state = state
      for (const ch of channels) ch.sendReport()
    },
    setWeight: (percent) => {
      if (!Number.isFinite(percent) || percent < 0 || percent > 100) throw new TypeError(`percent must be 0..100, got ${String(percent)}`)
      report.percent = Math.round(percent)
      for (const ch of channels) ch.sendReport()
    },
    close: async () => {
      if (closed) return
      closed = true
      poller.close()
      unlinkIfSame(options.path, id) // before the fd closes: the name can then never be a successor's
      native.close(listenFd)
      for (const ch of channels) ch.goodbye()
      restoreEmit()
    },
  }
}

/**
 * Wraps server.emit (returns the undo). 'request' is counted on its handed-off connection's channel
 * (channel.ts requestStarted) before the application's listeners run: one wrapper instead of a second
 * 'request' listener, whose listener array Node would copy on every request.
 *
 * The pause that stops a moving connection's parser reaches the http.Server as a 'clientError', or, for a
 * request with Upgrade or a CONNECT (llhttp's upgrade path), as 'upgrade' or 'connect' (reroute.ts). None
 * may reach the application.
 *
 * Node emits 'connect' only when the server has a listener, and destroys the socket otherwise, which would
 * lose the responses before the moving CONNECT: a listener of ours keeps the event coming, and the wrapper
 * does what Node would have done when it is the only one.
 */
function interceptEvents (server: http.Server): () => void {
  const emit = server.emit as (this: http.Server, event: string | symbol, ...args: unknown[]) => boolean
  const noConnectListener = (): void => {}
  const wrapped = function (this: http.Server, event: string | symbol, a?: unknown, b?: unknown): boolean {
    if (event === 'request' && arguments.length === 3) { // Node's own emit: (req, res)
      requestStarted(a as http.IncomingMessage, b as http.ServerResponse)
      return emit.call(this, event, a, b)
    }
    if (event === 'clientError' || event === 'upgrade' || event === 'connect') {
      // eslint-disable-next-line prefer-rest-params
      const args = arguments
      const socket = args[2] as net.Socket | undefined
      const rec = (socket as unknown as Record<symbol, ConnRecord | undefined> | undefined)?.[kConn]
      if (rec !== undefined && (event === 'clientError' ? rec.channel.paused(rec, args[1]) : rec.channel.upgradeStopped(rec, args[3]))) return true
      if (event === 'connect' && server.listenerCount('connect') === 1) { // ours only: Node's default
        socket?.destroy()
        return false
      }
    }
    // eslint-disable-next-line prefer-rest-params
    return Reflect.apply(emit, this, arguments) as boolean
  } as typeof server.emit
  server.emit = wrapped
  server.on('connect', noConnectListener)
  return () => {
    server.off('connect', noConnectListener)
    if (server.emit === wrapped) server.emit = emit as typeof server.emit
  }
}

/** Where the server answers HTTP on its own listener (TCP or a Unix socket path), for the dispatcher's health checks. */
function checkAddressOf (server: http.Server): CheckAddress | undefined {
  const a = server.address()
  if (a === null) return undefined
  if (typeof a === 'string') return { path: a }
  const host = a.address === '0.0.0.0' ? '127.0.0.1' : a.address === '::' ? '::1' : a.address
  return { host, port: a.port }
}

/**
 * Binds the SEQPACKET listener: the addon sets the file's mode before bind(). A path in use is probed
 * once (reclaimStale) and, if it was a dead back end's file, bound again. Rejects with
 * BATON_ERR_BACKEND_ATTACH naming the path. The caller owns listenFd; id names the file it created.
 */
async function bindSeqpacket (path: string, mode: number): Promise<{ listenFd: number, id: FileId | undefined }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const listenFd = native.seqpacketListen(path, 128, mode)
      return { listenFd, id: isAbstract(path) ? undefined : fileId(path) }
    } catch (err) {
      const inUse = err instanceof BatonNativeError && err.errnoCode === 'EADDRINUSE'
      if (!inUse) throw attachError(path, (err as Error).message, err)
      if (isAbstract(path)) throw attachError(path, 'another socket is bound to this abstract name', err)
      if (attempt > 0) throw attachError(path, 'the path was taken again while a stale file was being replaced', err)
      await reclaimStale(path, attachFailure(path))
    }
  }
}
