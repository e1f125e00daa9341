// Rules that relate values to each other, run on the raw document (not on schema output) so that they
// report even when some single value is wrong: unique names, one of handoff/address/agent, forward methods,
// migrate's secret and VIP,
// thresholds, routes naming defined services, unreachable routes, the admin listener, and each service's
// scheduler and key (parsed here by their owners, the scheduler registry and key.ts).

import { isIPv4 } from 'node:net'
import { ConfigError } from '../errors'
import { getScheduler, schedulerNames } from '../schedulers/registry'
import { isLoopback } from '../net/ip'
import { parseAddress } from './address'
import { DEFAULT_KEY_SPEC, parseKeySpec } from './key'
import { describe, label } from './issues'
import { compilePattern } from './pattern'
import type { PathSegment, RawIssue } from './source'
import type { KeySpec } from './types'

export const DEFAULT_SCHEDULER = 'wlc'                   // ipvsadm's default

export interface ResolvedService {
  readonly scheduler: string
  readonly schedulerOptions: unknown
  readonly key: KeySpec
}

export interface CheckResult {
  readonly issues: RawIssue[]
  /** By service index; undefined where the service's scheduler or key had issues. */
  readonly services: Array<ResolvedService | undefined>
}

type Raw = Record<string, unknown>

const isMap = (v: unknown): v is Raw => v !== null && typeof v === 'object' && !Array.isArray(v)
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const issue = (path: PathSegment[], message: string): RawIssue => ({ path, message: `${label(path)}: ${message}` })

export function checkConfig (data: unknown): CheckResult {
  const issues: RawIssue[] = []
  const services: Array<ResolvedService | undefined> = []
  if (!isMap(data)) return { issues, services }
  checkAdmin(data.admin, issues)
  checkUnique(list(data.services), ['services'], 'service', issues)
  list(data.services).forEach((svc, i) => {
    if (!isMap(svc)) return
    const path = ['services', i]
    services[i] = resolveService(svc, path, issues)
    checkUnique(list(svc.servers), [...path, 'servers'], 'server', issues)
    list(svc.servers).forEach((srv, j) => { if (isMap(srv)) checkServer(srv, [...path, 'servers', j], issues) })
    const fallback = svc.fallback
    if (isMap(fallback)) {
      checkServer(fallback, [...path, 'fallback'], issues)
      const clash = list(svc.servers).some((s) => isMap(s) && s.name === fallback.name)
      if (clash) issues.push(issue([...path, 'fallback', 'name'], `"${String(fallback.name)}" is also a regular server of this service`))
    }
  })
  checkRoutes(data, issues)
  checkMigrate(data, issues)
  checkCaptureKeys(data, services, issues)
  return { issues, services }
}

/** Names must be unique among `items`; the second and later uses are the issues. */
function checkUnique (items: unknown[], path: PathSegment[], what: string, issues: RawIssue[], names?: string[]): void {
  const first = new Map<string, number>()
  items.forEach((item, i) => {
    const name = names?.[i] ?? (isMap(item) ? item.name : undefined)
    if (typeof name !== 'string') return
    const seen = first.get(name)
    if (seen === undefined) first.set(name, i)
    else issues.push(issue([...path, i, 'name'], `duplicate ${what} name "${name}" (first used by ${label([...path, seen])})`))
  })
}

function resolveService (svc: Raw, path: PathSegment[], issues: RawIssue[]): ResolvedService | undefined {
  const before = issues.length
  const scheduler = resolveScheduler(svc.scheduler, [...path, 'scheduler'], issues)
  const key = svc.key === undefined ? DEFAULT_KEY_SPEC : collect(() => parseKeySpec(svc.key, label([...path, 'key'])), issues)
  if (scheduler === undefined || key === undefined || issues.length > before) return undefined
  return { ...scheduler, key }
}

/** `scheduler: wlc` or `scheduler: { name: mh, ...options }`; the options (minus name) go to the factory. */
function resolveScheduler (raw: unknown, path: PathSegment[], issues: RawIssue[]) {
  let name: unknown = raw ?? DEFAULT_SCHEDULER
  let options: Raw = {}
  let namePath = path
  if (isMap(raw)) {
    ({ name, ...options } = raw)
    namePath = [...path, 'name']
    if (name === undefined) { issues.push(issue(namePath, 'is required')); return undefined }
  }
  if (typeof name !== 'string') {
    issues.push(issue(path, `must be a scheduler name or a map { name, ...options }, got ${describe(name)}`))
    return undefined
  }
  const factory = getScheduler(name)
  if (factory === undefined) {
    issues.push(issue(namePath, `unknown scheduler "${name}" (valid: ${schedulerNames().join(', ')})`))
    return undefined
  }
  const schedulerOptions = collect(() => factory.parseOptions(options, label(path)), issues)
  return schedulerOptions === undefined ? undefined : { scheduler: name, schedulerOptions }
}

