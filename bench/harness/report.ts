// Medians over rounds, the ratio to direct, and the one results table (Markdown, printed and written).
import type { Options, ScenarioName, TargetName } from './options'
import { scenarioInfo, type Sample } from './scenarios'

export interface Summary {
  readonly scenario: ScenarioName
  readonly target: TargetName
  readonly state: 'ok' | 'failed' | 'skipped'
  readonly reason: string
  /** Rounds that produced a figure. */
  readonly rounds: number
  readonly rate: number
  /** Median over rounds of (this row's rate / direct's rate in the same round). */
  readonly ratio: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly balancerCpu: number | null
  readonly backendCpu: number
  readonly balancerRssMiB: number | null
  readonly backendRssMiB: number
  readonly errors: number
  readonly notes: readonly string[]
  readonly extra: Readonly<Record<string, number>>
}

export function median (xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = Math.floor(v.length / 2)
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

const medianOrNull = (xs: ReadonlyArray<number | null>): number | null =>
  xs.some((x) => x === null) ? null : median(xs as number[])

function summarize (scenario: ScenarioName, target: TargetName, samples: readonly Sample[]): Summary {
  const mine = samples.filter((s) => s.scenario === scenario && s.target === target)
  const ok = mine.filter((s) => s.error === undefined)
  const direct = samples.filter((s) => s.scenario === scenario && s.target === 'direct' && s.error === undefined)
  const ratios = ok.map((s) => s.rate / (direct.find((d) => d.round === s.round)?.rate ?? NaN))
  const extraKeys = [...new Set(ok.flatMap((s) => Object.keys(s.extra)))]
  const notes = new Set<string>()
  for (const s of mine) {
    if (s.error !== undefined) notes.add(`round ${s.round} failed: ${s.error.split('\n')[0] ?? ''}`)
    if (s.errorDetail !== '') notes.add(s.errorDetail)
  }
  const checks = ok.map((s) => s.check).filter((c) => c !== '')
  const mismatch = checks.find((c) => c.startsWith('MISMATCH'))
  if (mismatch !== undefined || checks[0] !== undefined) notes.add(`conns check ${mismatch ?? checks[checks.length - 1] ?? ''}`)
  return {
    scenario,
    target,
    state: ok.length > 0 ? 'ok' : 'failed',
    reason: ok.length > 0 ? '' : (mine[0]?.error ?? 'not run'),
    rounds: ok.length,
    rate: median(ok.map((s) => s.rate)),
    ratio: target === 'direct' ? 1 : median(ratios),
    p50Ms: median(ok.map((s) => s.p50Ms)),
    p99Ms: median(ok.map((s) => s.p99Ms)),
    balancerCpu: medianOrNull(ok.map((s) => s.balancerCpu)),
    backendCpu: median(ok.map((s) => s.backendCpu)),
    balancerRssMiB: medianOrNull(ok.map((s) => s.balancerRssMiB)),
    backendRssMiB: median(ok.map((s) => s.backendRssMiB)),
    errors: ok.reduce((n, s) => n + s.errors, 0),
    notes: [...notes],
    extra: Object.fromEntries(extraKeys.map((k) => [k, median(ok.map((s) => s.extra[k] ?? NaN))]))
  }
}

export interface NotRun { readonly state: 'skipped' | 'failed', readonly reason: string }

/** One summary per scenario and target, in option order; targets that never started carry their reason. */
export function summarizeAll (o: Options, samples: readonly Sample[], notRun: ReadonlyMap<TargetName, NotRun>,
  skippedScenarios: ReadonlyMap<ScenarioName, string>): Summary[] {
  const out: Summary[] = []
  for (const scenario of o.scenarios) {
    const skip = skippedScenarios.get(scenario)
    for (const target of o.targets) {
      const nr: NotRun | undefined = skip !== undefined ? { state: 'skipped', reason: skip } : notRun.get(target)
      if (nr !== undefined) {
        out.push({ ...summarize(scenario, target, []), state: nr.state, reason: nr.reason })
      } else {
        out.push(summarize(scenario, target, samples))
      }
    }
  }
  return out
}

function fmt (x: number | null, digits: number): string {
  if (x === null || !Number.isFinite(x)) return '–'
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function idleNote (s: Summary): string {
  const e = s.extra
  const held = `held ${fmt(e.held ?? NaN, 0)}/${fmt(e.wanted ?? NaN, 0)}`
  return `${held}; KiB per conn: balancer ${fmt(e.balancerKiBPerConn ?? NaN, 1)}, back end ${fmt(e.backendKiBPerConn ?? NaN, 1)}`
}

/** The results table as Markdown: one row per scenario and target. */
export function table (o: Options, rows: readonly Summary[]): string {
  const head = ['scenario', 'target', 'rate', '× direct', 'p50 ms', 'p99 ms', 'balancer CPU', 'back-end CPU',
    'balancer RSS MiB', 'back-end RSS MiB', 'notes']
  const lines = [head, head.map((h, i) => (i >= 2 && i <= 9 ? '---:' : '---'))]
  let last: ScenarioName | undefined
  for (const s of rows) {
    const info = scenarioInfo(s.scenario, o)
    const scen = s.scenario === last ? '' : `${s.scenario} (${info.rateUnit}, CPU ${info.cpuUnit})`
    last = s.scenario
    if (s.state !== 'ok') {
      lines.push([scen, s.target, s.state, '', '', '', '', '', '', '', (s.reason.split('\n')[0] ?? '').replace(/\|/g, '/')])
      continue
    }
    const notes = [...(s.scenario === 'idle' ? [idleNote(s)] : []), ...s.notes].join('; ').replace(/\|/g, '/')
    lines.push([scen, s.target, fmt(s.rate, s.scenario === 'stream' ? 0 : 0), fmt(s.ratio, 2),
      fmt(s.p50Ms, 2), fmt(s.p99Ms, 2), fmt(s.balancerCpu, s.scenario === 'stream' ? 0 : 1), fmt(s.backendCpu, s.scenario === 'stream' ? 0 : 1),
      fmt(s.balancerRssMiB, 1), fmt(s.backendRssMiB, 1), notes])
  }
  return lines.map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}
