// One row = one scenario against one target in one round. Each row reads CPU (utime+stime) of the
// balancer's process tree and of the back end before and after the load, polls their RSS while it runs,
// and for the connection-per-request scenario checks that one connection was accepted per request.
import type { Backend } from './backend-proc'
import type { BackendStats } from '../backend'
import { openIdle } from './idle'
import { runAutocannon, runWrk, type LoadResult, type Progress } from './load'
import type { Options, ScenarioName, TargetName } from './options'
import { passiveOpens, processTree, rssBytes, treeCpuSeconds } from './procfs'
import { sleep } from './process'
import type { RunningTarget } from './targets'

export interface ScenarioInfo {
  readonly title: string
  readonly rateUnit: string
  readonly cpuUnit: string
  readonly client: string
}

export function scenarioInfo (name: ScenarioName, o: Options): ScenarioInfo {
  const ka = o.client === 'wrk' ? 'wrk -t1' : 'autocannon'
  const mib = Math.round(o.streamBytes / 1048576)
  switch (name) {
    case 'ka-small': return { title: 'keep-alive, 100 B responses', rateUnit: 'req/s', cpuUnit: 'µs/req', client: `${ka} -c ${o.connections}` }
    case 'close': return { title: 'new connection per request', rateUnit: 'req/s', cpuUnit: 'µs/req', client: `wrk -t1 -c ${o.connections} -H 'Connection: close'` }
    case 'ka-64k': return { title: 'keep-alive, 64 KiB responses', rateUnit: 'req/s', cpuUnit: 'µs/req', client: `${ka} -c ${o.connections}` }
    case 'stream': return { title: `${mib} MiB responses on one connection`, rateUnit: 'MiB/s', cpuUnit: 'ms/GiB', client: 'wrk -t1 -c1' }
    case 'idle': return { title: `${o.idleConns.toLocaleString('en-US')} idle keep-alive connections`, rateUnit: 'conn/s', cpuUnit: 'µs/conn', client: 'bench/harness/idle.ts, 256 connects at a time' }
  }
}

export interface Sample {
  readonly scenario: ScenarioName
  readonly target: TargetName
  readonly round: number
  /** Set when the row failed; the figures are then NaN. */
  readonly error?: string
  /** req/s; MiB/s for stream; connections set up per second for idle. */
  readonly rate: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Balancer CPU per unit (scenarioInfo().cpuUnit); null for direct. */
  readonly balancerCpu: number | null
  /** Back-end CPU per unit. */
  readonly backendCpu: number
  /** Peak RSS of the balancer's process tree during the row; null for direct. */
  readonly balancerRssMiB: number | null
  readonly backendRssMiB: number
  readonly errors: number
  readonly errorDetail: string
  /** The connection-count check of the close scenario ('' elsewhere). */
  readonly check: string
  readonly extra: Readonly<Record<string, number>>
}

export interface RowContext {
  readonly scenario: ScenarioName
  readonly round: number
  readonly target: RunningTarget
  readonly backend: Backend
  readonly options: Options
  readonly netns: boolean
  /** Open-file limit of the processes (the harness and its children share it). */
  readonly fdLimit: number
  readonly progress: Progress
}

interface Snapshot { readonly balCpu: number, readonly backCpu: number, readonly stats: BackendStats, readonly passive: number }

async function snapshot (ctx: RowContext): Promise<Snapshot> {
  return {
    balCpu: treeCpuSeconds(ctx.target.pids),
    backCpu: treeCpuSeconds([ctx.backend.pid]),
    stats: await ctx.backend.stats(),
    passive: passiveOpens()
  }
}

/** Polls the peak RSS (bytes) of the balancer tree and the back end until stop() is called. */
function rssWatch (ctx: RowContext): { stop: () => { bal: number, back: number }, now: () => { bal: number, back: number } } {
  const pids = ctx.target.pids.flatMap((p) => processTree(p))
  const now = (): { bal: number, back: number } => ({ bal: pids.reduce((s, p) => s + rssBytes(p), 0), back: rssBytes(ctx.backend.pid) })
  let peak = now()
  const timer = setInterval(() => { const n = now(); peak = { bal: Math.max(peak.bal, n.bal), back: Math.max(peak.back, n.back) } }, 250)
  return { now, stop: () => { clearInterval(timer); const n = now(); return { bal: Math.max(peak.bal, n.bal), back: Math.max(peak.back, n.back) } } }
}

const MIB = 1024 * 1024
export const STREAM_TIMEOUT_S = 120

type RssWatch = ReturnType<typeof rssWatch>

