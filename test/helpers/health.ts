// Helpers for test/integration/health*.test.ts: back ends whose health the test controls
// (test/fixtures/health-backend.js), a client load that records every connection's outcome and time, and
// readers of the switch's view (servers(), /metrics, the state-change log lines).
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import type { Baton } from '../../src/baton'
import { exchange, ROOT } from './cluster'

const SCRIPT = path.join(ROOT, 'test/fixtures/health-backend.js')

export type HealthMode = 'ok' | 'fail' | 'hang'
export interface FixtureStats { readonly checks: number; readonly requests: number; readonly checkAgents: string[] }

export interface Fixture {
  readonly name: string
  readonly child: ChildProcess
  /** The TCP port it listens on (0 when it only takes handoffs). */
  readonly port: number
  /** Sends a control message and resolves once the back end applied it. */
  send (msg: { health?: HealthMode; state?: 'ready' | 'drain' | 'maint'; weight?: number }): Promise<void>
  stats (): Promise<FixtureStats>
}

export interface Fixtures {
  start (name: string, opts: { handoff?: string; listen?: string }): Promise<Fixture>
  /** SIGCONTs and SIGKILLs every fixture still running. */
  close (): Promise<void>
}

export function fixtures (): Fixtures {
  const children: ChildProcess[] = []
  return {
    start: async (name, opts) => {
      const child = fork(SCRIPT, [JSON.stringify({ name, ...opts })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      children.push(child)
      const port = await new Promise<number>((resolve, reject) => {
        child.once('message', (m: { port: number }) => { resolve(m.port) })
        child.once('exit', (code) => { reject(new Error(`fixture ${name} exited ${code}`)) })
      })
      const reply = <T>(match: (m: Record<string, unknown>) => T | undefined): Promise<T> => new Promise((resolve) => {
        const on = (m: Record<string, unknown>): void => {
          const v = match(m)
          if (v === undefined) return
          child.off('message', on)
          resolve(v)
        }
        child.on('message', on)
      })
      return {
        name, child, port,
        send: async (msg) => {
          const acked = reply((m) => (m.ack !== undefined ? true : undefined))
          child.send(msg)
          await acked
        },
        stats: async () => {
          const got = reply((m) => m.stats as FixtureStats | undefined)
          child.send({ stats: true })
          return await got
        },
      }
    },
    close: async () => {
      await Promise.all(children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return
        const exited = new Promise((resolve) => c.once('exit', resolve))
        c.kill('SIGCONT')
        c.kill('SIGKILL')
        await exited
      }))
    },
  }
}

export const get = (p: string, close = true): string =>
  `GET ${p} HTTP/1.1\r\nHost: e\r\n${close ? 'Connection: close\r\n' : ''}\r\n`

export interface Outcome {
  /** Date.now() when the connection was opened and when it ended (log lines carry the same clock). */
  readonly startMs: number
  readonly endMs: number
  readonly status: number
  readonly backend: string | undefined
  readonly retryAfter: string | undefined
  readonly error: string | undefined
}

/** One Connection: close request through the switch; never rejects. */
export async function request (port: number, p = '/', timeoutMs = 5000): Promise<Outcome> {
  const startMs = Date.now()
  try {
    const { responses } = await exchange(port, get(p), { expect: 1, timeoutMs })
    const r = responses[0]
    if (r === undefined) return { startMs, endMs: Date.now(), status: 0, backend: undefined, retryAfter: undefined, error: 'no response' }
    return { startMs, endMs: Date.now(), status: r.status, backend: r.headers['x-baton-backend'], retryAfter: r.headers['retry-after'], error: undefined }
  } catch (err) {
    return { startMs, endMs: Date.now(), status: 0, backend: undefined, retryAfter: undefined, error: (err as Error).message }
  }
}

export const failed = (o: Outcome): boolean => o.status !== 200

/**
 * `concurrency` clients each sending Connection: close requests back to back until `until()` is true.
 * `during` runs alongside once the load has started. Resolves to every outcome in start order.
 */
export async function load (port: number, concurrency: number, until: () => boolean,
  during?: () => Promise<void>): Promise<Outcome[]> {
  const out: Outcome[] = []
  const client = async (c: number): Promise<void> => {
    for (let i = 0; !until(); i++) out.push(await request(port, `/load/${c}/${i}`))
  }
  await Promise.all([...Array.from({ length: concurrency }, async (_, c) => { await client(c) }), during?.()])
  return out.sort((a, b) => a.startMs - b.startMs)
}

/** Sequential picks: how many each back end answered. */
export async function picks (port: number, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const o = await request(port, `/pick/${i}`)
    const k = o.backend ?? `status-${o.status}`
    counts.set(k, (counts.get(k) ?? 0) + 1)
  }
  return counts
}

export function stateOf (baton: Baton, id: string): string | undefined {
  return baton.servers().find((s) => s.id === id)?.state
}

export function weightOf (baton: Baton, id: string): number | undefined {
  return baton.servers().find((s) => s.id === id)?.weight
}

/** The 'real server <state>' lines health logged for one server, oldest first. */
export function stateLines (logs: ReadonlyArray<Record<string, unknown>>, id: string): Array<Record<string, unknown>> {
  return logs.filter((l) => l.backend === id && typeof l.msg === 'string' && l.msg.startsWith('real server '))
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
