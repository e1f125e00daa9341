// Routes: ordered predicates over the request head -> service; first match wins (KTCPVS). Compiled once per
// config. match() runs per connection. It allocates nothing for a route without pathRegex; a pathRegex
// match costs one linear-time RE2 search (config/pattern.ts) and its Captures. Header predicates read the
// value Node gives the application (headers.ts), which allocates only for a repeated, joined field.
import type { Captures, Pattern } from '../config/pattern'
import type { HeaderMatch, RouteConfig } from '../config/types'
import { headerValueAsNode } from './headers'
import type { RequestHead } from './types'

export interface RouteMatchResult<S> {
  readonly route: CompiledRoute<S>
  /** The pathRegex match, for `capture:` keys; null when the route has no pathRegex. */
  readonly captures: Captures | null
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
  readonly #pathRegex: Pattern | undefined
  /** The result when the route has no pathRegex: made once, returned for every match. */
  readonly #plain: RouteMatchResult<S>

  constructor (config: RouteConfig, service: S) {
    this.name = config.name
    this.service = service
    this.config = config
    this.#hosts = config.match.host?.map(compileHost)
    this.#pathRegex = config.match.pathRegex
    this.#plain = Object.freeze({ route: this, captures: null })
  }

  /** The result when every predicate holds, else null. */
  match (head: RequestHead): RouteMatchResult<S> | null {
    const m = this.config.match
    if (m.path !== undefined && !head.path.startsWith(m.path)) return null
    if (m.pathExact !== undefined && head.path !== m.pathExact) return null
    if (m.method !== undefined && !m.method.includes(head.method)) return null
    if (this.#hosts !== undefined && !matchHost(this.#hosts, head.host)) return null
    if (m.header !== undefined && !matchHeaders(m.header, head.headers)) return null
    if (this.#pathRegex === undefined) return this.#plain
    const captures = this.#pathRegex.exec(head.path)
    return captures === null ? null : { route: this, captures }
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
      const result = route.match(head)
      if (result !== null) return result
    }
    return null
  }
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

/**
 * Every header predicate must hold, on the value Node gives the application for that name (the first
 * field, or all of them joined: headers.ts), so a repeated field cannot route one way and act another.
 */
function matchHeaders (predicates: readonly HeaderMatch[], headers: readonly string[]): boolean {
  for (const p of predicates) {
    const value = headerValueAsNode(headers, p.name)
    if (value === undefined) return false
    if (p.value !== undefined ? value !== p.value : p.regex !== undefined && !p.regex.test(value)) return false
  }
  return true
}
