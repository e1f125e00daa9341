// `npm run bench:takeover`: the pause in accepting across a takeover restart (README, Operating). Two demo
// handoff back ends, `baton start` with admin.socket (real processes, from dist/), a load of Connection:
// close requests from W loops, and U upgrades in a row, each `baton start --takeover` beside the running one.
// Per upgrade, the pause is the new process's first accept minus the old one's last (both from their logs,
// wall clock with sub-ms precision; 0 when they overlap). It is an upper bound: it includes the time until
// the next client connects and the new process is scheduled (both accept during the handover, so no moment
// has nobody accepting; the overlap is reported too). Reports median and max, requests answered and failed
// (any failure, reset or non-200 counts).
//   npm run bench:takeover -- [--upgrades=20] [--workers=4]
import { fork, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

const ROOT = path.resolve(__dirname, '../..')
const MAIN = path.join(ROOT, 'dist/src/cli/main.js')
const BACKEND = path.join(ROOT, 'dist/src/demo/backend.js')

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

/** One Connection: close request: true when answered 200. */
function request (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    let data = ''
    s.setTimeout(10_000, () => { s.destroy() })
    s.on('data', (d: Buffer) => { data += d.toString('latin1') })
    s.on('error', () => {})
    s.on('close', () => { resolve(data.startsWith('HTTP/1.1 200')) })
    s.write('GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n')
  })
}

function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { upgrades: { type: 'string', default: '20' }, workers: { type: 'string', default: '4' } } })
  const upgrades = Number(values.upgrades)
  const workers = Number(values.workers)
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
    console.log(`  both accepting (new acceptors started -> old acceptors stopped): median ${f(median(overlaps))} ms, min ${f(Math.min(...overlaps))} ms`)
    console.log(`  requests: ${ok} answered 200, ${failed} failed; old processes' exit codes: ${[...new Set(exits)].join(',')}`)
    if (failed > 0 || exits.some((c) => c !== 0)) process.exitCode = 1
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  console.error(err)
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  process.exitCode = 1
})
