// `npm run bench:migrate`: the forwarding method `migrate` across hosts, on network namespaces joined by a
// bridge (test/helpers/netns.ts, the research file's topology): the client in one namespace; the dispatcher
// (Baton, bench/harness/migrate-dispatcher.ts) in another, set up with `baton host dispatcher`; `baton agent`
// and a demo back end (which also listens on TCP) in a third, set up with `baton host realserver`; and a
// demo back end on the dispatcher's host for the handoff row. Separate processes throughout.
//
// Rows, each N connections with one request (Connection: close), first one at a time, then `concurrency`:
//   migrate  /m/  -> the agent on rs1, restored there, answered by rs1's back end directly
//   splice   /s/  -> relayed (splice) by the dispatcher to rs1's back end on TCP
//   handoff  /h/  -> handed to the back end on the dispatcher's host
//   direct        -> the client to rs1's back end, without the dispatcher
// The dispatcher times each migration step (performance.now(), forward/migrate.ts's channel, MIGRATE_STEPS):
// encode (the MIGRATE head, first), moveOut (one addon call: freeze, dump, close, steer; steering first
// where early demux is off, as `baton host dispatcher` sets it: steer, dump, close), send MIGRATE, the
// migration (head to MIGRATE sent: the dispatcher's whole part, after which the connection is the agent's),
// wait READY (the agent's round trip: restore, hand-off, answer), total (head to READY). Its CPU
// per connection is utime + stime over a row / N. The client times connect -> first byte.
//   npm run bench:migrate -- [--conns=500] [--rounds=2] [--concurrency=8] [--no-pin] [--switch-cpu=other|sender]
//                            [--early-demux=off|on] [--profile=DIR]
//                            [--label=NAME] [--write] [--json=FILE]      npm run bench:migrate -- --from-json=FILE [--write]
// --pin (default): the real server's host (agent, its back end) on CPU 1, the rest (dispatcher, the handoff back
// end, the client, which waits while a connection migrates) on CPU 0 (taskset), and each namespace's packets
// received on its host's CPU (RPS on its eth0), as if the agent's host were another machine: without RPS a write on a veth runs the receiver's whole TCP input in the writer's
// system call, and the agent's host's kernel work would count as the dispatcher's. --profile: the dispatcher runs with --cpu-prof into DIR. --write: this run's rows
// (by label) go into bench/RESULTS.md's "Migrate" section, replacing earlier rows of the same label; --json saves
// the run, --from-json prints (and --write writes) a saved one, so a base build's run sits beside this one's.
import { type ChildProcess, type SpawnOptions } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { parseArgs } from 'node:util'

import { makeTopology, netnsSkipReason, type Role, type Topology } from '../test/helpers/netns'
import { MIGRATE_STEPS } from '../src/forward/migrate-times'
import { native } from '../src/native/binding'
import { replaceSection, sectionNotes, sectionOf } from './harness/output'

const ROOT = path.resolve(__dirname, '..', '..')
const MAIN = path.join(ROOT, 'dist/src/cli/main.js')
const DEMO = path.join(ROOT, 'dist/src/demo/backend.js')
const DISPATCHER = path.join(__dirname, 'harness/migrate-dispatcher.js')
const CLIENT = path.join(__dirname, 'harness/migrate-client.js')
const SECTION = '## Migrate'
const AGENT_PORT = 7070
const DIRECT_PORT = 8000
const KINDS = { migrate: '/m/x', splice: '/s/x', handoff: '/h/x', direct: '/x' } as const
type Kind = keyof typeof KINDS

/** A child that answers one JSON line per JSON line written to it. */
interface Peer { readonly child: ChildProcess; ask (o: unknown): Promise<any> }

