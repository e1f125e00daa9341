// Active health checks (keepalived's HTTP_GET / TCP_CHECK, HAProxy's `check`): one timer chain per checked
// server, each result reported to HealthState, which alone applies rise/fall. Checks are spread: each
// server's first check waits a random part of its interval, so that a thousand servers never fire at once;
// while a server is changing state (a result disagrees with its verdict) it is checked at fastIntervalMs,
// as HAProxy's fastinter. A TCP check connects and resets (RST: no TIME_WAIT per check); an HTTP check keeps
// its connection between checks and connects anew after any failure (http-check.ts). Each is bounded by
// timeoutMs. Servers in maint are not checked.
import net from 'node:net'
import type { ServerState } from '../cluster/types'
import type { Logger } from '../log'
import type { CheckAddress } from '../protocol/handoff'
import { HttpCheckConnection, type HttpCheck } from './http-check'
import type { HealthState } from './state'

export type { HttpCheck } from './http-check'

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
  /** performance.now() the current check was due at: the next is due an interval later, however long it took. */
  due: number
  /** HTTP checks: the connection kept between checks (http-check.ts). */
  conn: HttpCheckConnection | undefined
}

/**
 * Checks start on slot boundaries, so that those due about together share one timer wakeup (and their
 * answers one poll): a thousand checks a second each waking the event loop alone cost more than the checks
 * (bench/health.ts). A slot is at most MAX_SLOT_MS and a quarter of the fast interval at most.
 */
const MAX_SLOT_MS = 50

function slotOf (spec: CheckSpec): number {
  return Math.max(1, Math.min(MAX_SLOT_MS, Math.floor(spec.fastIntervalMs / 4)))
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
    const c: Checked = { server, spec, address, timer: undefined, due: performance.now(), conn: undefined }
    this.#checked.set(server, c)
    this.#schedule(c, Math.floor(Math.random() * spec.intervalMs))
  }

  remove (server: ServerState): void {
    const c = this.#checked.get(server)
    if (c === undefined) return
    clearTimeout(c.timer)
    c.conn?.close()
    this.#checked.delete(server)
  }

  get size (): number { return this.#checked.size }

  close (): void {
    this.#closed = true
    for (const c of this.#checked.values()) {
      clearTimeout(c.timer)
      c.conn?.close()
    }
    this.#checked.clear()
  }

  /** The next check `delayMs` after the last one was due (not after it ended), on a slot boundary. */
  #schedule (c: Checked, delayMs: number): void {
    const now = performance.now()
    const slot = slotOf(c.spec)
    c.due = Math.ceil(Math.max(c.due + delayMs, now) / slot) * slot
    c.timer = setTimeout(() => { void this.#run(c) }, c.due - now)
    c.timer.unref()
  }

  async #run (c: Checked): Promise<void> {
    c.timer = undefined
    const addr = c.address()
    if (this.#health.wantsChecks(c.server) && addr !== 'pending') {
      const why = addr === undefined ? 'no address to check' : await this.#probe(c, addr)
      if (this.#closed || this.#checked.get(c.server) !== c) return
      this.#health.check(c.server, why === '', why === '' ? 'check passed' : why)
      if (why !== '') this.#log.debug({ svc: c.server.service, backend: c.server.id, why }, 'health check failed')
    }
    if (this.#closed || this.#checked.get(c.server) !== c) return
    const fast = addr === 'pending' || this.#health.isChanging(c.server)
    this.#schedule(c, fast ? c.spec.fastIntervalMs : c.spec.intervalMs)
  }

  #probe (c: Checked, addr: CheckAddress): Promise<string> {
    const { http, timeoutMs } = c.spec
    if (http === undefined) return tcpProbe(addr, timeoutMs)
    c.conn ??= new HttpCheckConnection()
    return c.conn.check(addr, http, timeoutMs)
  }
}

/** One check on its own connection, closed after: '' when it passed, else why it failed. Never throws. */
export async function probe (addr: CheckAddress, spec: CheckSpec): Promise<string> {
  if (spec.http === undefined) return await tcpProbe(addr, spec.timeoutMs)
  const conn = new HttpCheckConnection()
  try {
    return await conn.check(addr, spec.http, spec.timeoutMs)
  } finally {
    conn.close()
  }
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
    s.once('connect', () => {
      clearTimeout(timer)
      if (addr.path === undefined) s.resetAndDestroy() // RST: no TIME_WAIT per check (HAProxy does the same)
      else s.destroy()
      resolve('')
    })
    s.once('error', (err: NodeJS.ErrnoException) => { done(`connect failed: ${err.code ?? err.message}`) })
  })
}
