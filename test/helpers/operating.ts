// Helpers for test/integration/operating*.test.ts: `baton start` and `baton ctl` as real processes (from
// dist/, built by `npm test`), a load loop of Connection: close requests, and pick counts by back end.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { exchange, parseResponses, ROOT, waitFor } from './cluster'

export const MAIN = path.join(ROOT, 'dist/src/cli/main.js')

export interface Switch {
  readonly child: ChildProcess
  readonly file: string
  /** The first listener's port. */
  readonly port: number
  /** The admin API as the log said: 'host:port' or the socket path. */
  readonly admin: string | undefined
  /** Every JSON log line so far (stdout). */
  readonly logs: Array<Record<string, unknown>>
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Every `baton start` of a test file; killSwitches() in afterAll. */
const started: ChildProcess[] = []

/** A `baton start` process: its JSON log lines (stdout) as they come, its stderr, its exit. */
export interface Started {
  readonly child: ChildProcess
  readonly logs: Array<Record<string, unknown>>
  stderr (): string
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Runs `baton start -c file ...args` without waiting for anything; killSwitches() ends it. */
export function spawnBaton (file: string, args: readonly string[] = []): Started {
  const child = spawn(process.execPath, [MAIN, 'start', '-c', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  started.push(child)
  const logs: Array<Record<string, unknown>> = []
  let rest = ''
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n')
    rest = lines.pop() ?? ''
    for (const l of lines) if (l.trim() !== '') logs.push(JSON.parse(l) as Record<string, unknown>)
  })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => { resolve({ code, signal }) })
  })
  return { child, logs, stderr: () => stderr, exited }
}

/** Writes `yaml` to `file` and runs `baton start -c file ...args` until its "baton started" line. */
export async function startSwitch (file: string, yaml: string, args: readonly string[] = []): Promise<Switch> {
  fs.writeFileSync(file, yaml)
  const { child, logs, stderr, exited } = spawnBaton(file, args)
  const failed = exited.then(({ code }) => { throw new Error(`baton start exited ${code}: ${stderr()}`) })
  const ready = waitFor(() => logs.some((l) => l.msg === 'baton started'), 20_000)
  await Promise.race([ready, failed])
  const line = logs.find((l) => l.msg === 'baton started')!
  const listen = (line.listen as string[])[0]!
  const admin = logs.find((l) => l.msg === 'admin API listening')?.admin as string | undefined
  return { child, file, port: Number(listen.slice(listen.lastIndexOf(':') + 1)), admin, logs, exited }
}

export async function killSwitches (): Promise<void> {
  await Promise.all(started.splice(0).map(async (c) => {
    if (c.exitCode !== null || c.signalCode !== null) return
    const gone = new Promise((resolve) => c.once('exit', resolve))
    c.kill('SIGKILL')
    await gone
  }))
}

export interface CtlResult { readonly code: number | null, readonly stdout: string, readonly stderr: string }

/** `baton ctl ...args`, asynchronously (the test's own load loop keeps running meanwhile). */
export function ctl (...args: string[]): Promise<CtlResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'ctl', ...args], { timeout: 30_000, env: { ...process.env, BATON_ADMIN_TOKEN: '' } },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
        resolve({ code, stdout, stderr })
      })
  })
}

export interface Row { service: string, id: string, state: string, weight: number, configWeight: number, active: number, inactive: number }

export async function list (file: string): Promise<Row[]> {
  const r = await ctl('-c', file, 'list', '--json')
  if (r.code !== 0) throw new Error(`ctl list: ${r.stderr}`)
  return JSON.parse(r.stdout) as Row[]
}

export const CLOSE = (p = '/'): string => `GET ${p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`

/** One Connection: close request; the answering back end's name, or an Error message. */
export async function pick (port: number, p = '/'): Promise<string> {
  try {
    const { responses } = await exchange(port, CLOSE(p), { expect: 1, timeoutMs: 10_000 })
    const r = responses[0]
    if (r === undefined) return 'error: no response'
    return r.status === 200 ? (r.headers['x-baton-backend'] ?? 'error: no backend header') : `error: status ${r.status}`
  } catch (err) {
    return `error: ${(err as Error).message}`
  }
}

export interface Load {
  /** Answers by back end (and 'error: ...' keys for failures) since start or the last take(). */
  take (): Map<string, number>
  /** Stops the loops; every answer since start(). */
  stop (): Promise<Map<string, number>>
}

/** `workers` loops of Connection: close requests to `p` until stop(). */
export function load (port: number, workers = 4, p = '/'): Load {
  let window = new Map<string, number>()
  const all = new Map<string, number>()
  let running = true
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const who = await pick(port, p)
      window.set(who, (window.get(who) ?? 0) + 1)
      all.set(who, (all.get(who) ?? 0) + 1)
    }
  })
  return {
    take: () => { const c = window; window = new Map(); return c },
    stop: async () => { running = false; await Promise.all(loops); return all },
  }
}

export function failures (counts: Map<string, number>): string[] {
  return [...counts].filter(([k]) => k.startsWith('error')).map(([k, n]) => `${k} x${n}`)
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Open descriptors of another process (the switch), from /proc. */
export function fdsOf (pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length
}

export interface KeepAlive {
  /** Sends one request on the kept-alive connection; resolves with the answering back end. */
  get (p: string): Promise<string>
  close (): void
}

/** A client connection kept open across requests (its back end owns it once handed off). */
export async function keepAlive (port: number): Promise<KeepAlive> {
  const s = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  s.on('error', () => {})
  let buf = ''
  let waiting: ((who: string) => void) | undefined
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1')
    const [r] = parseResponses(buf)
    if (r === undefined || waiting === undefined) return
    const end = buf.indexOf('\r\n\r\n') + 4 + Number(r.headers['content-length'] ?? 0)
    if (buf.length < end) return
    buf = buf.slice(end)
    const done = waiting
    waiting = undefined
    done(r.status === 200 ? r.headers['x-baton-backend'] ?? '?' : `status ${r.status}`)
  })
  s.on('close', () => { waiting?.('closed') })
  return {
    get: (p) => new Promise((resolve) => {
      waiting = resolve
      s.write(`GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`)
    }),
    close: () => { s.destroy() },
  }
}

/** A port that was free a moment ago (for a relayed demo back end, which cannot report port 0's pick). */
export async function freePort (): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as net.AddressInfo
  await new Promise((resolve) => srv.close(resolve))
  return port
}
