// `npm run bench:health`: what active health checks cost the dispatcher. The claim to hold: 1,000 servers
// checked every second take under 5% of one core. The check targets (a few HTTP servers answering
// /healthz) run in a child process, so their CPU is not billed to the dispatcher; the dispatcher is an
// in-process Baton (src/baton.ts) with N relayed servers across S services, each pointing at one target.
// Two windows of the same Baton config: without `health:` (the baseline: the cluster tick, idle timers),
// then with it; CPU is process.cpuUsage() over each window (user + system, every thread of this process)
// as a percentage of one core. The child counts the checks it answered, so the rate is checked too.
//   npm run bench:health -- [--servers=1000] [--services=10] [--interval-ms=1000] [--duration=20]
//                           [--baseline=10] [--tcp] [--write]
// --write replaces the "Health checks" section of bench/RESULTS.md with this run's line.
import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { startBaton } from '../src/baton'
import { parseConfig } from '../src/config/load'
import { replaceSection, sectionNotes, sectionOf } from './harness/output'

const REPO_ROOT = path.resolve(__dirname, '../..')
const SECTION = '## Health checks'

interface Options { servers: number; services: number; intervalMs: number; durationS: number; baselineS: number; tcp: boolean; write: boolean }

interface Window { cpuPct: number; sysPct: number; loopP99Ms: number; checksPerS: number; connsPerS: number; targetCpuPct: number }

function options (): Options {
  const { values } = parseArgs({
    options: {
      servers: { type: 'string', default: '1000' }, services: { type: 'string', default: '10' },
      'interval-ms': { type: 'string', default: '1000' }, duration: { type: 'string', default: '20' },
      baseline: { type: 'string', default: '10' }, tcp: { type: 'boolean', default: false },
      write: { type: 'boolean', default: false },
    },
  })
  const n = (v: string | undefined, name: string): number => {
    const x = Number(v)
    if (!Number.isInteger(x) || x <= 0) throw new Error(`--${name} must be a positive integer, got ${String(v)}`)
    return x
  }
  return {
    servers: n(values.servers, 'servers'), services: n(values.services, 'services'), intervalMs: n(values['interval-ms'], 'interval-ms'),
    durationS: n(values.duration, 'duration'), baselineS: n(values.baseline, 'baseline'), tcp: values.tcp, write: values.write,
  }
}

/** Child mode: `count` HTTP servers on 127.0.0.1; answers { cpu } with its CPU time and the checks answered. */
async function runTargets (count: number): Promise<void> {
  let checks = 0
  let connections = 0
  const ports: number[] = []
  for (let i = 0; i < count; i++) {
    const server = http.createServer((req, res) => {
      checks++
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 })
      res.end('ok\n')
    })
    server.on('connection', () => { connections++ })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    ports.push((server.address() as { port: number }).port)
  }
  process.on('message', () => {
    const u = process.cpuUsage()
    process.send!({ cpuUs: u.user + u.system, checks, connections })
  })
  process.on('disconnect', () => process.exit(0))
  process.send!({ ports })
}

interface Targets { readonly child: ChildProcess; readonly ports: number[]; sample (): Promise<{ cpuUs: number; checks: number; connections: number }> }

