// `npm run bench:takeover`: the pause in accepting across a takeover restart (README, Operating). Two demo
// handoff back ends, `baton start` with admin.socket (real processes, from dist/), a load of Connection:
// close requests from W loops, and U upgrades in a row, each `baton start --takeover` beside the running one.
// Per upgrade, the pause is the new process's first accept minus the old one's last (both from their logs,
// wall clock with sub-ms precision; 0 when they overlap). It is an upper bound: it includes the time until
// the next client connects and the new process is scheduled (both accept during the handover, so no moment
// has nobody accepting; the overlap is reported too). With few load loops, a gap between arrivals is counted
// as a pause: the old process's last connections are still in flight in it. So a second figure, the first
// connection's wait, is the new process's first accept minus the later of that connection's request being
// sent (the client's wall clock, matched by its port) and the old process's last accept: how long a
// connection waited while nobody took it. Reports median and max, requests answered and failed (any failure,
// reset or non-200 counts).
//   npm run bench:takeover -- [--upgrades=20] [--workers=4] [--baton=DIR] [--label=TEXT] [--write]
// --baton runs another checkout's build (DIR/dist; e.g. the base commit, for a before/after in one window).
// --write adds this run's row (labelled --label, default the checkout's commit) to the "Takeover" section of
// bench/RESULTS.md, keeping the rows of other labels and the notes under the table.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { replaceSection, sectionNotes, sectionOf } from './harness/output'

const REPO_ROOT = path.resolve(__dirname, '../..')
const SECTION = '## Takeover'
let MAIN = path.join(REPO_ROOT, 'dist/src/cli/main.js')
let BACKEND = path.join(REPO_ROOT, 'dist/src/demo/backend.js')

type Log = Record<string, unknown>
interface Proc { child: ChildProcess, logs: Log[], exited: Promise<number | null> }

