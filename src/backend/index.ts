// baton/backend: attach any http.Server (Express, Fastify, Koa...) to a handoff socket.
//
//   const server = http.createServer(app)
//   await acceptHandoffs(server, { path: '/run/baton/api-1.sock' })
//
// The dispatcher connects to `path` (AF_UNIX SOCK_SEQPACKET) and sends each client's TCP socket itself; the
// server answers the client directly and sees its real address. Only peers running as this process's uid, as
// root, or as a uid in `allowUids` may connect. Without the native addon the back end listens on a Unix stream
// socket at `path` instead and reads the client address from a PROXY v2 header (the dispatcher relays then).
import type http from 'node:http'
import net from 'node:net'
import fs from 'node:fs'
import { BatonError } from '../errors'
import { native } from '../native/binding'
import type { PollerHandle } from '../native/types'
import { BackendChannel, kConn, type ConnRecord } from './channel'
import { listenRelayFallback } from './relay-fallback'

export interface AcceptHandoffsOptions {
  /** The channel socket path; '@name' = Linux abstract namespace. A stale socket file is replaced. */
  readonly path: string
  /** Extra uids allowed to connect (this process's uid and root always are). */
  readonly allowUids?: readonly number[]
  /** Permission bits of the socket file (default 0o600). */
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
  await ensureTracking(server, options.path)
  if (!native.available) return listenRelayFallback(server, options, onError)

  const allowed = new Set<number>([0, process.getuid?.() ?? 0, ...(options.allowUids ?? [])])
  let listenFd: number
  try {
    listenFd = native.seqpacketListen(options.path, 128)
    if (!options.path.startsWith('@')) fs.chmodSync(options.path, options.mode ?? 0o600)
  } catch (err) {
    throw new BatonError('BATON_ERR_BACKEND_ATTACH', `cannot listen on ${options.path}: ${(err as Error).message}`, { cause: err })
  }
  const channels = new Set<BackendChannel>()
  const host = {
    adopt: (socket: net.Socket) => server.emit('connection', socket),
    allowHalfOpen: (server as unknown as { allowHalfOpen?: boolean }).allowHalfOpen ?? true,
    closed: (ch: BackendChannel) => { channels.delete(ch) },
    error: onError,
  }
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const rec = (req.socket as unknown as Record<symbol, ConnRecord | undefined>)[kConn]
    if (rec === undefined) return
    rec.channel.requestStarted(rec)
    res.once('close', () => rec.channel.requestEnded(rec))
  }
  server.on('request', onRequest)

  const poller: PollerHandle = native.createPoller(listenFd, () => {
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
  })
  poller.start(native.constants.READABLE)

  let closed = false
  return {
    path: options.path,
    mode: 'handoff',
    get channels () { return channels.size },
    close: async () => {
      if (closed) return
      closed = true
      poller.close()
      native.close(listenFd)
      if (!options.path.startsWith('@')) fs.rmSync(options.path, { force: true })
      for (const ch of channels) ch.goodbye()
      server.off('request', onRequest)
    },
  }
}

/**
 * Node's http.Server tracks connections (headersTimeout, requestTimeout, closeIdleConnections) only once it
 * is listening. A server that listens nowhere else gets a private Unix socket next to the handoff path.
 */
async function ensureTracking (server: http.Server, path: string): Promise<void> {
  if (server.listening) return
  const privatePath = `${path}.http` // '@name' stays abstract: '@name.http'
  if (!privatePath.startsWith('@')) fs.rmSync(privatePath, { force: true })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ path: privatePath, exclusive: true }, () => {
      server.off('error', reject)
      if (!privatePath.startsWith('@')) fs.chmodSync(privatePath, 0o600)
      resolve()
    })
  })
}
