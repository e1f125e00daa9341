// GET /metrics: a prom-client Registry, one per admin server. Every value is read at scrape time from state
// the switch keeps anyway (collect() callbacks), so the data path pays nothing for it. Labels are bounded:
// service, server, outcome, state, status, result; never paths or client addresses.
import { Counter, Gauge, Registry, type LabelValues } from 'prom-client'
import type { DispatchTimes, RelayBytes } from '../dispatcher/conn-log'
import type { AdminSource } from './server'

type Row<L extends string> = [Partial<Record<L, string>>, number]

/** A gauge whose rows are recomputed from `rows()` at each scrape. */
function gauge<L extends string> (reg: Registry, name: string, help: string, labelNames: readonly L[], rows: () => Iterable<Row<L>>): void {
  new Gauge<L>({ name, help, labelNames, registers: [reg], collect () {
    this.reset()
    for (const [labels, v] of rows()) this.set(labels as LabelValues<L>, v)
  } })
}

/** A counter copied from a running total the switch keeps (counts only grow, so reset + inc is exact). */
function counter<L extends string> (reg: Registry, name: string, help: string, labelNames: readonly L[], rows: () => Iterable<Row<L>>): void {
  new Counter<L>({ name, help, labelNames, registers: [reg], collect () {
    this.reset()
    for (const [labels, v] of rows()) this.inc(labels as LabelValues<L>, v)
  } })
}

/** The fixed buckets of DispatchTimes, exposed as a Prometheus histogram (cumulative, seconds); one per label set. */
function histogram (reg: Registry, name: string, help: string,
  times: () => Iterable<[Record<string, string>, DispatchTimes]> | undefined): void {
  reg.registerMetric({
    name, help, type: 'histogram' as never,
    get: async () => {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = []
      for (const [labels, t] of times() ?? []) {
        let cum = 0
        t.bounds.forEach((le, i) => { cum += t.counts[i]!; values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cum }) })
        cum += t.counts[t.bounds.length]!
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cum },
          { metricName: `${name}_sum`, labels, value: t.sum }, { metricName: `${name}_count`, labels, value: cum })
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' }
    },
    reset: () => {},
  } as never)
}

export function createMetrics (src: AdminSource): Registry {
  const reg = new Registry()
  const per = <T extends { service: string; id: string }>(v: (s: T) => number) =>
    (s: T): Row<'service' | 'server'> => [{ service: s.service, server: s.id }, v(s)]
  const sl = ['service', 'server'] as const
  gauge(reg, 'baton_server_up', '1 when the real server takes new connections', sl, () => src.servers().map(per((s) => s.up ? 1 : 0)))
  gauge(reg, 'baton_server_weight', 'the real server\'s weight (0 = quiesced)', sl, () => src.servers().map(per((s) => s.weight)))
  gauge(reg, 'baton_server_overloaded', '1 while the server is over its connection threshold', sl, () => src.servers().map(per((s) => s.overloaded ? 1 : 0)))
  gauge(reg, 'baton_server_active_connections', 'connections with a request in flight (LVS ActiveConn)', sl, () => src.servers().map(per((s) => s.active)))
  gauge(reg, 'baton_server_inactive_connections', 'idle kept-alive connections (LVS InActConn)', sl, () => src.servers().map(per((s) => s.inactive)))
  gauge(reg, 'baton_server_state', '1 for the state the real server is in (up, down, drain, maint)', ['service', 'server', 'state'],
    () => src.servers().flatMap((s) => (['up', 'down', 'drain', 'maint'] as const)
      .map((st): Row<'service' | 'server' | 'state'> => [{ service: s.service, server: s.id, state: st }, s.state === st ? 1 : 0])))
  counter(reg, 'baton_connections_total', 'connections the dispatcher finished with, by outcome', ['outcome'],
    () => [...src.outcomes()].map(([outcome, n]): Row<'outcome'> => [{ outcome }, n]))
  counter(reg, 'baton_rejections_total', 'connections the dispatcher answered itself, by status (400, 404, 408, 431, 502, 503, 505)', ['status'],
    () => [...src.outcomes()].filter(([o]) => o.startsWith('status-')).map(([o, n]): Row<'status'> => [{ status: o.slice(7) }, n]))
  counter(reg, 'baton_server_state_changes_total', 'health state changes, by the state entered', ['service', 'server', 'state'],
    () => [...src.stateChanges()].map(([key, n]): Row<'service' | 'server' | 'state'> => {
      const [service, server, state] = key.split('\0') as [string, string, string]
      return [{ service, server, state }, n]
    }))
  gauge(reg, 'baton_pending_connections', 'connections the dispatcher owns: heads arriving, answers draining', ['state'],
    () => { const p = src.pending(); return [[{ state: 'head' }, p.head], [{ state: 'drain' }, p.drain]] })
  counter(reg, 'baton_pending_shed_total', 'connections closed unanswered because limits.maxPendingConns was reached', [],
    () => [[{}, src.pending().shed]])
  counter(reg, 'baton_config_reloads_total', 'config reloads (SIGHUP, admin, watch), by result', ['result'],
    () => [...src.reloads?.() ?? []].map(([result, n]): Row<'result'> => [{ result }, n]))
  const bytes = (dir: 0 | 1) => () => [...src.relayBytes?.() ?? []].map(([key, b]: [string, RelayBytes]) => {
    const [service, server] = key.split('\0') as [string, string]
    return [{ service, server }, dir === 0 ? b.up : b.down] as Row<'service' | 'server'>
  })
  counter(reg, 'baton_relay_bytes_up_total', 'bytes relayed client to server (splice, pipe), counted when the connection closes', sl, bytes(0))
  counter(reg, 'baton_relay_bytes_down_total', 'bytes relayed server to client (splice, pipe), counted when the connection closes', sl, bytes(1))
  counter(reg, 'baton_connection_moves_total',
    'kept-alive connections that moved at a request boundary, by the service they left and why (outcome reroute: the request routed elsewhere; rebalance: load shedding)',
    ['service', 'outcome'], () => {
      const rows = new Map<string, number>()
      for (const [key, n] of src.moves?.() ?? []) {
        const [reason, from] = key.split('\0') as [string, string]
        const k = `${from}\0${reason}`
        rows.set(k, (rows.get(k) ?? 0) + n)
      }
      return [...rows].map(([k, n]): Row<'service' | 'outcome'> => {
        const [service, outcome] = k.split('\0') as [string, string]
        return [{ service, outcome }, n]
      })
    })
  histogram(reg, 'baton_dispatch_seconds', 'dispatcher time from accept to handoff, relay start or its own answer',
    () => { const t = src.dispatchTimes?.(); return t === undefined ? undefined : [[{}, t]] })
  histogram(reg, 'baton_backend_request_seconds', 'request time measured by handed-off back ends, from request to response close',
    () => [...src.backendTimes?.() ?? []].map(([key, t]): [Record<string, string>, DispatchTimes] => {
      const [service, server] = key.split('\0') as [string, string]
      return [{ service, server }, t]
    }))
  histogram(reg, 'baton_migrate_seconds',
    'migrations to agent servers (forward: migrate), by phase: dispatcher = the dispatcher\'s part (MIGRATE head, freeze or steer, dump, close, MIGRATE sent), ready = the same start to the agent\'s READY',
    () => [...src.migrateTimes?.() ?? []].map(([key, t]): [Record<string, string>, DispatchTimes] => {
      const [service, server, phase] = key.split('\0') as [string, string, string]
      return [{ service, server, phase }, t]
    }))
  return reg
}
