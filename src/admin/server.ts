// The admin API, on loopback or a Unix socket (the config refuses other addresses unless
// admin.allowRemote, and then requires admin.token). Writes (POST, PUT, DELETE) go to write.ts.
// GET /servers is `ipvsadm -L -n --stats --rate` as JSON (rates.ts keeps the rate estimator); GET /metrics
// is Prometheus text (metrics.ts) with bounded labels (service, server, outcome, ...: never paths);
// GET /healthz answers 200 while the switch runs.
import http from 'node:http'
import type net from 'node:net'
import type { ServerSnapshot } from '../cluster/types'
import type { AdminConfig } from '../config/types'
import type { DispatchTimes, RelayBytes } from '../dispatcher/conn-log'
import type { PendingCounts } from '../dispatcher/pending'
import type { Logger } from '../log'
import { stageUnix, unlinkIfSame, type FileId } from '../net/unix-socket'
import { serveStats } from './stats-page'
import { createMetrics } from './metrics'
import { RateEstimator } from './rates'
import { createWriteHandler, type AdminControl } from './write'

export interface AdminSource {
  servers (): readonly ServerSnapshot[]
  /** Connections by how they ended: handoff, splice, pipe, status-400, ... */
  outcomes (): ReadonlyMap<string, number>
  /** Connections the dispatcher owns now (heads arriving, answers draining) and how many were shed. */
  pending (): PendingCounts
  /** Health state changes so far, keyed `service\0server\0state`. */
  stateChanges (): ReadonlyMap<string, number>
  /** Config reloads so far, by result (ok, invalid). */
  reloads? (): ReadonlyMap<string, number>
  /** Relayed bytes by `service\0server` (splice, pipe), summed at close. */
  relayBytes? (): ReadonlyMap<string, RelayBytes>
  /** Dispatcher time from accept to handoff, in fixed buckets. */
  dispatchTimes? (): DispatchTimes
  /** Request times handed-off back ends measured and reported, keyed `service\0server`. */
  backendTimes? (): ReadonlyMap<string, DispatchTimes>
  /** Migration times (forward: migrate), keyed `service\0server\0phase` (dispatcher, ready). */
  migrateTimes? (): ReadonlyMap<string, DispatchTimes>
  /** Connections that moved at a request boundary, keyed `reason\0from service\0to service`. */
  moves? (): ReadonlyMap<string, number>
}

export interface AdminServer {
  /** 'host:port' or the socket path. */
  readonly address: string
  close (): Promise<void>
}

/** The admin API built, and on a Unix socket already listening under a staging name; publish() makes it reachable. */
export interface StagedAdmin {
  /** Listens at admin.listen, or links the socket into place at admin.socket (one link(2)). */
  publish (): Promise<AdminServer>
  /** For a stage never published: stops listening, removes the staging name. */
  abort (): void
}

/** `control`: the write routes (write.ts); without it every write is 405. */
export async function startAdmin (cfg: AdminConfig, src: AdminSource, log: Logger, control?: AdminControl): Promise<AdminServer> {
  return (await stageAdmin(cfg, src, log, control)).publish()
}

/**
 * startAdmin in two steps, for a takeover: everything is built (and a socket listens in its staging
 * directory) before the running process releases admin.socket; publish() is then one system call or two.
 */
export async function stageAdmin (cfg: AdminConfig, src: AdminSource, log: Logger, control?: AdminControl): Promise<StagedAdmin> {
  const write = control === undefined ? undefined : createWriteHandler(control, cfg.token, log)
  const registry = createMetrics(src)
  const rates = new RateEstimator(() => src.servers(), src.relayBytes === undefined ? undefined : () => src.relayBytes!())
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return write !== undefined ? write(req, res) : send(res, 405, 'text/plain', 'GET only\n')
    const path = (req.url ?? '/').split('?')[0]
    if (serveStats(path ?? '/', res, src)) return // GET / (the stats page) and /stats.json
    if (path === '/servers') return send(res, 200, 'application/json', JSON.stringify(rates.rows(), null, 2) + '\n')
    if (path === '/metrics') {
      registry.metrics().then((text) => { send(res, 200, registry.contentType, text) },
        (err: Error) => { send(res, 500, 'text/plain', `metrics: ${err.message}\n`) })
      return
    }
    if (path === '/healthz') return send(res, 200, 'text/plain', 'ok\n')
    send(res, 404, 'text/plain', 'not found: try /servers, /metrics, /healthz\n')
  })
  // A socket file is 0600 from its creation, '@name' stays abstract, a live socket is never taken and a
  // stale one is replaced (net/unix-socket.ts); the caller wraps a failure in BATON_ERR_ADMIN_LISTEN.
  const socket = cfg.socket
  const staged = socket === undefined
    ? undefined
    : await stageUnix(server, socket, 0o600, (reason, cause) => new Error(`cannot listen on ${socket}: ${reason}`, { cause }))
  return {
    abort: () => { if (staged !== undefined) staged.abort(); else if (server.listening) server.close() },
    publish: async () => {
      let id: FileId | undefined
      if (staged !== undefined) {
        id = await staged.publish()
      } else {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen({ host: cfg.listen!.host, port: cfg.listen!.port }, () => resolve())
        })
      }
      const a = server.address() as net.AddressInfo
      const address = socket ?? `${a.address}:${a.port}`
      log.info({ admin: address }, 'admin API listening')
      rates.start()
      return {
        address,
        close: () => new Promise<void>((resolve) => {
          rates.close()
          // The socket file and an abstract name are free when this returns (the listening fd closes now).
          if (socket !== undefined) unlinkIfSame(socket, id) // only the file this server created
          server.closeAllConnections()
          server.close(() => resolve())
        }),
      }
    },
  }
}

function send (res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}
