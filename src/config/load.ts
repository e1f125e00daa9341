// baton.yaml -> a validated, deeply frozen Config, or a ConfigError carrying every issue at once, each with
// file:line:col. Three passes, all run before reporting: YAML syntax (source.ts), the shape and each value
// (schema.ts), and the rules between values (checks.ts). Config time only; nothing here listens or logs.

import { dirname, resolve } from 'node:path'
import { ConfigError, type ConfigIssue } from '../errors'
import { checkConfig, type ResolvedService } from './checks'
import { fromZodIssues } from './issues'
import { configSchema, type ParsedConfig } from './schema'
import { readConfigText } from './read'
import { readYaml } from './source'
import type { Config, HealthCheckConfig, MigrateConfig, RouteConfig, ServerConfig, ServiceConfig } from './types'

/**
 * Reads and parses a config file. Throws BatonError BATON_ERR_CONFIG_READ if the file cannot be read, and
 * ConfigError (BATON_ERR_CONFIG_INVALID) with all issues if it is not a valid config (read.ts: too large,
 * not UTF-8). Every message starts with `file:line:col: `.
 */
export function loadConfigFile (file: string): Config {
  return parseConfig(readConfigText(file), file)
}

/**
 * Parses config text. `file` names the source in issues and anchors relative socket paths ('' = in memory:
 * paths resolve against the working directory). Throws ConfigError with every issue, sorted by position.
 */
export function parseConfig (text: string, file: string): Config {
  const source = readYaml(text, file)
  if (source.syntaxIssues.length > 0) throw new ConfigError(source.syntaxIssues)
  const baseDir = file === '' ? process.cwd() : dirname(resolve(file))
  const parsed = configSchema(baseDir).safeParse(source.data)
  const checked = checkConfig(source.data)
  const raw = [...(parsed.success ? [] : fromZodIssues(parsed.error.issues, source.data)), ...checked.issues]
  if (raw.length > 0 || !parsed.success) throw new ConfigError(sortIssues(raw.map(source.locate)))
  const config = build(parsed.data, checked.services, file === '' ? '' : resolve(file))
  return deepFreeze(config)
}

function sortIssues (issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0))
}

function build (data: ParsedConfig, resolved: ReadonlyArray<ResolvedService | undefined>, file: string): Config {
  const services = data.services.map((svc, i): ServiceConfig => {
    const r = resolved[i]
    if (r === undefined) throw new Error(`config: service ${i} resolved with no issues but no scheduler`)
    return {
      name: svc.name,
      scheduler: r.scheduler,
      schedulerOptions: r.schedulerOptions,
      key: r.key,
      ...(svc.persistent === undefined ? {} : { persistent: svc.persistent }),
      slowStartS: svc.slowStartS,
      quiescent: svc.quiescent,
      keepAlive: svc.keepAlive,
      ...(svc.health === undefined ? {} : { health: buildHealth(svc.health, undefined)! }),
      ...(svc.fallback === undefined ? {} : { fallback: buildServer(svc.fallback, undefined) }),
      servers: svc.servers.map((srv) => buildServer(srv, svc.health)),
    }
  })
  const { admin } = data
  return {
    file,
    listen: data.listen,
    ...(admin === undefined
      ? {}
      : {
          admin: {
            ...(admin.listen === undefined ? {} : { listen: admin.listen }),
            ...(admin.socket === undefined ? {} : { socket: admin.socket }),
            ...(admin.allowRemote === undefined ? {} : { allowRemote: admin.allowRemote }),
            ...(admin.token === undefined ? {} : { token: admin.token }),
            ...(admin.tokenFile === undefined ? {} : { token: admin.tokenFile.token, tokenFile: admin.tokenFile.path }),
          },
        }),
    watch: data.watch,
    limits: data.limits,
    ...(data.migrate === undefined ? {} : { migrate: buildMigrate(data.migrate) }),
    log: data.log,
    services,
    routes: buildRoutes(data, services),
  }
}

function buildMigrate (m: NonNullable<ParsedConfig['migrate']>): MigrateConfig {
  return {
    secret: m.secretFile?.token ?? m.secret ?? '',
    ...(m.secretFile === undefined ? {} : { secretFile: m.secretFile.path }),
    flowTable: m.flowTable,
    graceMs: m.graceMs,
    timeoutMs: m.timeoutMs,
  }
}

export type ParsedServer = ParsedConfig['services'][number]['servers'][number]
type ParsedHealth = Exclude<ParsedServer['health'], false | undefined>

export function buildServer (srv: ParsedServer, serviceHealth: ParsedHealth | undefined): ServerConfig {
  const { name, handoff, address, agent, weight, maxConns, minConns, proxyProtocol } = srv
  const health = buildHealth(serviceHealth, srv.health)
  return {
    name,
    ...(handoff === undefined ? {} : { handoff }),
    ...(address === undefined ? {} : { address }),
    ...(agent === undefined ? {} : { agent }),
    ...(srv.forward === undefined ? {} : { forward: srv.forward }),
    weight,
    maxConns,
    minConns,
    ...(proxyProtocol === undefined ? {} : { proxyProtocol }),
    ...(health === undefined ? {} : { health }),
  }
}

/** The server's keys over the service's, then the defaults; `health: false` on the server = no checks. */
function buildHealth (svc: ParsedHealth | undefined, own: ParsedHealth | false | undefined): HealthCheckConfig | undefined {
  if (own === false || (svc === undefined && own === undefined)) return undefined
  const h = { ...svc, ...own }
  const intervalMs = h.intervalMs ?? 2000
  // `tcp: true` at a level means a connect check there, whatever `http` says beside it or above it.
  const http = own?.tcp === true ? undefined : own?.http ?? (svc?.tcp === true ? undefined : svc?.http)
  return {
    ...(http === undefined ? {} : { http: dropUndefined(http) }),
    ...(h.address === undefined ? {} : { address: h.address }),
    intervalMs,
    fastIntervalMs: h.fastIntervalMs ?? Math.min(intervalMs, 500),
    timeoutMs: h.timeoutMs ?? Math.min(intervalMs, 1000),
    rise: h.rise ?? 2,
    fall: h.fall ?? 3,
  }
}

type Defined<T> = { [K in keyof T]: Exclude<T[K], undefined> }

function dropUndefined<T extends object> (o: T): Defined<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Defined<T>
}

/** No routes: everything goes to the first service (there is always one). */
function buildRoutes (data: ParsedConfig, services: readonly ServiceConfig[]): RouteConfig[] {
  if (data.routes === undefined) return [{ name: 'route-0', match: {}, service: services[0]?.name ?? '' }]
  return data.routes.map((route, i) => {
    const m = route.match ?? {}
    const match = {
      ...(m.path === undefined ? {} : { path: m.path }),
      ...(m.pathExact === undefined ? {} : { pathExact: m.pathExact }),
      ...(m.pathRegex === undefined ? {} : { pathRegex: m.pathRegex }),
      ...(m.host === undefined ? {} : { host: m.host }),
      ...(m.method === undefined ? {} : { method: m.method }),
      ...(m.header === undefined
        ? {}
        : {
            header: m.header.map((h) => ({
              name: h.name,
              ...(h.value === undefined ? {} : { value: h.value }),
              ...(h.regex === undefined ? {} : { regex: h.regex }),
            })),
          }),
    }
    return { name: route.name ?? `route-${i}`, match, service: route.service }
  })
}

/** Freezes objects and arrays by their own enumerable keys (a Pattern's engine is private and stays live). */
function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
  }
  return value
}
