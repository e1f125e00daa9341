// The routes as the dispatcher sends them to back ends (ROUTES, protocol/handoff.ts): a back end checks each
// later request on a kept-alive connection against the same rules, compiled by the same Router, so it
// keeps exactly the requests the dispatcher would have sent it. JSON, because it changes only on reload;
// patterns travel as their source and are compiled again (RE2, linear time) on the back end.
import { compilePattern, type Pattern } from '../config/pattern'
import type { HeaderMatch, RouteConfig, RouteMatch } from '../config/types'

export const ROUTE_TABLE_VERSION = 1

/** What a back end learns: the routes in order, and how often a connection may move to shed load. */
export interface RouteTable {
  readonly routes: readonly RouteConfig[]
  /** limits.moveIntervalMs */
  readonly moveIntervalMs: number
  /** limits.maxHeaderBytes: a later head larger than this is the dispatcher's to answer (431). */
  readonly maxHeaderBytes: number
}

interface WireHeader { n: string, v?: string, r?: string }
interface WireRoute {
  name: string
  service: string
  path?: string
  pathExact?: string
  pathRegex?: string
  host?: readonly string[]
  method?: readonly string[]
  header?: WireHeader[]
}

export function encodeRouteTable (table: RouteTable): string {
  const routes: WireRoute[] = table.routes.map((r) => {
    const m = r.match
    const w: WireRoute = { name: r.name, service: r.service }
    if (m.path !== undefined) w.path = m.path
    if (m.pathExact !== undefined) w.pathExact = m.pathExact
    if (m.pathRegex !== undefined) w.pathRegex = m.pathRegex.source
    if (m.host !== undefined) w.host = m.host
    if (m.method !== undefined) w.method = m.method
    if (m.header !== undefined) {
      w.header = m.header.map((h) => {
        const wh: WireHeader = { n: h.name }
        if (h.value !== undefined) wh.v = h.value
        if (h.regex !== undefined) wh.r = h.regex.source
        return wh
      })
    }
    return w
  })
  return JSON.stringify({ v: ROUTE_TABLE_VERSION, moveIntervalMs: table.moveIntervalMs, maxHeaderBytes: table.maxHeaderBytes, routes })
}

/** The table in `json`, or a reason it cannot be used (the back end then checks nothing and says so). */
export function decodeRouteTable (json: string): RouteTable | string {
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch (err) {
    return `not JSON: ${(err as Error).message}`
  }
  if (!isRecord(doc) || doc.v !== ROUTE_TABLE_VERSION) return `unknown route table version ${String(isRecord(doc) ? doc.v : doc)}`
  if (!Array.isArray(doc.routes) || typeof doc.moveIntervalMs !== 'number' || !(doc.moveIntervalMs >= 0) ||
    typeof doc.maxHeaderBytes !== 'number' || !(doc.maxHeaderBytes > 0)) return 'malformed route table'
  const routes: RouteConfig[] = []
  for (const w of doc.routes as unknown[]) {
    const r = decodeRoute(w)
    if (typeof r === 'string') return r
    routes.push(r)
  }
  return { routes, moveIntervalMs: doc.moveIntervalMs, maxHeaderBytes: doc.maxHeaderBytes }
}

function decodeRoute (w: unknown): RouteConfig | string {
  if (!isRecord(w) || typeof w.name !== 'string' || typeof w.service !== 'string') return 'malformed route'
  const match: { -readonly [K in keyof RouteMatch]: RouteMatch[K] } = {}
  if (w.path !== undefined) { if (typeof w.path !== 'string') return `route ${w.name}: bad path`; match.path = w.path }
  if (w.pathExact !== undefined) { if (typeof w.pathExact !== 'string') return `route ${w.name}: bad pathExact`; match.pathExact = w.pathExact }
  if (w.pathRegex !== undefined) {
    const p = pattern(w.pathRegex)
    if (typeof p === 'string') return `route ${w.name}: ${p}`
    match.pathRegex = p
  }
  if (w.host !== undefined) { if (!isStrings(w.host)) return `route ${w.name}: bad host`; match.host = w.host }
  if (w.method !== undefined) { if (!isStrings(w.method)) return `route ${w.name}: bad method`; match.method = w.method }
  if (w.header !== undefined) {
    if (!Array.isArray(w.header)) return `route ${w.name}: bad header`
    const header: HeaderMatch[] = []
    for (const h of w.header as unknown[]) {
      if (!isRecord(h) || typeof h.n !== 'string' || (h.v !== undefined && typeof h.v !== 'string')) return `route ${w.name}: bad header`
      if (h.r !== undefined) {
        const p = pattern(h.r)
        if (typeof p === 'string') return `route ${w.name}: ${p}`
        header.push({ name: h.n, regex: p })
      } else header.push(h.v === undefined ? { name: h.n } : { name: h.n, value: h.v as string })
    }
    match.header = header
  }
  return { name: w.name, service: w.service, match }
}

function pattern (source: unknown): Pattern | string {
  return typeof source === 'string' ? compilePattern(source) : 'bad pattern'
}

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isStrings (v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string')
}
