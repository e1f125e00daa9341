// The admin API's write routes: what `baton ctl` calls. Each maps to one cluster verb through class Baton
// (AdminControl); none touches a server's state itself. JSON in and out; every error is a JSON
// { code, message } with 400, 401, 403, 404, 405, 409 or 413.
//
//   POST   /reload                                  read, validate and apply the config file
//   POST   /servers/:service/:server/weight          { "weight": 0..65535 }        (ipvsadm -e -w)
//   POST   /servers/:service/:server/state           { "state": "up"|"drain"|"maint" }
//   PUT    /servers/:service/:server                 { "handoff"|"address", "weight", ... } (ipvsadm -a)
//   DELETE /servers/:service/:server                                                  (ipvsadm -d)
//
// Who may write: with `admin.token`, a request with `Authorization: Bearer <token>` (compared in constant
// time); without one, anyone who reaches the listener, which is then loopback or a Unix socket (the config
// refuses allowRemote without a token, and this file refuses a remote peer again). Requests carrying an
// Origin header (browsers) are refused either way, so a web page cannot post to a loopback admin API.
//
// A change made here is not written to the config file: the next reload puts back what the file says.
// Each one is logged at warn level once, when it happens.
import { createHash, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'
import path from 'node:path'
import type { ServerSnapshot } from '../cluster/types'
import { parseServerInput } from '../config/server-input'
import type { Config, ServerConfig } from '../config/types'
import { BatonError, ConfigError, type ErrorCode } from '../errors'
import type { AdminState } from '../health/state'
import type { Logger } from '../log'
import { isLoopback } from '../net/ip'
import type { ReloadOutcome, ReloadTrigger } from './reload'

/** What the write routes may do: class Baton implements it (the cluster's verbs and the reload). */
export interface AdminControl {
  readonly config: Config
  servers (): ServerSnapshot[]
  setWeight (service: string, server: string, weight: number): void
  setState (service: string, server: string, state: AdminState): void
  addServer (service: string, cfg: ServerConfig): void
  removeServer (service: string, server: string): void
  reloadFile (trigger: ReloadTrigger): ReloadOutcome
}

export type WriteHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** Request bodies are small JSON objects; a larger one is refused (413) without being read further. */
export const MAX_BODY_BYTES = 64 * 1024
/** After a 413, how long the rest of a body is read and dropped before the connection is closed. */
const DISCARD_MS = 1000
const STATES: readonly string[] = ['up', 'drain', 'maint']
/** Paths that exist for GET only: a write there is 405, not 404. */
const READ_ONLY = new Set(['/servers', '/metrics', '/healthz'])

class HttpError extends Error {
  constructor (readonly status: number, readonly code: ErrorCode, message: string, readonly issues?: readonly string[]) {
    super(message)
  }
}

/** `token`: the bearer token the config set, or undefined (then only local peers may write). */
export function createWriteHandler (control: AdminControl, token: string | undefined, log: Logger): WriteHandler {
  const expected = token === undefined ? undefined : digest(token)
  return (req, res) => {
    handle(req, control, expected, log).then(
      ({ status, body }) => { reply(res, status, body) },
      (err: unknown) => {
        if (err instanceof HttpError) {
          const headers = err.status === 401 ? { 'www-authenticate': 'Bearer realm="baton"' } : err.status === 413 ? { connection: 'close' } : undefined
          reply(res, err.status, { code: err.code, message: err.message, ...(err.issues === undefined ? {} : { issues: err.issues }) }, headers)
          if (err.status === 413) { // discard the rest for a moment, so that the client reads the answer before the close
            req.resume()
            setTimeout(() => { req.destroy() }, DISCARD_MS).unref()
          }
          return
        }
        log.error({ err: err instanceof Error ? err.message : String(err) }, 'admin write failed')
        reply(res, 500, { code: 'BATON_ERR_ADMIN_REQUEST', message: 'internal error' })
      })
  }
}

async function handle (req: http.IncomingMessage, control: AdminControl, token: Buffer | undefined, log: Logger): Promise<{ status: number, body: unknown }> {
  authorize(req, token)
  const url = (req.url ?? '/').split('?')[0]!
  const parts = url.split('/').slice(1).map(decode)
  const method = req.method ?? ''
  if (method === 'POST' && url === '/reload') {
    await readBody(req)
    return reload(control)
  }
  if (parts[0] === 'servers' && parts.length >= 3 && parts.length <= 4) {
    const [, service = '', server = '', verb] = parts
    if (verb === undefined && (method === 'PUT' || method === 'DELETE')) {
      const body = await readBody(req)
      return method === 'PUT' ? add(control, service, server, body, log) : remove(control, service, server, log)
    }
    if ((verb === 'weight' || verb === 'state') && method === 'POST') {
      const body = await readBody(req)
      return verb === 'weight' ? weight(control, service, server, body, log) : state(control, service, server, body, log)
    }
    if (verb === undefined || verb === 'weight' || verb === 'state') {
      throw new HttpError(405, 'BATON_ERR_ADMIN_REQUEST', `${method} is not allowed on ${url}`)
    }
  }
  if (READ_ONLY.has(url)) throw new HttpError(405, 'BATON_ERR_ADMIN_REQUEST', `${url} is read-only: GET only`)
  throw new HttpError(404, 'BATON_ERR_ADMIN_REQUEST', `no route ${method} ${url}: the write routes are POST /reload, ` +
    'POST /servers/:service/:server/weight|state, PUT|DELETE /servers/:service/:server')
}

function authorize (req: http.IncomingMessage, token: Buffer | undefined): void {
  if (req.headers.origin !== undefined) {
    throw new HttpError(403, 'BATON_ERR_ADMIN_AUTH', 'requests from a browser (with an Origin header) may not write')
  }
  if (token === undefined) {
    const peer = req.socket.remoteAddress
    if (peer !== undefined && !isLoopback(peer)) { // undefined: a Unix socket
      throw new HttpError(403, 'BATON_ERR_ADMIN_AUTH', 'writes without admin.token are taken only from loopback or the Unix socket')
    }
    return
  }
  const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')
  if (m === null || !timingSafeEqual(digest(m[1]!), token)) {
    throw new HttpError(401, 'BATON_ERR_ADMIN_AUTH', 'this admin API needs Authorization: Bearer <admin.token>')
  }
}

/** Fixed-length digests, so that the comparison takes the same time whatever the length of the guess. */
function digest (token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

function decode (segment: string): string {
  try {
    return decodeURIComponent(segment)
  } catch {
    throw new HttpError(400, 'BATON_ERR_ADMIN_REQUEST', `bad percent-encoding in "${segment}"`)
  }
}

/** The body as JSON (undefined when empty), at most MAX_BODY_BYTES; non-empty bodies must say application/json. */
async function readBody (req: http.IncomingMessage): Promise<unknown> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) throw tooLarge()
  const chunks: Buffer[] = []
  let size = 0
  await new Promise<void>((resolve, reject) => {
    req.on('data', (chunk: Buffer) => {
      if (size > MAX_BODY_BYTES) return // refused already; the rest is discarded
      size += chunk.length
      if (size > MAX_BODY_BYTES) reject(tooLarge())
      else chunks.push(chunk)
    })
    req.on('end', resolve)
    req.on('error', reject)
  })
  if (size === 0) return undefined
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
    throw new HttpError(400, 'BATON_ERR_ADMIN_REQUEST', 'the body must be JSON with Content-Type: application/json')
  }
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString('utf8')) as unknown
  } catch (err) {
    throw new HttpError(400, 'BATON_ERR_ADMIN_REQUEST', `the body is not valid JSON (${(err as Error).message})`)
  }
}