/** Runs ka-small, ka-64k, close and stream rows. */
async function loadRow (ctx: RowContext, watch: RssWatch): Promise<Sample> {
  const o = ctx.options
  const spec = { port: ctx.target.port, connections: o.connections, durationS: o.durationS }
  const isDirect = ctx.target.pids.length === 0
  const before = await snapshot(ctx)
  let res: LoadResult
  let units: number
  let rate: number
  if (ctx.scenario === 'stream') {
    // One connection, one request after another; bytes read over the whole window, partial response included.
    res = await runWrk({ ...spec, connections: 1, path: `/stream?bytes=${o.streamBytes}`, timeoutS: STREAM_TIMEOUT_S }, false, ctx.progress)
    rate = res.bytes / MIB / res.durationS
    units = res.bytes / (1024 * MIB)
  } else {
    const path = ctx.scenario === 'ka-64k' ? '/64k' : '/small'
    const close = ctx.scenario === 'close'
    res = close || o.client === 'wrk'
      ? await runWrk({ ...spec, path }, close, ctx.progress)
      : await runAutocannon({ ...spec, path }, ctx.progress)
    rate = res.requests / res.durationS
    units = res.requests
  }
  const after = await snapshot(ctx)
  const rss = watch.stop()
  const scale = ctx.scenario === 'stream' ? 1e3 : 1e6
  return {
    scenario: ctx.scenario,
    target: ctx.target.name,
    round: ctx.round,
    rate,
    p50Ms: res.p50Ms,
    p99Ms: res.p99Ms,
    balancerCpu: isDirect ? null : (after.balCpu - before.balCpu) * scale / units,
    backendCpu: (after.backCpu - before.backCpu) * scale / units,
    balancerRssMiB: isDirect ? null : rss.bal / MIB,
    backendRssMiB: rss.back / MIB,
    errors: res.errors,
    errorDetail: res.errorDetail,
    check: ctx.scenario === 'close' ? connectionCheck(ctx, before, after, res) : '',
    extra: {
      backendConnsPerRequest: (after.stats.accepted - before.stats.accepted) / Math.max(1, res.requests)
    }
  }
}

/**
 * wrk's requests against the connections the target accepted from the client. In a private network
 * namespace PassiveOpens counts every accept exactly; the back end's own TCP accepts are subtracted.
 * Outside one, only rows where every client connection reaches the back end can be checked.
 */
function connectionCheck (ctx: RowContext, b: Snapshot, a: Snapshot, res: LoadResult): string {
  const name = ctx.target.name
  const backTcp = a.stats.tcpAccepted - b.stats.tcpAccepted
  let front: number
  if (ctx.netns) front = (a.passive - b.passive) - (name === 'direct' ? 0 : backTcp)
  else if (name === 'direct' || name.startsWith('baton-')) front = a.stats.accepted - b.stats.accepted
  else return 'not checked (needs the private network namespace)'
  // In flight at the end: one per connection, plus the connection wrk opens once to test the address.
  const slack = ctx.options.connections + 1 + res.errors
  const ok = front >= res.requests && front <= res.requests + slack
  return `${ok ? 'ok' : 'MISMATCH'}: ${front} connections accepted for ${res.requests} requests`
}

/** The idle scenario: memory of the balancer while it holds N idle connections, and its setup cost. */
async function idleRow (ctx: RowContext, watch: RssWatch): Promise<Sample> {
  const name = ctx.target.name
  const isDirect = ctx.target.pids.length === 0
  // Each process may hold fdLimit descriptors; a relay (one server connection per client connection)
  // holds two sockets per client connection. HAProxy http mode and nginx share pooled server connections.
  const relay = name.startsWith('baton-splice') || name.startsWith('baton-pipe') || name === 'haproxy-tcp'
  const cap = Math.floor((ctx.fdLimit - 500) / (relay ? 2 : 1))
  const count = Math.min(ctx.options.idleConns, cap)
  const base = watch.now()
  const before = await snapshot(ctx)
  const conns = await openIdle(ctx.target.port, count, ctx.progress)
  const opened = await snapshot(ctx)
  await sleep(1000)
  const heldRss = watch.now()
  const held = await snapshot(ctx)
  const peak = watch.stop()
  const dropped = conns.dropped()
  await conns.close()
  const n = Math.max(1, conns.held)
  const detail = [conns.errorDetail, count < ctx.options.idleConns ? `capped at ${count} by the fd limit` : '',
    dropped > 0 ? `${dropped} dropped while idle` : ''].filter((s) => s !== '').join('; ')
  return {
    scenario: 'idle',
    target: name,
    round: ctx.round,
    rate: conns.held / conns.openS,
    p50Ms: conns.setupP50Ms,
    p99Ms: conns.setupP99Ms,
    balancerCpu: isDirect ? null : (opened.balCpu - before.balCpu) * 1e6 / n,
    backendCpu: (opened.backCpu - before.backCpu) * 1e6 / n,
    balancerRssMiB: isDirect ? null : peak.bal / MIB,
    backendRssMiB: peak.back / MIB,
    errors: conns.failed + dropped,
    errorDetail: detail,
    check: '',
    extra: {
      wanted: count,
      held: conns.held,
      balancerKiBPerConn: isDirect ? NaN : (heldRss.bal - base.bal) / 1024 / n,
      backendKiBPerConn: (heldRss.back - base.back) / 1024 / n,
      balancerIdleCpuMs: (held.balCpu - opened.balCpu) * 1e3,
      backendConnsHeld: held.stats.active
    }
  }
}

export async function runRow (ctx: RowContext): Promise<Sample> {
  const watch = rssWatch(ctx)
  try {
    return ctx.scenario === 'idle' ? await idleRow(ctx, watch) : await loadRow(ctx, watch)
  } finally {
    watch.stop()
  }
}

export function failedSample (scenario: ScenarioName, target: TargetName, round: number, error: string): Sample {
  return {
    scenario, target, round, error, rate: NaN, p50Ms: NaN, p99Ms: NaN, balancerCpu: null, backendCpu: NaN,
    balancerRssMiB: null, backendRssMiB: NaN, errors: 0, errorDetail: '', check: '', extra: {}
  }
}