function peer (child: ChildProcess, name: string): Peer & { ready: Promise<any> } {
  const waiting: Array<(v: any) => void> = []
  let err = ''
  child.stderr!.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-3000) })
  child.once('exit', (code, signal) => { if (waiting.length > 0) console.error(`${name} exited (${code ?? signal ?? ''}): ${err}`) })
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return
    if (process.env.BENCH_DEBUG === "1") console.error(`${name}: ${line.slice(0, 300)}`)
    waiting.shift()?.(JSON.parse(line))
  })
  const ready = new Promise((resolve) => { waiting.push(resolve) })
  return {
    child,
    ready,
    ask (o: unknown) {
      return new Promise((resolve) => { waiting.push(resolve); child.stdin!.write(`${JSON.stringify(o)}\n`) })
    },
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function q (xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN
}

interface Row { readonly what: string; readonly n: number; readonly median: number; readonly p90: number; readonly p99: number }
const row = (what: string, xs: readonly number[]): Row => ({ what, n: xs.length, median: q(xs, 0.5), p90: q(xs, 0.9), p99: q(xs, 0.99) })

async function main (): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      conns: { type: 'string', default: '500' }, rounds: { type: 'string', default: '2' }, concurrency: { type: 'string', default: '8' },
      pin: { type: 'boolean', default: true }, 'no-pin': { type: 'boolean' }, profile: { type: 'string' }, label: { type: 'string' },
      write: { type: 'boolean' }, json: { type: 'string' }, 'from-json': { type: 'string' },
      'switch-cpu': { type: 'string', default: 'other' }, 'early-demux': { type: 'string', default: 'off' },
    },
  })
  if (o['from-json'] !== undefined) { // a saved run (another build's, e.g. the base commit's worktree): print, write
    const saved = JSON.parse(fs.readFileSync(o['from-json'], 'utf8')) as Out
    print(saved)
    if (o.write === true) write(saved)
    return
  }
  const skip = netnsSkipReason() ?? (native.available ? null : `the native addon did not load: ${native.loadError?.message ?? ''}`)
  if (skip !== null) { console.error(`bench:migrate cannot run: ${skip}`); process.exitCode = 1; return }
  const conns = Number(o.conns)
  const rounds = Number(o.rounds)
  const concurrency = Number(o.concurrency)
  const pin = o['no-pin'] !== true
  const switchCpu: 'other' | 'sender' = o['switch-cpu'] === 'sender' ? 'sender' : 'other'
  const earlyDemux = o['early-demux'] === 'on'
  const label = o.label ?? gitLabel()
  const t = makeTopology()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-bench-migrate-'))
  try {
    const r = await runAll(t, dir, { conns, rounds, concurrency, pin, switchCpu, earlyDemux, profile: o.profile })
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
    const out = { label, date: new Date().toISOString(), load, pin, switchCpu, earlyDemux, conns, rounds, concurrency, ...r }
    print(out)
    if (o.json !== undefined) fs.writeFileSync(o.json, JSON.stringify(out, null, 1))
    if (o.write === true) write(out)
  } finally {
    t.destroy()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

interface Settings {
  conns: number; rounds: number; concurrency: number; pin: boolean; switchCpu: 'other' | 'sender'; profile: string | undefined
  /** Turn early demux back on after `baton host dispatcher` (which turns it off): migrations freeze first. */
  earlyDemux: boolean
}

async function runAll (t: Topology, dir: string, s: Settings) {
  const node = process.execPath
  const onCpu = (cpu: number, argv: string[]): string[] => (s.pin ? ['taskset', '-c', String(cpu), ...argv] : argv)
  const host = (where: Role, ...args: string[]): void => { t.exec(where, [node, MAIN, 'host', ...args, '--state-dir', path.join(dir, 'host')]) }
  if (s.pin) { // each host's receive path on its own CPU (RPS), as on separate machines: not in the sender's write
    const cpus: Array<[Role, number]> = [['disp', 1], ['rs1', 2], ['client', 1]]
    for (const [where, mask] of cpus) t.exec(where, ['sh', '-c', `echo ${mask} > /sys/class/net/eth0/queues/rx-0/rps_cpus`])
    // The bridge stands for the switch between the hosts, which is no host's work. With --switch-cpu=other
    // (the default) a packet's forwarding runs on the CPU of the host it goes towards (the port a host sends
    // into is received on the other CPU), so a host's write ends at its own veth as it would at its NIC;
    // with =sender it runs inside the sender's system call, as the veth does by itself.
    if (s.switchCpu === 'other') {
      const ports: Array<[string, number]> = [['p-disp', 2], ['p-client', 2], ['p-rs1', 1]]
      for (const [port, mask] of ports) t.exec('sw', ['sh', '-c', `echo ${mask} > /sys/class/net/${port}/queues/rx-0/rps_cpus`])
    }
  }
  host('disp', 'dispatcher', '--vip', t.ip.vip, '--port', '80')
  host('rs1', 'realserver', '--vip', t.ip.vip)
  if (s.earlyDemux) t.exec('disp', ['sysctl', '-q', '-w', 'net.ipv4.tcp_early_demux=1'])
  fs.writeFileSync(path.join(dir, 'agent.key'), `${'s3cret-'.repeat(6)}\n`, { mode: 0o600 })
  const config = path.join(dir, 'baton.yaml')
  fs.writeFileSync(config, `listen: ${t.ip.vip}:80
log: { level: warn }
migrate: { secretFile: ${path.join(dir, 'agent.key')}, graceMs: 300 }
services:
  - name: mig
    servers: [ { name: rs1, agent: ${t.ip.rs1}:${AGENT_PORT} } ]
  - name: spl
    servers: [ { name: rs1-tcp, address: ${t.ip.rs1}:${DIRECT_PORT}, forward: splice } ]
  - name: hof
    servers: [ { name: local, handoff: ${path.join(dir, 'local.sock')} } ]
routes:
  - { match: { path: /s/ }, service: spl }
  - { match: { path: /h/ }, service: hof }
  - { service: mig }
`)
  const quiet: SpawnOptions = { stdio: ['ignore', 'ignore', 'inherit'] }
  t.spawn('rs1', onCpu(1, [node, DEMO, '--name', 'rs1', '--listen', `${t.ip.rs1}:${DIRECT_PORT}`, '--handoff', path.join(dir, 'rs1.sock')]), quiet)
  t.spawn('disp', onCpu(0, [node, DEMO, '--name', 'local', '--handoff', path.join(dir, 'local.sock')]), quiet)
  await sleep(300)
  t.spawn('rs1', onCpu(1, [node, MAIN, 'agent', '--listen', `${t.ip.rs1}:${AGENT_PORT}`, '--secret-file', path.join(dir, 'agent.key'),
    '--vip', `${t.ip.vip}:80`, '--handoff', path.join(dir, 'rs1.sock'), '--log-level', 'warn']), quiet)
  const prof = s.profile !== undefined ? ['--cpu-prof', '--cpu-prof-interval=50', `--cpu-prof-dir=${path.resolve(s.profile)}`] : []
  const disp = peer(t.spawn('disp', onCpu(0, [node, ...prof, DISPATCHER, config]), { stdio: ['pipe', 'pipe', 'pipe'] }), 'dispatcher')
  await disp.ready
  const client = peer(t.spawn('client', onCpu(0, [node, CLIENT]), { stdio: ['pipe', 'pipe', 'pipe'] }), 'client')
  await client.ready
  for (let i = 0; ; i++) {
    const st = (await disp.ask({ op: 'status' })) as { servers: Record<string, string> }
    if (Object.values(st.servers).every((v) => v === 'up')) break
    if (i > 100) throw new Error(`servers not up: ${JSON.stringify(st.servers)}`)
    await sleep(100)
  }
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  const job = (kind: Kind, count: number, c: number) => ({
    host: kind === 'direct' ? t.ip.rs1 : t.ip.vip, port: kind === 'direct' ? DIRECT_PORT : 80, path: KINDS[kind], count, concurrency: c,
  })
  const kinds = Object.keys(KINDS) as Kind[]
  for (const k of kinds) await client.ask(job(k, 100, 1)) // warm-up: JIT, ARP, the agent's code paths
  await disp.ask({ op: 'take' })
  const seq = new Map<Kind, { ttfb: number[]; cpuUs: number; n: number; failed: number; steps: number[][] }>()
  const con = new Map<Kind, { ttfb: number[]; cpuUs: number; n: number; failed: number; steps: number[][] }>()
  const phase = async (into: typeof seq, kind: Kind, c: number): Promise<void> => {
    const before = (await disp.ask({ op: 'take' })) as { cpuUs: number }
    const r = (await client.ask(job(kind, s.conns, c))) as { ttfbUs: number[]; failed: number; firstError?: string }
    const after = (await disp.ask({ op: 'take' })) as { cpuUs: number; steps: number[][] }
    if (r.failed > 0) console.error(`${kind} (concurrency ${c}): ${r.failed} failed, first: ${r.firstError ?? ''}`)
    const acc = into.get(kind) ?? { ttfb: [], cpuUs: 0, n: 0, failed: 0, steps: MIGRATE_STEPS.map(() => []) }
    acc.ttfb.push(...r.ttfbUs)
    acc.cpuUs += after.cpuUs - before.cpuUs
    acc.n += s.conns
    acc.failed += r.failed
    after.steps.forEach((xs, i) => acc.steps[i]!.push(...xs))
    into.set(kind, acc)
  }
  for (let round = 0; round < s.rounds; round++) {
    for (const k of kinds) await phase(seq, k, 1)
    for (const k of ['migrate', 'splice'] as const) await phase(con, k, s.concurrency)
  }
  const exited = new Promise((resolve) => { disp.child.once('exit', resolve) })
  disp.child.stdin!.write('{"op":"exit"}\n') // no answer: it exits (and writes its profile)
  await exited
  const summary = (m: typeof seq) => Object.fromEntries([...m].map(([k, v]) => [k, {
    n: v.n, failed: v.failed, cpuUsPerConn: v.cpuUs / v.n, ttfb: row('ttfb', v.ttfb),
    ...(k === 'migrate' ? { steps: MIGRATE_STEPS.map((name, i) => row(name, v.steps[i]!)) } : {}),
  }]))
  return { loadBefore, sequential: summary(seq), concurrent: summary(con) }
}

function gitLabel (): string {
  try {
    const head = fs.readFileSync(path.join(ROOT, '.git/HEAD'), 'utf8').trim()
    const ref = head.startsWith('ref: ') ? fs.readFileSync(path.join(ROOT, '.git', head.slice(5)), 'utf8').trim() : head
    return ref.slice(0, 7)
  } catch {
    return 'unknown'
  }
}

type Out = Awaited<ReturnType<typeof runAll>> & {
  label: string; date: string; load: string; pin: boolean; switchCpu?: 'other' | 'sender'; earlyDemux?: boolean; conns: number; rounds: number; concurrency: number
}
const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(x < 100 ? 1 : 0) : 'n/a')

