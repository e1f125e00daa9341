// Routes: ordered predicates over the request head -> service; first match wins (KTCPVS). Compiled once per
// config. match() runs per connection: no allocation except a RegExp exec when a route uses pathRegex.
import type { HeaderMatch, RouteConfig } from '../config/types'
import type { RequestHead } from './types'

export interface RouteMatchResult<S> {
  readonly route: CompiledRoute<S>
  /** The pathRegex exec result, for `capture:` keys; null when the route has no pathRegex. */
  readonly captures: RegExpExecArray | null
}

export interface CompiledRoute<S> {
  readonly name: string
  readonly service: S
  readonly config: RouteConfig
}

interface HostPattern { readonly exact: string | undefined; readonly suffix: string | undefined }

class Route<S> implements CompiledRoute<S> {
  readonly name: string
  readonly service: S
  readonly config: RouteConfig
  readonly #hosts: readonly HostPattern[] | undefined
  readonly #methods: readonly string[] | undefined
  readonly #headers: readonly HeaderMatch[] | undefined
  readonly #pathRegex: RegExp | undefined

  constructor (config: RouteConfig, service: S) {
    this.name = config.name
    this.service = service
    this.config = config
    this.#hosts = config.match.host?.map(compileHost)
    this.#methods = config.match.method
    this.#headers = config.match.header?.map((h) => h.regex === undefined ? h : { ...h, regex: stateless(h.regex) })
    this.#pathRegex = config.match.pathRegex === undefined ? undefined : stateless(config.match.pathRegex)
  }

  /** undefined = no match; null = match without captures; an exec result = match with captures. */
  test (head: RequestHead): RegExpExecArray | null | undefined {
    const m = this.config.match
    if (m.path !== undefined && !head.path.startsWith(m.path)) return undefined
    if (m.pathExact !== undefined && head.path !== m.pathExact) return undefined
    if (this.#methods !== undefined && !this.#methods.includes(head.method)) return undefined
    if (this.#hosts !== undefined && !matchHost(this.#hosts, head.host)) return undefined
    if (this.#headers !== undefined && !matchHeaders(this.#headers, head.headers)) return undefined
    if (this.#pathRegex === undefined) return null
    return this.#pathRegex.exec(head.path) ?? undefined
  }
}

export class Router<S> {
  readonly #routes: readonly Route<S>[]

  constructor (routes: readonly RouteConfig[], resolve: (serviceName: string) => S) {
    this.#routes = routes.map((r) => new Route(r, resolve(r.service)))
  }

  /** The first route that matches, or null (the dispatcher answers 404). */
  match (head: RequestHead): RouteMatchResult<S> | null {
    for (const route of this.#routes) {
      const captures = route.test(head)
      if (captures !== undefined) return { route, captures }
    }
    return null
  }
}

/** A private copy without the g and y flags, so exec()/test() keep no state between connections. */
function stateless (re: RegExp): RegExp {
  return new RegExp(re.source, re.flags.replace(/[gy]/g, ''))
}

function compileHost (pattern: string): HostPattern {
  // '*.example.com' matches 'a.example.com' and 'a.b.example.com', not 'example.com' (as nginx and Traefik).
  return pattern.startsWith('*.')
    ? { exact: undefined, suffix: pattern.slice(1) }
    : { exact: pattern, suffix: undefined }
}

function matchHost (patterns: readonly HostPattern[], host: string): boolean {
  for (const p of patterns) {
    if (p.exact !== undefined ? host === p.exact : host.length > p.suffix!.length && host.endsWith(p.suffix!)) {
      return true
    }
  }
  return false
}

/** Every header predicate must hold. Header names compare case-insensitively; any one instance may match. */
function matchHeaders (predicates: readonly HeaderMatch[], headers: readonly string[]): boolean {
  for (const p of predicates) {
    let found = false
    for (let i = 0; i < headers.length && !found; i += 2) {
      const name = headers[i]!
      if (name.length !== p.name.length || name.toLowerCase() !== p.name) continue
      const value = headers[i + 1]!
      if (p.value !== undefined) found = value === p.value
      else if (p.regex !== undefined) found = p.regex.test(value)
      else found = true
    }
    if (!found) return false
  }
  return true
}