/** Runs another module's parser; its ConfigError issues join ours (their paths are dotted strings). */
function collect<T> (parse: () => T, issues: RawIssue[]): T | undefined {
  try {
    return parse()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    for (const { path, message } of err.issues) {
      const segments = path === '' ? [] : path.split('.')
      issues.push({ path: segments, message: message.startsWith(`${path}:`) ? message : `${path}: ${message}` })
    }
    return undefined
  }
}

export function checkServer (srv: Raw, path: PathSegment[], issues: RawIssue[]): void {
  const { handoff, address, agent, forward, proxyProtocol, minConns, maxConns } = srv
  const kinds = [handoff, address, agent].filter((v) => v !== undefined).length
  if (kinds !== 1) {
    issues.push(issue(path, `server "${String(srv.name)}" needs exactly one of handoff: <socket path> or address: "host:port"` +
      (agent === undefined ? '' : ' or agent: "host:port"')))
  } else if (handoff !== undefined && forward !== undefined && forward !== 'handoff') {
    issues.push(issue([...path, 'forward'], `"${String(forward)}" needs ${forward === 'migrate' ? 'an agent:' : 'an address:'} server, not handoff:`))
  } else if (address !== undefined && (forward === 'handoff' || forward === 'migrate')) {
    issues.push(issue([...path, 'forward'], forward === 'handoff' ? '"handoff" needs a handoff: socket, not address:' : '"migrate" needs an agent: server, not address:'))
  } else if (agent !== undefined && forward !== undefined && forward !== 'migrate') {
    issues.push(issue([...path, 'forward'], `"${String(forward)}" does not apply to an agent: server (it is always migrate)`))
  }
  if (proxyProtocol !== undefined && (handoff !== undefined || agent !== undefined)) {
    issues.push(issue([...path, 'proxyProtocol'], `only applies to address: servers (${handoff !== undefined ? 'handoff' : 'migrate'} passes the client address itself)`))
  }
  if (typeof agent === 'string') {
    const addr = parseAddress(agent, 1)
    if (typeof addr !== 'string' && !isIPv4(addr.host)) {
      issues.push(issue([...path, 'agent'], `must be a numeric IPv4 address (the flow is routed via it), got ${describe(agent)}`))
    }
  }
  if (typeof minConns === 'number' && typeof maxConns === 'number' && minConns > 0 && maxConns > 0 && minConns > maxConns) {
    issues.push(issue([...path, 'minConns'], `must be <= maxConns (${maxConns}), got ${minConns}`))
  }
}

/** Paths of every `agent:` server (regular and fallback). */
function agentServers (data: Raw): PathSegment[][] {
  const found: PathSegment[][] = []
  list(data.services).forEach((svc, i) => {
    if (!isMap(svc)) return
    list(svc.servers).forEach((srv, j) => { if (isMap(srv) && srv.agent !== undefined) found.push(['services', i, 'servers', j]) })
    if (isMap(svc.fallback) && svc.fallback.agent !== undefined) found.push(['services', i, 'fallback'])
  })
  return found
}

/**
 * migrate: secret xor secretFile; agent: servers need migrate: and numeric IPv4 listen addresses (the VIP: the
 * flow map is ipv4_addr . inet_service, and each agent's policy route names the VIP).
 */
function checkMigrate (data: Raw, issues: RawIssue[]): void {
  const m = data.migrate
  if (isMap(m) && (m.secret === undefined) === (m.secretFile === undefined)) {
    issues.push(issue(['migrate'], 'needs exactly one of secret: or secretFile: (the control connections\' shared secret)'))
  }
  const agents = agentServers(data)
  if (agents.length === 0) return
  if (m === undefined) {
    issues.push(issue([...agents[0]!, 'agent'], 'an agent: server needs a top-level migrate: { secretFile: FILE } (the control connection\'s shared secret)'))
  }
  const listen = typeof data.listen === 'string' ? [data.listen] : list(data.listen)
  listen.forEach((l, i) => {
    const addr = typeof l === 'string' ? parseAddress(l, 0) : undefined
    if (addr === undefined || typeof addr === 'string') return // schema.ts reports it
    if (!isIPv4(addr.host) || addr.host === '0.0.0.0' || addr.port === 0) {
      const path = typeof data.listen === 'string' ? ['listen'] : ['listen', i]
      issues.push(issue(path, `must be a numeric IPv4 address and a fixed port (the VIP) when servers are given as agent:, got ${describe(l)}`))
    }
  })
}

