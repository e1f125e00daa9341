// `npm run bench`: the side-by-side benchmark (issue 5). Starts one back end, then every target (direct,
// Baton handoff/splice/pipe, HAProxy http/tcp, nginx), and runs every scenario against every target in
// interleaved rounds; prints one table of medians and writes bench/results/*.json, the SVG chart and
// bench/RESULTS.md. `--micro` runs bench/micro/ instead. `--help` lists the options.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { startBackend, type Backend } from './harness/backend-proc'
import { REPO_ROOT } from './harness/baton'
import { inNetns, isInner, reexec, versions } from './harness/env'
import { runAutocannon } from './harness/load'
import { runMicro } from './harness/micro'
import { parseOptions, USAGE, type Options, type ScenarioName, type TargetName } from './harness/options'
import { writeResults } from './harness/output'
import { INSTALL_HINT } from './harness/peers'
import { openFilesLimit } from './harness/procfs'
import { sleep, which } from './harness/process'
import { ProgressLine } from './harness/progress'
import { summarizeAll, table, type NotRun } from './harness/report'
import { failedSample, runRow, scenarioInfo, type Sample } from './harness/scenarios'
import { startTarget, type RunningTarget } from './harness/targets'

const running: RunningTarget[] = []
let backend: Backend | undefined

async function stopAll (): Promise<void> {
  await Promise.all(running.splice(0).map(async (t) => await t.stop()))
  await backend?.stop()
}

/** Waits until the back end's open-connection count stops moving (at most 3 s). */
async function settle (b: Backend): Promise<void> {
  let last = -1
  for (let i = 0; i < 30; i++) {
    const active = (await b.stats()).active
    if (active === last) break
    last = active
    await sleep(100)
  }
}

function rowLine (s: Sample, o: Options): string {
  if (s.error !== undefined) return `FAILED: ${s.error.split('\n').slice(0, 6).join('\n    ')}`
  const info = scenarioInfo(s.scenario, o)
  const f = (x: number | null, d = 1): string => (x === null || !Number.isFinite(x) ? '–' : x.toFixed(d))
  const parts = [`${Math.round(s.rate).toLocaleString('en-US')} ${info.rateUnit}`, `p50 ${f(s.p50Ms, 2)} ms`, `p99 ${f(s.p99Ms, 2)} ms`,
    `balancer ${f(s.balancerCpu)} ${info.cpuUnit}`, `back end ${f(s.backendCpu)} ${info.cpuUnit}`, `RSS ${f(s.balancerRssMiB)} MiB`]
  if (s.scenario === 'idle') parts.push(`held ${s.extra.held ?? 0}, ${f(s.extra.balancerKiBPerConn ?? NaN)} KiB/conn`)
  if (s.check !== '') parts.push(s.check)
  if (s.errorDetail !== '') parts.push(s.errorDetail)
  return parts.join('  ')
}

function progressText (s: string, o: Options, elapsedS: number, n: number): string {
  if (s === 'idle') return `${n} connections open`
  if (s === 'stream') return `${elapsedS.toFixed(0)}/${o.durationS} s  ${n} responses`
  const rate = Number.isFinite(n) && elapsedS > 0 ? `  ${Math.round(n / elapsedS).toLocaleString('en-US')} req/s` : ''
  return `${elapsedS.toFixed(0)}/${o.durationS} s${rate}`
}

async function startTargets (o: Options, dir: string, b: Backend, fdLimit: number): Promise<Map<TargetName, NotRun>> {
  const notRun = new Map<TargetName, NotRun>()
  const maxConns = Math.min(o.idleConns + o.connections + 100, fdLimit - 200)
  for (const name of o.targets) {
    const r = await startTarget(name, { dir, backend: b, maxConns, connections: o.connections, fdLimit })
    if (r.state === 'ok') {
      running.push(r.target)
      console.log(`  ${name.padEnd(14)} ready on 127.0.0.1:${r.target.port}`)
    } else {
      notRun.set(name, r)
      console.log(`  ${name.padEnd(14)} ${r.state === 'skipped' ? 'skipped' : 'FAILED'}: ${r.reason.split('\n').join('\n      ')}`)
    }
  }
  return notRun
}

async function warmUp (o: Options): Promise<void> {
  for (const t of running) {
    await runAutocannon({ port: t.port, path: '/small', connections: o.connections, durationS: o.quick ? 0.5 : 2 }, () => {})
      .catch((err: Error) => console.log(`  warm-up of ${t.name} failed: ${err.message}`))
  }
}

/** Scenarios whose client is missing: close and stream need wrk (keep-alive too with --client=wrk). */
function scenarioSkips (o: Options): Map<ScenarioName, string> {
  const skips = new Map<ScenarioName, string>()
  if (which('wrk') !== undefined) return skips
  for (const s of o.scenarios) {
    if (s === 'close' || s === 'stream' || (o.client === 'wrk' && s !== 'idle')) skips.set(s, `wrk is not installed (${INSTALL_HINT})`)
  }
  return skips
}