/** The run's rows: per step of the migration, then the client's and the CPU figures, in one table. */
function lines (r: Out): string[] {
  const out: string[] = []
  for (const [mode, m] of [['sequential', r.sequential], [`concurrency ${r.concurrency}`, r.concurrent]] as const) {
    const mig = m.migrate
    if (mig === undefined) continue
    for (const s of mig.steps ?? []) out.push(`| ${r.label} | ${mode} | ${s.what} | ${f(s.median)} | ${f(s.p90)} | ${f(s.p99)} |`)
    for (const k of ['migrate', 'splice', 'handoff', 'direct'] as const) {
      const v = m[k]
      if (v !== undefined) out.push(`| ${r.label} | ${mode} | client: connect to first byte, ${k} | ${f(v.ttfb.median)} | ${f(v.ttfb.p90)} | ${f(v.ttfb.p99)} |`)
    }
    const ttfb = (k: Kind): number => m[k]?.ttfb.median ?? NaN
    if (m.direct !== undefined) {
      out.push(`| ${r.label} | ${mode} | first byte added by migrating (median, vs direct; vs handoff) | ${f(ttfb('migrate') - ttfb('direct'))} | ${f(ttfb('migrate') - ttfb('handoff'))} | |`)
    }
    for (const k of ['migrate', 'splice', 'handoff'] as const) {
      const v = m[k]
      if (v !== undefined) out.push(`| ${r.label} | ${mode} | dispatcher CPU per connection, ${k} | ${f(v.cpuUsPerConn)} | | |`)
    }
    if (m.splice !== undefined) out.push(`| ${r.label} | ${mode} | dispatcher CPU, migrate / splice | ${(mig.cpuUsPerConn / m.splice.cpuUsPerConn).toFixed(2)} | | |`)
  }
  return out
}

