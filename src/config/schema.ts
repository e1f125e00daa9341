// The shape of baton.yaml and the rule for each single value, as a zod schema: types, ranges, defaults,
// unknown keys, and conversions (addresses, RE2 patterns, lower-cased hosts). Rules that relate two values
// (unique names, handoff xor address, routes naming services) live in checks.ts, so that they run even
// when some value here is wrong and every issue is reported at once. Messages name the rule, never the
// value: issues.ts prefixes the path and appends `, got <value>`.

import { isAbsolute, resolve } from 'node:path'
import { z } from 'zod'
import { NFT_FLOWS_MAP, NFT_TABLE } from '../host/nft-table'
import { parseAddress } from './address'
import { compilePattern } from './pattern'
import { readTokenFile } from './read'

const NAME = /^[A-Za-z0-9_.-]+$/
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/                          // RFC 9110 tchar
const HOST = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/
const MAX_INT32 = 2_147_483_647
const SET_COOKIE = 'must not be Set-Cookie (a response header; Node gives the application a list, not a value)'
/** sun_path is 108 bytes including the terminating NUL (abstract names: the leading NUL). */
const MAX_SOCKET_PATH = 107
/** 16 to 512 visible ASCII characters: what fits an Authorization header and is not guessed. */
const ADMIN_TOKEN = /^[\x21-\x7e]{16,512}$/
const TOKEN_CHARS = '16 to 512 visible ASCII characters (no spaces)'
const TOKEN_RULE = `must be ${TOKEN_CHARS}`

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const FORWARD_METHODS = ['handoff', 'splice', 'pipe', 'migrate'] as const

/** A strict map: unknown keys are errors. The unknown-key message carries the valid keys for issues.ts. */
function strict<S extends z.ZodRawShape> (shape: S, what = 'a map') {
  const keys = Object.keys(shape).join(', ')
  return z.strictObject(shape, { error: (iss) => iss.code === 'unrecognized_keys' ? keys : `must be ${what}` })
}

function intIn (lo: number, hi: number) {
  const error = `must be an integer ${lo}..${hi}`
  return z.number({ error }).int({ error }).min(lo, { error }).max(hi, { error })
}

function text (error: string) {
  return z.string({ error }).min(1, { error })
}

const name = z.string({ error: 'must be a name' })
  .regex(NAME, { error: 'must be a name of letters, digits, "_", "." and "-"' })

/** A string or a non-empty list of them (each checked by `item`), always returned as a list. */
function oneOrMany<T> (item: z.ZodType<T, string>, what: string, noun: string) {
  return z.union([
    item.transform((v) => [v]),
    z.array(item, { error: `must be ${what} or a list of them` })
      .min(1, { error: `must list at least one ${noun}` }),
  ], { error: `must be ${what} or a list of them` })
}

function address (minPort: 0 | 1) {
  return z.string({ error: 'must be "host:port"' }).transform((v, ctx) => {
    const parsed = parseAddress(v, minPort)
    if (typeof parsed !== 'string') return parsed
    ctx.issues.push({ code: 'custom', message: parsed, input: v })
    return z.NEVER
  })
}

/** Unix socket path: '@name' is the abstract namespace; a relative path is relative to the config file. */
function socketPath (baseDir: string) {
  return text('must be a socket path').transform((v, ctx) => {
    const full = v.startsWith('@') || isAbsolute(v) ? v : resolve(baseDir, v)
    if (Buffer.byteLength(full) <= MAX_SOCKET_PATH) return full
    ctx.issues.push({ code: 'custom', message: `must be at most ${MAX_SOCKET_PATH} bytes once resolved (${full})`, input: v })
    return z.NEVER
  })
}

/** An RE2 pattern (pattern.ts), compiled here once; the engine's reason when it refuses one. */
const regex = z.string({ error: 'must be a regular expression' }).transform((v, ctx) => {
  const pattern = compilePattern(v)
  if (typeof pattern !== 'string') return pattern
  ctx.issues.push({ code: 'custom', message: `must be a valid RE2 regular expression (${pattern})`, input: v })
  return z.NEVER
})

/** request/path.ts drops `;` parameters and refuses empty segments: a route path with either never matches. */
const urlPath = text('must be a path starting with "/"').startsWith('/', { error: 'must be a path starting with "/"' })
  .refine((v) => !/;|%3b|\/\//i.test(v), {
    error: 'must not hold ";", "%3B" or "//" (requests are routed without path parameters; "//" is refused)',
  })

