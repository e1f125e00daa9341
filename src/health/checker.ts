// Active health checks (keepalived's HTTP_GET / TCP_CHECK, HAProxy's `check`): one timer chain per checked
// server, each result reported to HealthState, which alone applies rise/fall. Checks are spread: each
// server's first check waits a random part of its interval, so that a thousand servers never fire at once;
// while a server is changing state (a result disagrees with its verdict) it is checked at fastIntervalMs,
// as HAProxy's fastinter. Every check opens a fresh connection (a back end that stops accepting must fail),
// and is bounded by timeoutMs. Servers in maint are not checked.
import net from 'node:net'
import { Client } from 'undici'
import type { ServerState } from '../cluster/types'
import type { Logger } from '../log'
import type { CheckAddress } from '../protocol/handoff'
import type { HealthState } from './state'


export interface HttpCheck {
  readonly method: string
  readonly path: string
  /** Host header; default the server's address. */
  readonly host: string | undefined
  /** Accepted statuses; undefined = any 2xx or 3xx. */
  readonly expect: readonly number[] | undefined
  /** The body must contain this. */
  readonly body: string | undefined
}

export interface CheckSpec {
  /** HTTP check, or a TCP connect check when undefined. */
  readonly http: HttpCheck | undefined
  readonly intervalMs: number
  readonly fastIntervalMs: number
  readonly timeoutMs: number
}

interface Checked {
  readonly server: ServerState
  readonly spec: CheckSpec
  /**
   * Where to check now. undefined = nowhere (a handoff back end that answered its first PING without a HELLO,
   * or whose channel is down): a failed check. 'pending' = it has not answered yet: no check, none counted.
   */
  readonly address: () => CheckAddress | 'pending' | undefined
  timer: NodeJS.Timeout | undefined
  running: boolean
}

export class HealthChecker {
  readonly #health: HealthState
  readonly #log: Logger
  readonly #checked = new Map<ServerState, Checked>()
  #closed = false

  constructor (health: HealthState, log: Logger) {
    this.#health = health
    this.#log = log
  }

  /** Starts checking `server`; its first check comes at a random point of its first interval. */
  add (server: ServerState, spec: CheckSpec, address: () => CheckAddress | 'pending' | undefined): void {
    this.remove(server)
    const c: Checked = { server, spec, address, timer: undefined, running: false }
    this.#checked.set(server, c)
    this.#schedule(c, Math.floor(Math.random() * spec.intervalMs))
  }

  remove (server: ServerState): void {
    const c = this.#checked.get(server)
    if (c === undefined) return
    clearTimeout(c.timer)
    this.#checked.delete(server)
  }

  get size (): number { return this.#checked.size }

  close (): void {
    this.#closed = true
    for (const c of this.#checked.values()) clearTimeout(c.timer)
    this.#checked.clear()
  }

  #schedule (c: Checked, delayMs: number): void {
    c.timer = setTimeout(() => { void this.#run(c) }, delayMs)
    c.timer.unref()
  }

  async #run (c: Checked): Promise<void> {
    c.timer = undefined
    const addr = c.address()
    if (this.#health.wantsChecks(c.server) && addr !== 'pending') {
      const why = addr === undefined ? 'no address to check' : await probe(addr, c.spec)
      if (this.#closed || this.#checked.get(c.server) !== c) return
      this.#health.check(c.server, why === '', why === '' ? 'check passed' : why)
      if (why !== '') this.#log.debug({ svc: c.server.service, backend: c.server.id, why }, 'health check failed')
    }
    if (this.#closed || this.#checked.get(c.server) !== c) return
    const fast = addr === 'pending' || this.#health.isChanging(c.server)
    this.#schedule(c, fast ? c.spec.fastIntervalMs : c.spec.intervalMs)
  }
}

/** One check: '' when it passed, else why it failed. Never throws. */
export async function probe (addr: CheckAddress, spec: CheckSpec): Promise<string> {
  return spec.http === undefined ? await tcpProbe(addr, spec.timeoutMs) : await httpProbe(addr, spec.http, spec.timeoutMs)
}

function tcpProbe (addr: CheckAddress, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const s = addr.path !== undefined ? net.connect({ path: addr.path }) : net.connect({ host: addr.host!, port: addr.port! })
    const done = (why: string): void => {
      clearTimeout(timer)
      s.destroy()
      resolve(why)
    }
    const timer = setTimeout(() => { done(`connect timed out after ${timeoutMs} ms`) }, timeoutMs)
    s.once('connect', () => { done('') })
    s.once('error', (err: NodeJS.ErrnoException) => { done(`connect failed: ${err.code ?? err.message}`) })
  })
}

async function httpProbe (addr: CheckAddress, http: HttpCheck, timeoutMs: number): Promise<string> {
  const origin = addr.path !== undefined ? 'http://localhost' : `http://${addr.host!.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`
  const client = new Client(origin, {
    ...(addr.path !== undefined && { socketPath: addr.path }),
    connectTimeout: timeoutMs, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, pipelining: 0,
  })
  const abort = AbortSignal.timeout(timeoutMs)
  try {
    const res = await client.request({
      method: http.method, path: http.path, signal: abort, reset: true,
      headers: { host: http.host ?? (addr.path !== undefined ? 'localhost' : `${addr.host}:${addr.port}`), 'user-agent': 'baton-check' },
    })
    const body = await res.body.text()
    const ok = http.expect === undefined ? res.statusCode >= 200 && res.statusCode < 400 : http.expect.includes(res.statusCode)
    if (!ok) return `status ${res.statusCode}, expected ${http.expect?.join('/') ?? '2xx or 3xx'}`
    if (http.body !== undefined && !body.includes(http.body)) return `body does not contain ${JSON.stringify(http.body)}`
    return ''
  } catch (err) {
    const e = err as { code?: string; name?: string; message: string }
    return abort.aborted ? `no answer within ${timeoutMs} ms` : `${e.code ?? e.name ?? 'error'}: ${e.message}`
  } finally {
    client.destroy().catch(() => {})
  }
}