function print (r: Out): void {
  console.log(`bench:migrate ${r.label}, ${r.date}, load ${r.loadBefore} before / ${r.load} after, ${r.pin ? `pinned (agent + its back end CPU 1, dispatcher, handoff back end, client CPU 0; switch on the ${r.switchCpu === 'other' ? 'receiving' : 'sending'} host's CPU)` : 'not pinned'}${demuxText(r, '; ')}; µs`)
  console.log('| build | connections | step | median | p90 | p99 |')
  for (const l of lines(r)) console.log(l)
  for (const [k, v] of Object.entries(r.sequential)) if (v.failed > 0) console.log(`${k}: ${v.failed} of ${v.n} failed`)
}

/** "| connections | step |" -> one cell per build ("median / p90 / p99"), from the rows lines() gives. */
function cells (rows: readonly string[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const l of rows) {
    const c = l.split('|').map((x) => x.trim())
    out.set(`${c[2] ?? ''} | ${c[3] ?? ''}`, [c[4], c[5], c[6]].filter((x) => x !== undefined && x !== '').join(' / '))
  }
  return out
}

/**
 * The Migrate section: one column per build label (median / p90 / p99, µs), this run's column replacing an
 * earlier one of the same label; the run list and the hand-written notes ("- " lines) are kept.
 */
/** The early demux setting of a run (runs of builds before the setting existed say nothing). */
function demuxText (r: Out, sep: string): string {
  if (r.earlyDemux === undefined) return ''
  return `${sep}early demux ${r.earlyDemux ? 'on (freeze first)' : 'off (steer first)'}`
}

function write (r: Out): void {
  const md = path.join(ROOT, 'bench', 'RESULTS.md')
  const old = sectionOf(fs.readFileSync(md, 'utf8'), SECTION)
  const table = old.split('\n').filter((l) => l.startsWith('| '))
  const head = (table[0] ?? '').split('|').map((x) => x.trim()).slice(3, -1)
  const columns = new Map<string, Map<string, string>>()
  head.forEach((label, i) => {
    const col = new Map<string, string>()
    for (const l of table.slice(2)) {
      const c = l.split('|').map((x) => x.trim())
      col.set(`${c[1] ?? ''} | ${c[2] ?? ''}`, c[3 + i] ?? '')
    }
    columns.set(label, col)
  })
  const mine = cells(lines(r))
  columns.set(r.label, mine)
  const keys = [...new Set([...[...columns.values()].flatMap((c) => [...c.keys()])])]
  const labels = [...columns.keys()]
  const runs = old.split('\n').filter((l) => l.startsWith('* ') && !l.startsWith(`* ${r.label}:`))
  const notes = sectionNotes(old)
  const section = `${SECTION}

\`npm run bench:migrate\` (bench/migrate.ts): client, dispatcher (Baton) and real server (\`baton agent\` + demo back end) in
their own network namespaces on a bridge, separate processes; N connections with one request each, one at a time,
then ${r.concurrency} at a time. Steps on the dispatcher's clock (performance.now() around each step, forward/migrate.ts);
the client's time from connect to the first response byte; dispatcher CPU = utime + stime over the row / N.
Cells: median / p90 / p99, µs. ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cores. Runs (label: when, load, settings):

${[...runs, `* ${r.label}: ${r.date.slice(0, 16)}Z, load ${r.loadBefore} before / ${r.load} after, ${r.conns} × ${r.rounds} connections per row, ${r.pin ? `pinned (taskset and RPS: agent + its back end on CPU 1; dispatcher, handoff back end and client on CPU 0; the switch's forwarding on the ${r.switchCpu === 'other' ? 'receiving' : 'sending'} host's CPU)` : 'not pinned'}${demuxText(r, ', ')}`].join('\n')}

| connections | step | ${labels.join(' | ')} |
| --- | --- |${labels.map(() => ' ---: |').join('')}
${keys.map((k) => `| ${k} | ${labels.map((l) => columns.get(l)?.get(k) ?? '').join(' | ')} |`).join('\n')}
${notes.length > 0 ? `\n${notes.join('\n')}\n` : ''}`
  replaceSection(md, SECTION, section)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