async function rounds (o: Options, b: Backend, fdLimit: number, skips: ReadonlyMap<ScenarioName, string>): Promise<Sample[]> {
  const samples: Sample[] = []
  const progress = new ProgressLine()
  const netns = inNetns()
  for (let round = 1; round <= o.rounds; round++) {
    for (const scenario of o.scenarios.filter((s) => !skips.has(s))) {
      const shift = (round - 1) % Math.max(1, running.length)
      const order = [...running.slice(shift), ...running.slice(0, shift)]
      for (const target of order) {
        progress.start(`[${round}/${o.rounds}] ${scenario.padEnd(8)} ${target.name.padEnd(13)}`)
        let sample: Sample
        const dead = target.died()
        if (dead !== undefined) {
          sample = failedSample(scenario, target.name, round, dead)
        } else {
          try {
            sample = await runRow({
              scenario, round, target, backend: b, options: o, netns, fdLimit,
              progress: (e, n) => progress.update(progressText(scenario, o, e, n))
            })
            const after = target.died()
            if (after !== undefined) sample = failedSample(scenario, target.name, round, after)
          } catch (err) {
            sample = failedSample(scenario, target.name, round, (err as Error).message)
          }
        }
        samples.push(sample)
        progress.done(rowLine(sample, o))
        await settle(b)
      }
    }
  }
  return samples
}

function readConfigs (dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const f of fs.readdirSync(dir).sort()) {
    if (/\.(cfg|conf|yaml)$/.test(f)) out[f] = fs.readFileSync(path.join(dir, f), 'utf8').split(dir).join('<run dir>')
  }
  return out
}

async function bench (o: Options): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-bench-'))
  const fdLimit = openFilesLimit()
  const v = versions(REPO_ROOT)
  const started = new Date()
  console.log(`Baton benchmark: ${o.quick ? 'quick, ' : ''}${o.rounds} round(s), ${o.durationS} s per row, ${o.connections} connections; ` +
    `${inNetns() ? 'private network namespace' : 'host loopback'}; open-file limit ${fdLimit}`)
  console.log(`  ${Object.entries(v).map(([k, val]) => `${k} ${val}`).join('\n  ')}`)
  if (v.haproxy === 'not installed' || v.nginx === 'not installed' || v.wrk === 'not installed') {
    console.log(`  (missing peers or wrk: ${INSTALL_HINT})`)
  }
  backend = await startBackend(dir)
  console.log(`  back end      pid ${backend.pid} on 127.0.0.1:${backend.port}; handoff: ${backend.handoffState}`)
  const notRun = await startTargets(o, dir, backend, fdLimit)
  const skips = scenarioSkips(o)
  for (const [s, why] of skips) console.log(`  scenario ${s} skipped: ${why}`)
  await warmUp(o)
  const samples = await rounds(o, backend, fdLimit, skips)
  const configs = readConfigs(dir)
  await stopAll()
  fs.rmSync(dir, { recursive: true, force: true })
  const summary = summarizeAll(o, samples, notRun, skips)
  console.log(`\n${table(o, summary)}\n`)
  const command = `npm run bench${o.argv.length > 0 ? ` -- ${o.argv.join(' ')}` : ''}`
  const written = writeResults(REPO_ROOT, {
    date: started.toISOString(), command, options: o, netns: inNetns(), fdLimit, versions: v, configs, samples, summary
  })
  console.log(`wrote ${[written.json, written.svg, written.md].filter((f) => f !== undefined).map((f) => path.relative(REPO_ROOT, f ?? '')).join(', ')}` +
    ` in ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s`)
  const failed = summary.filter((s) => s.state === 'failed')
  if (failed.length > 0) console.log(`${failed.length} row(s) failed: ${[...new Set(failed.map((s) => s.target))].join(', ')}`)
  return failed.length > 0 ? 1 : 0
}

async function main (): Promise<number> {
  let o: Options
  try {
    o = parseOptions(process.argv.slice(2))
  } catch (err) {
    console.error((err as Error).message)
    return 2
  }
  if (o.help) { console.log(USAGE); return 0 }
  if (o.micro) return (await runMicro()) > 0 ? 1 : 0
  if (!isInner()) return await reexec(__filename, o.argv, o.netns)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => { void stopAll().finally(() => process.exit(130)) })
  }
  return await bench(o)
}

// Exit explicitly: a handle left open by a failed row (a load client, a socket) must not hang CI.
main().then((code) => process.exit(code), async (err: unknown) => {
  console.error(err)
  await stopAll()
  process.exit(1)
})
