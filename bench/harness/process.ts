// Child processes of the harness (back ends, balancers, wrk): spawn with a bounded output tail, wait until
// an HTTP target answers, stop by pid. Everything binds to 127.0.0.1.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'

export interface Child {
  readonly name: string
  readonly proc: ChildProcess
  readonly pid: number
  /** The last lines the child wrote on stdout and stderr. */
  tail (): string
  /** Exit code or signal once it has exited, otherwise undefined. */
  exited (): string | undefined
  stop (): Promise<void>
}

/** Where the executable is on PATH (also /usr/sbin, which a non-root PATH may miss), or undefined. */
export function which (cmd: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/sbin'])
  for (const dir of dirs) {
    const file = path.join(dir, cmd)
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return file
    } catch {}
  }
  return undefined
}

export function startChild (name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  const lines: string[] = []
  const keep = (chunk: Buffer): void => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(line.slice(0, 400))
    if (lines.length > 30) lines.splice(0, lines.length - 30)
  }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  let exit: string | undefined
  const done = new Promise<void>((resolve) => {
    proc.once('exit', (code, signal) => { exit = signal ?? `code ${String(code)}`; resolve() })
    proc.once('error', (err) => { exit = err.message; lines.push(err.message); resolve() })
  })
  return {
    name,
    proc,
    pid: proc.pid ?? -1,
    tail: () => lines.slice(-12).join('\n'),
    exited: () => exit,
    async stop () {
      if (exit !== undefined) return
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
      await done
      clearTimeout(timer)
    }
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

/** One GET on a fresh connection; resolves with the status code, rejects on error or after timeoutMs. */
export async function httpGet (port: number, urlPath: string, timeoutMs = 2000): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      res.resume()
      res.once('end', () => resolve(res.statusCode ?? 0))
      res.once('error', reject)
    })
    req.once('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)))
    req.once('error', reject)
  })
}

/** The line of a child's output that most likely says why it failed. */
function keyLine (tail: string): string {
  const lines = tail.split('\n').filter((l) => l.trim() !== '')
  return [...lines].reverse().find((l) => /alert|emerg|error|fatal|cannot|refus/i.test(l)) ?? lines[lines.length - 1] ?? ''
}

export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Waits until GET urlPath on port answers 200, at most timeoutMs. Throws with the child's last output
 * when the child exits first or time runs out.
 */
export async function waitReady (child: Child | undefined, port: number, urlPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    const gone = child?.exited()
    if (gone !== undefined) throw new Error(`${child?.name ?? ''} exited (${gone}) before it answered: ${keyLine(child?.tail() ?? '')}\n${child?.tail() ?? ''}`)
    try {
      const status = await httpGet(port, urlPath, 1000)
      if (status === 200) return
      last = `status ${status}`
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(100)
  }
  throw new Error(`no 200 from 127.0.0.1:${port}${urlPath} within ${timeoutMs} ms (last: ${last})` +
    (child !== undefined ? `; its output:\n${child.tail()}` : ''))
}
