// The admin API, on loopback or a Unix socket (the config refuses other addresses unless
// admin.allowRemote, and then requires admin.token). Writes (POST, PUT, DELETE) go to write.ts.
// GET /servers is `ipvsadm -L -n` as JSON; GET /metrics is Prometheus text with bounded labels (service,
// server, outcome: never paths); GET /healthz answers 200 while the switch runs.
import http from 'node:http'
import type net from 'node:net'
import type { ServerSnapshot } from '../cluster/types'
import type { AdminConfig } from '../config/types'
import type { PendingCounts } from '../dispatcher/pending'
import type { Logger } from '../log'
import { listenUnix, unlinkIfSame, type FileId } from '../net/unix-socket'
import { serveStats } from './stats-page'
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
}

export interface AdminServer {
  /** 'host:port' or the socket path. */
  readonly address: string
  close (): Promise<void>
}

/** `control`: the write routes (write.ts); without it every write is 405. */
export async function startAdmin (cfg: AdminConfig, src: AdminSource, log: Logger, control?: AdminControl): Promise<AdminServer> {
  const write = control === undefined ? undefined : createWriteHandler(control, cfg.token, log)
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return write !== undefined ? write(req, res) : send(res, 405, 'text/plain', 'GET only\n')
    const path = (req.url ?? '/').split('?')[0]
    if (serveStats(path ?? '/', res, src)) return // GET / (the stats page) and /stats.json
    if (path === '/servers') return send(res, 200, 'application/json', JSON.stringify(src.servers(), null, 2) + '\n')
    if (path === '/metrics') return send(res, 200, 'text/plain; version=0.0.4', metrics(src))
    if (path === '/healthz') return send(res, 200, 'text/plain', 'ok\n')
    send(res, 404, 'text/plain', 'not found: try /servers, /metrics, /healthz\n')
  })
  // A socket file is 0600 from its creation, '@name' stays abstract, a live socket is never taken and a
  // stale one is replaced (net/unix-socket.ts); the caller wraps a failure in BATON_ERR_ADMIN_LISTEN.
  const socket = cfg.socket
  let id: FileId | undefined
  if (socket !== undefined) {
    id = await listenUnix(server, socket, 0o600, (reason, cause) => new Error(`cannot listen on ${socket}: ${reason}`, { cause }))
  } else {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: cfg.listen!.host, port: cfg.listen!.port }, () => resolve())
    })
  }
  const a = server.address() as net.AddressInfo
  const address = socket ?? `${a.address}:${a.port}`
  log.info({ admin: address }, 'admin API listening')
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      if (socket !== undefined) unlinkIfSame(socket, id) // only the file this server created
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

function send (res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

function metrics (src: AdminSource): string {
  const lines: string[] = []
  const gauge = (name: string, help: string, rows: Array<[string, number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`)
    for (const [labels, v] of rows) lines.push(`${name}{${labels}} ${v}`)
  }
  const servers = src.servers()
  const l = (s: { service: string; id: string }): string => `service=${quote(s.service)},server=${quote(s.id)}`
  gauge('baton_server_up', '1 when the real server takes new connections', servers.map((s) => [l(s), s.up ? 1 : 0]))
  gauge('baton_server_weight', 'the real server\'s weight (0 = quiesced)', servers.map((s) => [l(s), s.weight]))
  gauge('baton_server_overloaded', '1 while the server is over its connection threshold', servers.map((s) => [l(s), s.overloaded ? 1 : 0]))
  gauge('baton_server_active_connections', 'connections with a request in flight (LVS ActiveConn)', servers.map((s) => [l(s), s.active]))
  gauge('baton_server_inactive_connections', 'idle kept-alive connections (LVS InActConn)', servers.map((s) => [l(s), s.inactive]))
  lines.push('# HELP baton_connections_total connections the dispatcher finished with, by outcome',
    '# TYPE baton_connections_total counter')
  for (const [outcome, n] of src.outcomes()) lines.push(`baton_connections_total{outcome=${quote(outcome)}} ${n}`)
  gauge('baton_server_state', '1 for the state the real server is in (up, down, drain, maint)',
    servers.flatMap((s) => (['up', 'down', 'drain', 'maint'] as const).map((st): [string, number] => [`${l(s)},state=${quote(st)}`, s.state === st ? 1 : 0])))
  lines.push('# HELP baton_server_state_changes_total health state changes, by the state entered', '# TYPE baton_server_state_changes_total counter')
  for (const [key, n] of src.stateChanges()) {
    const [service, server, state] = key.split('\0') as [string, string, string]
    lines.push(`baton_server_state_changes_total{service=${quote(service)},server=${quote(server)},state=${quote(state)}} ${n}`)
  }
  const p = src.pending()
  lines.push('# HELP baton_pending_connections connections the dispatcher owns: heads arriving, answers draining',
    '# TYPE baton_pending_connections gauge',
    `baton_pending_connections{state="head"} ${p.head}`, `baton_pending_connections{state="drain"} ${p.drain}`,
    '# HELP baton_pending_shed_total connections closed unanswered because limits.maxPendingConns was reached',
    '# TYPE baton_pending_shed_total counter', `baton_pending_shed_total ${p.shed}`)
  lines.push('# HELP baton_config_reloads_total config reloads (SIGHUP, admin, watch), by result', '# TYPE baton_config_reloads_total counter')
  for (const [result, n] of src.reloads?.() ?? []) lines.push(`baton_config_reloads_total{result=${quote(result)}} ${n}`)
  return lines.join('\n') + '\n'
}

function quote (v: string): string {
  return JSON.stringify(v) // Prometheus label values escape \\, " and \n exactly as JSON does
}