function tooLarge (): HttpError {
  return new HttpError(413, 'BATON_ERR_ADMIN_REQUEST', `the body is larger than ${MAX_BODY_BYTES} bytes`)
}

function field (body: unknown, key: string): unknown {
  return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>)[key] : undefined
}

function reload (control: AdminControl): { status: number, body: unknown } {
  const r = control.reloadFile('admin')
  if (!r.ok) throw new HttpError(400, r.code, r.message, r.issues)
  return { status: 200, body: { ok: true, ...r.diff } }
}

function weight (control: AdminControl, service: string, server: string, body: unknown, log: Logger): { status: number, body: unknown } {
  const w = field(body, 'weight')
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 65535) {
    throw new HttpError(400, 'BATON_ERR_CLUSTER_VERB', `weight must be an integer 0..65535, got ${JSON.stringify(w) ?? 'nothing'}`)
  }
  verb(control, service, server, () => { control.setWeight(service, server, w) })
  warnChange(log, { svc: service, backend: server, weight: w }, `admin: weight of ${service}/${server} set to ${w} at run time; ` +
    `the next reload puts back the file's weight unless the file says ${w}`)
  return { status: 200, body: row(control, service, server) }
}

function state (control: AdminControl, service: string, server: string, body: unknown, log: Logger): { status: number, body: unknown } {
  const s = field(body, 'state')
  if (typeof s !== 'string' || !STATES.includes(s)) {
    throw new HttpError(400, 'BATON_ERR_CLUSTER_VERB', `state must be up, drain or maint, got ${JSON.stringify(s) ?? 'nothing'}`)
  }
  verb(control, service, server, () => { control.setState(service, server, s as AdminState) })
  warnChange(log, { svc: service, backend: server, state: s }, `admin: ${service}/${server} set to ${s} at run time; ` +
    'it stays so across reloads until set again (the file has no state)')
  return { status: 200, body: row(control, service, server) }
}

