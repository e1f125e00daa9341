// Starts bench/backend.ts as a child with an IPC channel and reads its counters over it.
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import type { BackendReady, BackendStats } from '../backend'

export interface Backend {
  readonly pid: number
  readonly port: number
  /** The SOCK_SEQPACKET path Baton's handoff rows use. */
  readonly handoffPath: string
  /** 'ok', or why the handoff rows cannot run. */
  readonly handoffState: string
  stats (): Promise<BackendStats>
  exited (): string | undefined
  tail (): string
  stop (): Promise<void>
}

function isType<T extends { type: string }> (msg: unknown, type: T['type']): msg is T {
  return typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === type
}

export async function startBackend (dir: string): Promise<Backend> {
  const script = path.join(__dirname, '..', 'backend.js')
  const handoffPath = path.join(dir, 'b1.sock')
  const child: ChildProcess = fork(script, ['--port=0', `--handoff=${handoffPath}`], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  const lines: string[] = []
  const keep = (b: Buffer): void => { lines.push(...b.toString().split('\n').filter((l) => l !== '')); lines.splice(0, Math.max(0, lines.length - 20)) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  let exit: string | undefined
  const gone = new Promise<void>((resolve) => child.once('exit', (code, sig) => { exit = sig ?? `code ${String(code)}`; resolve() }))
  const ready = await new Promise<BackendReady>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`back end did not start in 10 s:\n${lines.join('\n')}`)), 10_000)
    child.on('message', (msg: unknown) => { if (isType<BackendReady>(msg, 'ready')) { clearTimeout(timer); resolve(msg) } })
    child.once('exit', () => { clearTimeout(timer); reject(new Error(`back end exited:\n${lines.join('\n')}`)) })
  })
  const waiters: Array<(s: BackendStats) => void> = []
  child.on('message', (msg: unknown) => { if (isType<BackendStats>(msg, 'stats')) waiters.shift()?.(msg) })
  return {
    pid: child.pid ?? -1,
    port: ready.port,
    handoffPath,
    handoffState: ready.handoff,
    async stats () {
      if (exit !== undefined) throw new Error(`back end exited (${exit}):\n${lines.join('\n')}`)
      return await new Promise<BackendStats>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('back end did not answer a stats request in 5 s')), 5000)
        waiters.push((s) => { clearTimeout(timer); resolve(s) })
        child.send({ type: 'stats' })
      })
    },
    exited: () => exit,
    tail: () => lines.join('\n'),
    async stop () {
      if (exit !== undefined) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
      await gone
      clearTimeout(timer)
    }
  }
}
