// Test harness: real back-end processes (the demo back end, compiled) and an in-process switch on port 0,
// so tests can read the dispatcher's own /proc/self/fd. Everything started is registered for teardown.
import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { parseConfig } from '../../src/config/load'
import { startBaton, type Baton } from '../../src/baton'

export const ROOT = path.resolve(__dirname, '../..')
const DEMO_BACKEND = path.join(ROOT, 'dist/src/demo/backend.js')

export interface Harness {
  readonly dir: string
  readonly children: readonly ChildProcess[]
  backend (name: string, opts?: { listen?: string }): Promise<ChildProcess>
  baton (yaml: string): Promise<Baton>
  /** Dispatcher log lines (parsed JSON) captured so far. */
  readonly logs: Array<Record<string, unknown>>
  /** The logger that captures them, for a Baton built by the test itself. */
  readonly logger: pino.Logger
  sock (name: string): string
  close (): Promise<void>
}

export function harness (): Harness {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-test-'))
  const children: ChildProcess[] = []
  const batons: Baton[] = []
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    },
  })
  const logger = pino({ level: 'info' }, sink)
  return {
    dir,
    children,
    logs,
    logger,
    sock: (name) => path.join(dir, `${name}.sock`),
    backend: async (name, opts = {}) => {
      if (!fs.existsSync(DEMO_BACKEND)) throw new Error(`${DEMO_BACKEND} missing: run npm run build first`)
      const args = ['--name', name]
      if (opts.listen !== undefined) args.push('--listen', opts.listen)
      else args.push('--handoff', path.join(dir, `${name}.sock`))
      const child = fork(DEMO_BACKEND, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      children.push(child)
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve())
        child.once('exit', (code) => reject(new Error(`backend ${name} exited ${code}`)))
      })
      return child
    },
    baton: async (yaml) => {
      const b = await startBaton(parseConfig(yaml, path.join(dir, 'baton.yaml')), { logger })
      batons.push(b)
      return b
    },
    close: async () => {
      for (const b of batons) await b.close()
      await Promise.all(children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return
        const exited = new Promise((resolve) => c.once('exit', resolve))
        c.kill('SIGKILL')
        await exited
      }))
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface RawResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/** Parses consecutive HTTP/1.1 responses with Content-Length bodies out of raw bytes. */
export function parseResponses (raw: string): RawResponse[] {
  const out: RawResponse[] = []
  let rest = raw
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n')
    if (end < 0) break
    const lines = rest.slice(0, end).split('\r\n')
    const status = Number(lines[0]!.split(' ')[1])
    const headers: Record<string, string> = {}
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':')
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
    }
    const len = Number(headers['content-length'] ?? 0)
    out.push({ status, headers, body: rest.slice(end + 4, end + 4 + len) })
    rest = rest.slice(end + 4 + len)
  }
  return out
}

/** Connects, writes `raw` (string or chunks with delays), reads until the server closes or `expect` responses arrived. */
export function exchange (port: number, raw: string | Buffer, opts: { expect?: number; timeoutMs?: number } = {}):
Promise<{ responses: RawResponse[]; raw: string; local: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let data = ''
    let local = { address: '', port: 0 }
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`timeout; got ${JSON.stringify(data)}`)) }, opts.timeoutMs ?? 5000)
    const finish = (): void => {
      clearTimeout(timer)
      s.destroy()
      resolve({ responses: parseResponses(data), raw: data, local })
    }
    s.on('connect', () => {
      local = { address: s.localAddress!, port: s.localPort! }
      s.write(raw)
    })
    s.on('data', (d) => {
      data += d.toString('latin1')
      if (opts.expect !== undefined && parseResponses(data).length >= opts.expect) finish()
    })
    s.on('end', finish)
    s.on('error', (err) => { clearTimeout(timer); if (data !== '') finish(); else reject(err) })
  })
}

export function fdCount (): number {
  return fs.readdirSync('/proc/self/fd').length
}

export async function waitFor (cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