function add (control: AdminControl, service: string, server: string, body: unknown, log: Logger): { status: number, body: unknown } {
  const svc = control.config.services.find((s) => s.name === service)
  if (svc === undefined) throw new HttpError(404, 'BATON_ERR_CLUSTER_VERB', `no service named ${service}`)
  if (control.servers().some((r) => r.service === service && r.id === server)) {
    throw new HttpError(409, 'BATON_ERR_CLUSTER_VERB', `service ${service} already has a server ${server}`)
  }
  let cfg: ServerConfig
  try {
    const file = control.config.file
    cfg = parseServerInput(body ?? {}, server, file === '' ? process.cwd() : path.dirname(file), svc.health)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    const issues = err.issues.map((i) => i.message)
    throw new HttpError(400, 'BATON_ERR_CONFIG_INVALID', issues.join('; '), issues)
  }
  verb(control, service, server, () => { control.addServer(service, cfg) })
  warnChange(log, { svc: service, backend: server }, `admin: server ${service}/${server} added at run time; the next reload removes it unless the file lists it`)
  return { status: 201, body: row(control, service, server) }
}

function remove (control: AdminControl, service: string, server: string, log: Logger): { status: number, body: unknown } {
  verb(control, service, server, () => { control.removeServer(service, server) })
  warnChange(log, { svc: service, backend: server }, `admin: server ${service}/${server} removed at run time; the next reload adds it back if the file lists it`)
  return { status: 200, body: { ok: true, service, server } }
}

/** Runs a cluster verb: an unknown service or server is 404, a name in use 409, any other refusal 400. */
function verb (control: AdminControl, service: string, server: string, run: () => void): void {
  try {
    run()
  } catch (err) {
    if (!(err instanceof BatonError) || err.code !== 'BATON_ERR_CLUSTER_VERB') throw err
    const known = control.config.services.some((s) => s.name === service)
    const exists = control.servers().some((r) => r.service === service && r.id === server)
    throw new HttpError(!known || !exists ? 404 : 400, err.code, err.message)
  }
}

/** Runtime changes are rare and an operator watches for them: written out at once. */
function warnChange (log: Logger, fields: Record<string, unknown>, msg: string): void {
  log.warn(fields, msg)
  log.flush()
}

function row (control: AdminControl, service: string, server: string): ServerSnapshot | undefined {
  return control.servers().find((r) => r.service === service && r.id === server)
}

function reply (res: http.ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}