const host = z.string({ error: 'must be a host name' }).transform((v, ctx) => {
  const lower = v.toLowerCase()
  if (HOST.test(lower)) return lower
  ctx.issues.push({ code: 'custom', message: 'must be a host name ("*." allowed only as the first label)', input: v })
  return z.NEVER
})

const method = z.string({ error: 'must be an HTTP method' })
  .regex(TOKEN, { error: 'must be an HTTP method (token characters only)' })
  .transform((v) => v.toUpperCase())

/** Set-Cookie is refused: Node gives the application a request's Set-Cookie fields as a list, not a value. */
const headerName = z.string({ error: 'must be a header name' })
  .regex(TOKEN, { error: 'must be a header name (token characters only)' })
  .transform((v) => v.toLowerCase())
  .refine((v) => v !== 'set-cookie', { error: SET_COOKIE })

const headerValue = z.string({ error: 'must be a string (quote numbers and booleans)' })

/** `{ name: value }` or `[{ name, value? , regex? }]`; value and regex may not both be given (checks.ts). */
const headers = z.union([
  z.array(strict({ name: headerName, value: headerValue.optional(), regex: regex.optional() }),
    { error: 'must be a map of header: value or a list of { name, value, regex }' }),
  z.record(z.string(), headerValue, { error: 'must be a map of header: value or a list of { name, value, regex }' })
    .transform((map, ctx) => Object.entries(map).map(([key, value]) => {
      const parsed = headerName.safeParse(key)
      if (!parsed.success) {
        const message = parsed.error.issues[0]?.message === SET_COOKIE ? SET_COOKIE : 'header names must be tokens'
        ctx.issues.push({ code: 'custom', message, input: key, path: [key] })
      }
      return { name: key.toLowerCase(), value, regex: undefined }
    })),
], { error: 'must be a map of header: value or a list of { name, value, regex }' })

const match = strict({
  path: urlPath.optional(),
  pathExact: urlPath.optional(),
  pathRegex: regex.optional(),
  host: oneOrMany(host, 'a host name', 'host').optional(),
  method: oneOrMany(method, 'an HTTP method', 'method').optional(),
  header: headers.optional(),
})

const route = strict({ name: name.optional(), match: match.optional(), service: name })

/** Active health checks; every key optional here, defaults filled per server in load.ts. */
const health = strict({
  http: strict({
    path: urlPath.default('/'),
    method: method.default('GET'),
    host: z.string({ error: 'must be a host name' }).min(1).optional(),
    expect: z.array(intIn(100, 599), { error: 'must be a list of HTTP statuses' }).min(1).optional(),
    body: z.string({ error: 'must be a string' }).optional(),
  }, 'a map of HTTP check settings').optional(),
  tcp: z.boolean({ error: 'must be true or false' }).optional(),
  address: address(1).optional(),
  intervalMs: intIn(10, 86_400_000).optional(),
  fastIntervalMs: intIn(10, 86_400_000).optional(),
  timeoutMs: intIn(1, 600_000).optional(),
  rise: intIn(1, 1000).optional(),
  fall: intIn(1, 1000).optional(),
}, 'a map of health check settings')

function server (baseDir: string) {
  return strict({
    name,
    handoff: socketPath(baseDir).optional(),
    address: address(1).optional(),
    agent: address(1).optional(),
    forward: z.enum(FORWARD_METHODS, { error: `must be one of ${FORWARD_METHODS.join(', ')}` }).optional(),
    weight: intIn(0, 65535).default(1),
    maxConns: intIn(0, MAX_INT32).default(0),
    minConns: intIn(0, MAX_INT32).default(0),
    proxyProtocol: z.enum(['v1', 'v2'], { error: 'must be v1 or v2' }).optional(),
    health: z.union([z.literal(false), health], { error: 'must be false or a map of health check settings' }).optional(),
  })
}

const persistent = z.preprocess(
  (v) => (v === true ? {} : v === false ? undefined : v),
  strict({ timeoutS: intIn(1, 31_536_000).default(300), netmask: intIn(0, 128).default(32) }, 'true or a map')
    .optional())

