// Test helpers: plain RealServer objects, a reusable PickContext, pick sequences as strings.
import type { ServerConfig, ServiceConfig } from '../../../src/config/types'
import { getScheduler } from '../../../src/schedulers/registry'
import type { PickContext, RealServer, Scheduler } from '../../../src/schedulers/types'

export interface ServerInit {
  weight?: number
  active?: number
  inactive?: number
  overloaded?: boolean
  up?: boolean
  maxConns?: number
  minConns?: number
}

export function srv (id: string, index: number, init: ServerInit = {}): RealServer {
  const weight = init.weight ?? 1
  return {
    id,
    index,
    host: `10.0.0.${index + 1}`,
    port: 80,
    weight,
    lastWeight: weight,
    up: init.up ?? true,
    overloaded: init.overloaded ?? false,
    maxConns: init.maxConns ?? 0,
    minConns: init.minConns ?? 0,
    conns: { active: init.active ?? 0, inactive: init.inactive ?? 0 },
  }
}

/** Servers A, B, C... with the given weights. */
export function servers (...weights: number[]): RealServer[] {
  return weights.map((w, i) => srv(String.fromCharCode(65 + i), i, { weight: w }))
}

export interface MutableCtx {
  clientAddress: string
  clientPort: number
  hashKey: string | undefined
  avoid: ReadonlySet<string> | undefined
  now: number
}

export function ctx (init: Partial<MutableCtx> = {}): MutableCtx {
  return { clientAddress: '10.9.8.7', clientPort: 40000, hashKey: undefined, avoid: undefined, now: 0, ...init }
}

export function create (name: string, list: readonly RealServer[], raw?: unknown): Scheduler {
  const f = getScheduler(name)
  if (f === undefined) throw new Error(`no scheduler ${name}`)
  return f.create(list, f.parseOptions(raw, 'opts'))
}

/** `n` picks as a string of ids ('-' for null). */
export function seq (s: Scheduler, n: number, c: PickContext = ctx()): string {
  let out = ''
  for (let i = 0; i < n; i++) out += s.pick(c)?.id ?? '-'
  return out
}

export function serverConfig (name: string, init: Partial<ServerConfig> = {}): ServerConfig {
  return { name, address: { host: '127.0.0.1', port: 9000 }, forward: 'pipe', weight: 1, maxConns: 0, minConns: 0, ...init }
}

export function serviceConfig (scheduler: string, list: ServerConfig[], extra: Partial<ServiceConfig> = {}): ServiceConfig {
  const f = getScheduler(scheduler)
  if (f === undefined) throw new Error(`no scheduler ${scheduler}`)
  return { name: 'svc', scheduler, schedulerOptions: f.parseOptions(undefined, 'x'), key: { kind: 'path' }, slowStartS: 0, quiescent: false, keepAlive: 'reroute', servers: list, ...extra }
}