async function startTargets (count: number): Promise<Targets> {
  const child = fork(__filename, [`--child-targets=${count}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.once('message', (m: { ports: number[] }) => { resolve(m.ports) })
    child.once('exit', (code) => { reject(new Error(`check targets exited ${code}`)) })
  })
  return {
    child, ports,
    sample: () => new Promise((resolve) => {
      child.once('message', resolve as (m: unknown) => void)
      child.send({ cpu: true })
    }),
  }
}

function configYaml (o: Options, ports: readonly number[], withHealth: boolean): string {
  const per = Math.ceil(o.servers / o.services)
  const check = o.tcp ? 'tcp: true' : 'http: { path: /healthz }'
  const lines = ['listen: 127.0.0.1:0', 'log: { level: warn }', 'services:']
  for (let s = 0, made = 0; s < o.services && made < o.servers; s++) {
    const port = ports[s % ports.length]!
    lines.push(`  - name: svc${s}`, '    scheduler: rr')
    if (withHealth) lines.push(`    health: { ${check}, intervalMs: ${o.intervalMs} }`)
    lines.push('    servers:')
    for (let i = 0; i < per && made < o.servers; i++, made++) {
      lines.push(`      - { name: s${s}-${i}, address: 127.0.0.1:${port}, forward: pipe }`)
    }
  }
  return lines.join('\n') + '\n'
}

/** Runs one Baton for warm-up + `seconds`, and measures the window after the warm-up. */
async function measure (o: Options, targets: Targets, withHealth: boolean, seconds: number): Promise<Window> {
  const baton = await startBaton(parseConfig(configYaml(o, targets.ports, withHealth), path.join(REPO_ROOT, 'bench-health.yaml')))
  try {
    await new Promise((resolve) => setTimeout(resolve, 2 * o.intervalMs)) // first checks spread over an interval
    const down = baton.servers().filter((s) => s.state !== 'up').length
    if (down > 0) throw new Error(`${down} servers are not up after the warm-up: the targets do not answer`)
    const loop = monitorEventLoopDelay({ resolution: 10 })
    const t0 = await targets.sample()
    const cpu0 = process.cpuUsage()
    const wall0 = performance.now()
    loop.enable()
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    loop.disable()
    const cpu = process.cpuUsage(cpu0)
    const wallMs = performance.now() - wall0
    const t1 = await targets.sample()
    return {
      cpuPct: (cpu.user + cpu.system) / 1000 / wallMs * 100,
      sysPct: cpu.system / 1000 / wallMs * 100,
      loopP99Ms: loop.percentile(99) / 1e6,
      checksPerS: (o.tcp ? t1.connections - t0.connections : t1.checks - t0.checks) / (wallMs / 1000),
      connsPerS: (t1.connections - t0.connections) / (wallMs / 1000),
      targetCpuPct: (t1.cpuUs - t0.cpuUs) / 1000 / wallMs * 100,
    }
  } finally {
    await baton.close()
  }
}

/**
 * Replaces the section of RESULTS.md; the row of another kind of check (HTTP, TCP) or size is kept, and so
 * are the notes under the table (lines starting with "- ", written by hand: A/B runs of other benchmarks).
 */
function writeSection (line: string, o: Options): void {
  const file = path.join(REPO_ROOT, 'bench', 'RESULTS.md')
  const old = sectionOf(fs.readFileSync(file, 'utf8'), SECTION)
  const kind = line.split(' | ')[1]
  const rows = old.split('\n').filter((l) => /^\| \d{4}-/.test(l) && l.split(' | ')[1] !== kind)
  const notes = sectionNotes(old)
  const section = `${SECTION}

\`npm run bench:health\` (bench/health.ts; \`-- --tcp\` for TCP checks): an in-process Baton with ${o.servers} relayed
servers in ${o.services} services, every one checked every ${o.intervalMs} ms (HTTP: GET /healthz on a connection kept between
checks; TCP: a connect and an RST per check) for ${o.durationS} s after a warm-up. The check targets (${Math.min(o.services, 10)} HTTP
servers) run in a child process. Dispatcher CPU is process.cpuUsage() over the window as % of one core; the
baseline is the same config without \`health:\`. The claim: checking stays under 5% of one core. On loopback
the dispatcher's kernel time includes the target's half of each TCP handshake.

| date | servers × interval | checks/s | dispatcher CPU | baseline | for checking | event-loop p99 | targets' CPU |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${[...rows, line].sort((a, b) => a.split(' | ')[1]!.localeCompare(b.split(' | ')[1]!)).join('\n')}
${notes.length > 0 ? `\n${notes.join('\n')}\n` : ''}`
  replaceSection(file, SECTION, section)
}

async function main (): Promise<void> {
  const child = /^--child-targets=(\d+)$/.exec(process.argv[2] ?? '')
  if (child !== null) { await runTargets(Number(child[1])); return }
  const o = options()
  const cpuModel = os.cpus()[0]?.model ?? 'unknown cpu'
  console.log(`node ${process.version}, ${os.cpus().length} × ${cpuModel}; ${o.servers} servers in ${o.services} services, ` +
    `${o.tcp ? 'TCP' : 'HTTP'} checks every ${o.intervalMs} ms`)
  const targets = await startTargets(Math.min(o.services, 10))
  try {
    const base = await measure(o, targets, false, o.baselineS)
    console.log(`baseline (no health:)  ${base.cpuPct.toFixed(2)}% of one core, event-loop p99 ${base.loopP99Ms.toFixed(1)} ms`)
    const run = await measure(o, targets, true, o.durationS)
    const forChecks = run.cpuPct - base.cpuPct
    console.log(`with checks            ${run.cpuPct.toFixed(2)}% of one core (${run.sysPct.toFixed(2)}% in the kernel; ${forChecks.toFixed(2)}% for checking), ` +
      `${Math.round(run.checksPerS)} checks/s on ${Math.round(run.connsPerS)} new connections/s, event-loop p99 ${run.loopP99Ms.toFixed(1)} ms; ` +
      `check targets ${run.targetCpuPct.toFixed(2)}% (child process)`)
    const verdict = forChecks < 5 ? 'under' : 'OVER'
    console.log(`${verdict} the 5% budget`)
    const line = `| ${new Date().toISOString().slice(0, 10)} | ${o.servers} × ${o.intervalMs} ms ${o.tcp ? 'TCP' : 'HTTP'} | ${Math.round(run.checksPerS)} | ` +
      `${run.cpuPct.toFixed(1)}% | ${base.cpuPct.toFixed(1)}% | ${forChecks.toFixed(1)}% | ${run.loopP99Ms.toFixed(1)} ms | ${run.targetCpuPct.toFixed(1)}% |`
    if (o.write) writeSection(line, o)
    if (verdict === 'OVER') process.exitCode = 1
  } finally {
    targets.child.kill('SIGKILL')
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
