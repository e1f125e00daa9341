// Where `baton ctl` finds the admin API: `--admin ADDR` (host:port, a socket path, '@name'), or the
// `admin:` section of the config file (`-c FILE`, default config/baton.yaml), read leniently: a file that
// is being edited and does not validate must not keep `ctl reload` from reporting its issues. The token
// comes from --token, then BATON_ADMIN_TOKEN, then admin.token or admin.tokenFile (with --admin, only when
// -c was given).
import path from 'node:path'
import { parse } from 'yaml'
import { parseAddress } from '../config/address'
import { readConfigText, readTokenFile } from '../config/read'
import { BatonError } from '../errors'

export interface AdminTarget {
  /** Base URL of the API ('http://localhost' on a Unix socket). */
  readonly url: string
  /** Set for a Unix socket ('\0name' for an abstract one). */
  readonly socketPath: string | undefined
  /** For messages: host:port or the socket path as written. */
  readonly label: string
  readonly token: string | undefined
}

export interface TargetOptions {
  readonly admin: string | undefined
  readonly token: string | undefined
  readonly config: string
  /** -c was given: with --admin, the token is still read from this file. */
  readonly configGiven: boolean
}

/** A message for the operator (printed as one line, exit 1). */
export class CtlError extends Error {}

export function resolveAdminTarget (opts: TargetOptions, env: NodeJS.ProcessEnv): AdminTarget {
  const envToken = env.BATON_ADMIN_TOKEN === '' ? undefined : env.BATON_ADMIN_TOKEN
  const base = path.dirname(path.resolve(opts.config))
  if (opts.admin !== undefined) {
    const token = opts.token ?? envToken ?? (opts.configGiven ? tokenOf(adminSection(opts.config), base, opts.config) : undefined)
    return fromAddress(opts.admin, token)
  }
  const admin = adminSection(opts.config)
  const token = opts.token ?? envToken ?? tokenOf(admin, base, opts.config)
  if (typeof admin.socket === 'string') return fromAddress(socketPath(admin.socket, base), token)
  if (typeof admin.listen === 'string') {
    const addr = parseAddress(admin.listen, 0)
    if (typeof addr === 'string') throw new CtlError(`${opts.config}: admin.listen ${addr}`)
    if (addr.port === 0) throw new CtlError(`${opts.config}: admin.listen has port 0 (any free port): pass --admin HOST:PORT`)
    return fromAddress(`${connectHost(addr.host)}:${addr.port}`, token)
  }
  throw new CtlError(`${opts.config}: admin: needs listen or socket`)
}

function fromAddress (addr: string, token: string | undefined): AdminTarget {
  if (addr.startsWith('@')) return { url: 'http://localhost', socketPath: `\0${addr.slice(1)}`, label: addr, token }
  if (addr.includes('/')) return { url: 'http://localhost', socketPath: addr, label: addr, token }
  const parsed = parseAddress(addr, 1)
  if (typeof parsed === 'string') throw new CtlError(`--admin ${addr}: ${parsed} (or give a socket path)`)
  const host = parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host
  return { url: `http://${host}:${parsed.port}`, socketPath: undefined, label: `${host}:${parsed.port}`, token }
}

function adminSection (file: string): Record<string, unknown> {
  let doc: unknown
  try {
    doc = parse(readConfigText(file), { maxAliasCount: 100 })
  } catch (err) {
    const why = err instanceof BatonError ? err.message : `${file}: ${(err as Error).message}`
    throw new CtlError(`${why}; pass --admin ADDR or -c FILE`)
  }
  const admin = isMap(doc) ? doc.admin : undefined
  if (!isMap(admin)) throw new CtlError(`${file} has no admin: section (the admin API is off); pass --admin ADDR`)
  return admin
}

function tokenOf (admin: Record<string, unknown>, base: string, file: string): string | undefined {
  if (typeof admin.token === 'string') return admin.token
  if (typeof admin.tokenFile !== 'string') return undefined
  const r = readTokenFile(path.isAbsolute(admin.tokenFile) ? admin.tokenFile : path.resolve(base, admin.tokenFile))
  if (!r.ok) throw new CtlError(`${file}: admin.tokenFile: ${r.reason}; pass --token or BATON_ADMIN_TOKEN`)
  return r.value
}

/** As config/schema.ts resolves it: '@name' and absolute paths as written, others from the file's directory. */
function socketPath (p: string, base: string): string {
  return p.startsWith('@') || path.isAbsolute(p) ? p : path.resolve(base, p)
}

/** A wildcard listen address is reached on loopback. */
function connectHost (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::') return '::1'
  return host
}

function isMap (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