const children: ChildProcess[] = []
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function until (cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

function startBaton (file: string, args: string[]): Proc {
  const child = spawn(process.execPath, [MAIN, 'start', '-c', file, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  const logs: Log[] = []
  let rest = ''
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n')
    rest = lines.pop() ?? ''
    for (const l of lines) if (l.trim() !== '') logs.push(JSON.parse(l) as Log)
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, logs, exited }
}

const find = (p: Proc, msg: string): Log | undefined => p.logs.find((l) => String(l.msg).startsWith(msg))

const wallMs = (): number => performance.timeOrigin + performance.now()
/** When each client port last sent its request (wall ms): the switch accepts it once the bytes are there (TCP_DEFER_ACCEPT). */
const sentAt = new Map<number, number>()

/** One Connection: close request: true when answered 200. */
function request (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    let data = ''
    s.setTimeout(10_000, () => { s.destroy() })
    s.on('data', (d: Buffer) => { data += d.toString('latin1') })
    s.on('error', () => {})
    s.on('close', () => { resolve(data.startsWith('HTTP/1.1 200')) })
    s.once('connect', () => {
      s.write('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
      sentAt.set(s.localPort!, wallMs())
    })
  })
}

function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: {
    upgrades: { type: 'string', default: '20' }, workers: { type: 'string', default: '4' },
    baton: { type: 'string' }, label: { type: 'string' }, write: { type: 'boolean', default: false },
  } })
  const upgrades = Number(values.upgrades)
  const workers = Number(values.workers)
  const root = path.resolve(values.baton ?? REPO_ROOT)
  MAIN = path.join(root, 'dist/src/cli/main.js')
  BACKEND = path.join(root, 'dist/src/demo/backend.js')
  const label = values.label ?? commitOf(root)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-bench-takeover-'))
  try {
    for (const name of ['a', 'b']) {
      const c = fork(BACKEND, ['--name', name, '--handoff', path.join(dir, `${name}.sock`)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
      children.push(c)
      await new Promise<void>((resolve, reject) => { c.once('message', () => resolve()); c.once('exit', () => reject(new Error(`back end ${name} exited`))) })
    }
    const file = path.join(dir, 'baton.yaml')
    fs.writeFileSync(file, [
      'listen: 127.0.0.1:0',
      `admin: { socket: ${path.join(dir, 'admin.sock')} }`,
      'log: { level: info }',
      'services:',
      `  - { name: s, scheduler: rr, servers: [ { name: a, handoff: ${path.join(dir, 'a.sock')} }, { name: b, handoff: ${path.join(dir, 'b.sock')} } ] }`,
      'routes: [ { service: s } ]',
      '',
    ].join('\n'))
    let cur = startBaton(file, [])
    await until(() => find(cur, 'baton started') !== undefined && cur.logs.filter((l) => l.msg === 'real server up').length >= 2, 20_000, 'baton started')
    const listen = (find(cur, 'baton started')!.listen as string[])[0]!
    const port = Number(listen.slice(listen.lastIndexOf(':') + 1))

    let running = true
    let ok = 0
    let failed = 0
    const loops = Array.from({ length: workers }, async () => {
      while (running) { if (await request(port)) ok++; else failed++ }
    })
    await sleep(500)
    const pauses: number[] = []
    const waits: number[] = []
    const overlaps: number[] = []
    const exits: Array<number | null> = []
    for (let i = 0; i < upgrades; i++) {
      const next = startBaton(file, ['--takeover'])
      await until(() => find(next, 'baton started') !== undefined, 30_000, 'the new process')
      exits.push(await cur.exited)
      await until(() => find(next, 'takeover: first accept') !== undefined, 15_000, 'a first accept')
      const last = find(cur, 'takeover: handed the listening sockets over')!.lastAcceptAt as number
      const first = find(next, 'takeover: first accept')!.firstAcceptAt as number
      pauses.push(Math.max(0, first - last))
      const port = find(next, 'takeover: first accept')!.clientPort as number | undefined // absent before it was logged
      const sent = port === undefined ? undefined : sentAt.get(port)
      if (sent !== undefined) waits.push(Math.max(0, first - Math.max(sent, last)))
      const handed = find(cur, 'takeover: handed the listening sockets over')!
      overlaps.push((handed.stoppedAt as number) - (find(next, 'takeover: accepting')!.acceptingAt as number))
      cur = next
      await sleep(200)
    }
    running = false
    await Promise.all(loops)
    cur.child.kill('SIGTERM')
    await cur.exited
    const f = (x: number): string => x.toFixed(3)
    console.log(`takeover: ${upgrades} upgrades, ${workers} load loops of Connection: close requests`)
    console.log(`  accept pause (old last accept -> new first accept): median ${f(median(pauses))} ms, max ${f(Math.max(...pauses))} ms`)
    console.log(`  pauses (ms): ${pauses.map(f).join(' ')}`)
    if (waits.length > 0) console.log(`  first connection's wait (new first accept - max(its request sent, old last accept)): median ${f(median(waits))} ms, max ${f(Math.max(...waits))} ms`)
    console.log(`  both accepting (new acceptors started -> old acceptors stopped): median ${f(median(overlaps))} ms, min ${f(Math.min(...overlaps))} ms`)
    console.log(`  requests: ${ok} answered 200, ${failed} failed; old processes' exit codes: ${[...new Set(exits)].join(',')}`)
    if (failed > 0 || exits.some((c) => c !== 0)) process.exitCode = 1
    if (values.write) writeRow({ label, upgrades, workers, pauses, waits, ok, failed })
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

function commitOf (dir: string): string {
  try {
    const commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${commit} + working tree` : commit
  } catch {
    return path.basename(dir)
  }
}

interface Run { label: string, upgrades: number, workers: number, pauses: number[], waits: number[], ok: number, failed: number }

/** Adds this run's row to the section of RESULTS.md (replacing an earlier row of the same label); notes are kept. */
function writeRow (r: Run): void {
  const md = path.join(REPO_ROOT, 'bench', 'RESULTS.md')
  const old = sectionOf(fs.readFileSync(md, 'utf8'), SECTION)
  const cell = (c: string): string => c.trim()
  const kept = old.split('\n').filter((l) => /^\| \d{4}-/.test(l) && cell(l.split('|')[2] ?? '') !== r.label)
  const ms = (xs: number[], pick: (xs: number[]) => number): string => (xs.length === 0 ? 'n/a' : `${pick(xs).toFixed(2)} ms`)
  const max = (xs: number[]): number => Math.max(...xs)
  const row = `| ${new Date().toISOString().slice(0, 10)} | ${r.label} | ${r.upgrades} | ${ms(r.pauses, median)} | ${ms(r.pauses, max)} | ` +
    `${ms(r.waits, median)} | ${ms(r.waits, max)} | ${r.ok} / ${r.failed} |`
  const notes = sectionNotes(old)
  const section = `${SECTION}

\`npm run bench:takeover\` (bench/takeover.ts): two demo handoff back ends, \`baton start\` with admin.socket and
${r.workers} loops of Connection: close requests; ${r.upgrades} \`baton start --takeover\` in a row (real processes). Pause = the
new process's first accept minus the old one's last (an upper bound: it includes gaps between arrivals).
Wait = the new process's first accept minus the later of that connection's request being sent and the old
one's last accept (n/a for builds that do not log the first accept's client port). Budget: under 1 ms, and
no SYN refused (every request answered). ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}, ${os.cpus().length} cores.

| date | build | upgrades | pause median | max | wait median | max | answered / failed |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${[...kept, row].join('\n')}
${notes.length > 0 ? `\n${notes.join('\n')}\n` : ''}`
  replaceSection(md, SECTION, section)
}

main().catch((err: unknown) => {
  console.error(err)
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  process.exitCode = 1
})