function service (baseDir: string) {
  return strict({
    name,
    scheduler: z.unknown().optional(),                    // checks.ts: registry + parseOptions
    key: z.unknown().optional(),                          // checks.ts: parseKeySpec
    persistent,
    health: health.optional(),
    slowStartS: intIn(0, 86_400).default(0),
    quiescent: z.boolean({ error: 'must be true or false' }).default(false),
    keepAlive: z.enum(['reroute', 'sticky'], { error: 'must be reroute or sticky' }).default('reroute'),
    fallback: server(baseDir).optional(),
    servers: z.array(server(baseDir), { error: 'must be a list of servers' })
      .min(1, { error: 'must list at least one server' }),
  })
}

const limits = strict({
  headerTimeoutMs: intIn(1, MAX_INT32).default(10_000),
  maxHeaderBytes: intIn(256, 1_048_576).default(16_384),
  connectTimeoutMs: intIn(1, MAX_INT32).default(3_000),
  idleTimeoutMs: intIn(1, MAX_INT32).default(300_000),
  drainTimeoutMs: intIn(1, 60_000).default(1_000),
  maxPendingConns: intIn(1, 1_048_576).default(4_096),
  channelTimeoutMs: intIn(100, 600_000).default(2_000),
  shutdownTimeoutMs: intIn(0, 3_600_000).default(10_000),
  moveIntervalMs: intIn(0, 3_600_000).default(1_000),
})

/** The admin API's bearer token: long enough not to be guessed, printable, no spaces. */
const adminToken = z.string({ error: TOKEN_RULE }).regex(ADMIN_TOKEN, { error: TOKEN_RULE })

/** A file holding the token (its surrounding whitespace ignored), read at load time so a bad one stops start-up. */
function tokenFile (baseDir: string) {
  return text('must be a file path').transform((v, ctx) => {
    const full = isAbsolute(v) ? v : resolve(baseDir, v)
    const token = readTokenFile(full)
    if (token.ok && ADMIN_TOKEN.test(token.value)) return { path: full, token: token.value }
    ctx.issues.push({ code: 'custom', message: token.ok ? `must hold a token of ${TOKEN_CHARS} (${full})` : token.reason, input: v })
    return z.NEVER
  })
}

/** An nft object name (nft's identifier grammar). */
const nftName = z.string({ error: 'must be an nft name' })
  .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,254}$/, { error: 'must be an nft name (a letter, then letters, digits, "_", "." or "-")' })

/**
 * Cross-host handoff (forward: migrate, servers given as agent:): the control connections' shared secret,
 * the nft map that steers migrated flows, and the timings. checks.ts: secret xor secretFile.
 */
function migrate (baseDir: string) {
  return strict({
    secret: adminToken.optional(),
    secretFile: tokenFile(baseDir).optional(),
    flowTable: strict({ table: nftName.default(NFT_TABLE), map: nftName.default(NFT_FLOWS_MAP) }, 'a map { table, map }')
      .prefault({}),
    graceMs: intIn(0, 600_000).default(3_000),
    timeoutMs: intIn(10, 60_000).default(1_000),
  }, 'a map of migrate settings')
}

/** The whole document. `baseDir` resolves relative socket paths. Build one per parse (cheap). */
export function configSchema (baseDir: string) {
  return strict({
    listen: oneOrMany(address(0), 'an address "host:port"', 'address'),
    admin: strict({
      listen: address(0).optional(),
      socket: socketPath(baseDir).optional(),
      allowRemote: z.boolean({ error: 'must be true or false' }).optional(),
      token: adminToken.optional(),
      tokenFile: tokenFile(baseDir).optional(),
    }).optional(),
    watch: z.boolean({ error: 'must be true or false' }).default(false),
    migrate: migrate(baseDir).optional(),
    limits: limits.prefault({}),
    log: strict({ level: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info') }).prefault({}),
    services: z.array(service(baseDir), { error: 'must be a list of services' })
      .min(1, { error: 'must list at least one service' }),
    routes: z.array(route, { error: 'must be a list of routes' })
      .min(1, { error: 'must list at least one route (or leave routes out: everything goes to the first service)' })
      .optional(),
  }, 'a map of settings')
}

export type ParsedConfig = z.output<ReturnType<typeof configSchema>>

/** One real server, as in `services[].servers[]` (the admin API validates servers added at run time with it). */
export const serverSchema = server