function checkAdmin (admin: unknown, issues: RawIssue[]): void {
  if (!isMap(admin)) return
  if ((admin.listen === undefined) === (admin.socket === undefined)) {
    issues.push(issue(['admin'], 'needs exactly one of listen: "host:port" or socket: <path>'))
  }
  if (admin.token !== undefined && admin.tokenFile !== undefined) {
    issues.push(issue(['admin', 'tokenFile'], 'give token or tokenFile, not both'))
  }
  if (admin.allowRemote === true && admin.token === undefined && admin.tokenFile === undefined) {
    issues.push(issue(['admin', 'allowRemote'], 'needs admin.token or admin.tokenFile: the write routes would be open to the network'))
  }
  if (typeof admin.listen !== 'string' || admin.allowRemote === true) return
  const addr = parseAddress(admin.listen, 0)
  if (typeof addr !== 'string' && !isLoopback(addr.host)) {
    issues.push(issue(['admin', 'listen'], `must be a loopback address unless admin.allowRemote is true, got ${describe(admin.listen)}`))
  }
}

/** A route without match (or with an empty one) matches every request. */
export function matchesEverything (route: unknown): boolean {
  return isMap(route) && (route.match === undefined || (isMap(route.match) && Object.keys(route.match).length === 0))
}

function checkRoutes (data: Raw, issues: RawIssue[]): void {
  const routes = list(data.routes)
  const services = new Set(list(data.services).map((s) => (isMap(s) ? s.name : undefined)))
  const names = routes.map((r, i) => (isMap(r) && typeof r.name === 'string' ? r.name : `route-${i}`))
  checkUnique(routes, ['routes'], 'route', issues, names)
  let catchAll: number | undefined
  routes.forEach((route, i) => {
    if (!isMap(route)) return
    if (catchAll !== undefined) {
      issues.push(issue(['routes', i], `unreachable: ${label(['routes', catchAll])} ("${names[catchAll] ?? ''}") before it matches every request`))
    } else if (matchesEverything(route)) {
      catchAll = i
    }
    if (typeof route.service === 'string' && !services.has(route.service)) {
      issues.push(issue(['routes', i, 'service'], `no service named "${route.service}"`))
    }
    const header = isMap(route.match) ? route.match.header : undefined
    list(header).forEach((h, j) => {
      if (isMap(h) && h.value !== undefined && h.regex !== undefined) {
        issues.push(issue(['routes', i, 'match', 'header', j], 'give value or regex, not both'))
      }
    })
  })
}

/** A `capture:` key is only found in routes to that service whose pathRegex has the group. */
function checkCaptureKeys (data: Raw, resolved: Array<ResolvedService | undefined>, issues: RawIssue[]): void {
  const keys = new Map<unknown, KeySpec>()
  list(data.services).forEach((svc, i) => { if (isMap(svc)) keys.set(svc.name, resolved[i]?.key ?? DEFAULT_KEY_SPEC) })
  if (data.routes === undefined && resolved[0]?.key.kind === 'capture') {
    issues.push(issue(['services', 0, 'key'], 'a capture: key needs routes with a match.pathRegex (there are no routes)'))
  }
  list(data.routes).forEach((route, i) => {
    const key = isMap(route) ? keys.get(route.service) : undefined
    if (key?.kind !== 'capture' || !isMap(route)) return
    const source = isMap(route.match) ? route.match.pathRegex : undefined
    const want = `key capture:${key.group} of service "${String(route.service)}"`
    if (source === undefined) {
      issues.push(issue(['routes', i], `needs a match.pathRegex with the group of the ${want}`))
      return
    }
    const pattern = typeof source === 'string' ? compilePattern(source) : undefined
    if (pattern === undefined || typeof pattern === 'string') return  // schema.ts reports it
    const found = typeof key.group === 'number' ? key.group <= pattern.groupCount : pattern.groupNames.includes(key.group)
    if (!found) issues.push(issue(['routes', i, 'match', 'pathRegex'], `has no group for the ${want}`))
  })
}
