// The key grammar: what `key:` in a service means (config time only). The key of a request is
// request/keys.ts.
import { ConfigError } from '../errors'
import type { KeySpec } from './types'

/** The key when a service has no `key:`. */
export const DEFAULT_KEY_SPEC: KeySpec = Object.freeze({ kind: 'path' })

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const GROUP_NAME = /^[A-Za-z0-9_]+$/                            // an RE2 group name (all digits: a number)
const KINDS = 'path, host, host+path, header:NAME, cookie:NAME, client-ip, client-ip/NN, capture:N, capture:NAME'

/**
 * `path` (the default when absent), `host`, `host+path`, `header:NAME` (NAME lower-cased), `cookie:NAME`,
 * `client-ip`, `client-ip/NN` (NN 0..32: an IPv4 prefix; IPv6 clients are keyed by their /64, see
 * extractKey), `capture:N` or `capture:NAME` (a group of the route's pathRegex).
 * Throws ConfigError with one issue at `path`.
 */
export function parseKeySpec (raw: unknown, path: string): KeySpec {
  if (raw === undefined || raw === null) return DEFAULT_KEY_SPEC
  const fail = (why: string): never => {
    throw new ConfigError([{ path, message: `key ${why}` }])
  }
  if (typeof raw !== 'string') return fail(`must be a string (${KINDS}), got ${JSON.stringify(raw)}`)
  if (raw === 'path' || raw === 'host' || raw === 'host+path') return { kind: raw }
  if (raw === 'client-ip') return { kind: 'client-ip' }
  const colon = raw.indexOf(':')
  const kind = colon < 0 ? raw : raw.slice(0, colon)
  const arg = colon < 0 ? '' : raw.slice(colon + 1)
  if (kind === 'header' || kind === 'cookie') {
    if (!TOKEN.test(arg)) return fail(`"${raw}": ${kind} name must be a non-empty token`)
    if (kind === 'header' && arg.toLowerCase() === 'set-cookie') {
      return fail(`"${raw}": Set-Cookie is a response header (Node gives the application a list, not a value)`)
    }
    return kind === 'header' ? { kind, name: arg.toLowerCase() } : { kind, name: arg }
  }
  if (kind === 'capture') {
    if (/^\d+$/.test(arg)) return { kind, group: Number(arg) }
    if (GROUP_NAME.test(arg)) return { kind, group: arg }
    return fail(`"${raw}": capture needs a group number or name`)
  }
  const prefix = /^client-ip\/(\d{1,2})$/.exec(raw)
  if (prefix !== null) {
    const n = Number(prefix[1])
    if (n > 32) return fail(`"${raw}": client-ip prefix must be 0..32, got ${n}`)
    return { kind: 'client-ip', prefixLength: n }
  }
  return fail(`"${raw}" is not a key kind; expected one of ${KINDS}`)
}

