// startBaton(config): builds the services, routes, channels and relays, then listens. Config errors were
// found before this runs (src/config/load.ts); this only fails on resources (a port in use).
import type { Config } from '../config/types'
import { BatonError } from '../errors'
import { createPipeForwarder } from '../forward/pipe'
import { createSpliceForwarder } from '../forward/splice'
import type { Forwarder } from '../forward/types'
import { createLogger, type Logger } from '../log'
import { native } from '../native/binding'
import { startAdmin, type AdminServer } from '../admin/server'
import { Channels } from './channels'
import { DataPath } from './dispatcher'
import { listenJs, listenNative, type Listener } from './listeners'
import { Router } from './route'
import { createServiceEntry, type ServiceEntry } from './services'

export interface BatonInstance {
  /** Bound ports, in the order of config.listen (useful with port 0). */
  readonly ports: readonly number[]
  /** True when the native addon is in use (handoff and splice available). */
  readonly native: boolean
  /** The admin API's address ('host:port' or socket path), when config.admin is set. */
  readonly admin: string | undefined
  /** Every real server's state, in config order (ipvsadm -L -n, in short). */
  servers (): ServerSnapshot[]
  /** Stops listening, closes channels and relays; connections already handed off are not affected. */
  close (): Promise<void>
}

export interface ServerSnapshot {
  readonly service: string
  readonly id: string
  readonly up: boolean
  readonly weight: number
  readonly overloaded: boolean
  readonly active: number
  readonly inactive: number
}

export interface StartOptions {
  readonly logger?: Logger
}

const TICK_MS = 1000

export async function startBaton (config: Config, options: StartOptions = {}): Promise<BatonInstance> {
  const log = options.logger ?? createLogger(config.log.level)
  const nativeOk = native.available
  if (!nativeOk) {
    log.warn({ code: 'BATON_ERR_NATIVE_UNAVAILABLE', err: native.loadError?.message },
      'native addon not loaded: relaying every connection in JavaScript (no handoff, no splice)')
  }
  const entries = new Map<string, ServiceEntry>()
  for (const s of config.services) entries.set(s.name, createServiceEntry(s))
  const router = new Router<ServiceEntry>(config.routes, (name) => entries.get(name)!)
  let path: DataPath | undefined
  const channels = new Channels([...entries.values()], log, nativeOk, {
    sent: (conn) => path!.handedOff(conn),
    unsent: (conn, err) => path!.retry(conn, err),
  })
  const relayOpts = { connectTimeoutMs: config.limits.connectTimeoutMs, idleTimeoutMs: config.limits.idleTimeoutMs, logger: log }
  const relays: { splice: Forwarder | undefined; pipe: Forwarder } = {
    splice: nativeOk && channels.usesMethod('splice') ? createSpliceForwarder(relayOpts) : undefined,
    pipe: createPipeForwarder(relayOpts),
  }
  path = new DataPath({ config, log, router, channels, relays })
  channels.openAll()

  const listeners: Listener[] = []
  let admin: AdminServer | undefined
  let tick: NodeJS.Timeout | undefined
  /** Stops everything started so far, in the reverse order of start-up; failed starts and close() alike. */
  const teardown = async (): Promise<void> => {
    clearInterval(tick)
    await admin?.close()
    await Promise.all(listeners.map((l) => l.close()))
    path!.close()
    path!.flushLog()
    channels.close()
    await Promise.all([relays.splice?.close(), relays.pipe.close()])
    for (const e of entries.values()) e.pool.close()
  }
  try {
    for (const addr of config.listen) {
      const { maxHeaderBytes, headerTimeoutMs } = config.limits
      listeners.push(nativeOk
        ? listenNative(addr, path, maxHeaderBytes, headerTimeoutMs)
        : await listenJs(addr, path, maxHeaderBytes, headerTimeoutMs))
    }
  } catch (err) {
    await teardown()
    throw err instanceof BatonError ? err : new BatonError('BATON_ERR_NATIVE_CALL', `listen failed: ${(err as Error).message}`, { cause: err })
  }
  const snapshot = (): ServerSnapshot[] => [...entries.values()].flatMap((e) => e.pool.servers.map((s) => ({
    service: e.pool.name,
    id: s.id,
    up: s.up,
    weight: s.weight,
    overloaded: s.overloaded,
    active: s.conns.active,
    inactive: s.conns.inactive,
  })))
  if (config.admin !== undefined) {
    try {
      admin = await startAdmin(config.admin, { servers: snapshot, outcomes: () => path!.outcomes, waiting: () => path!.waiting }, log)
    } catch (err) {
      await teardown()
      throw new BatonError('BATON_ERR_ADMIN_LISTEN', `admin API: ${(err as Error).message}`, { cause: err })
    }
  }
  tick = setInterval(() => {
    const now = performance.now()
    for (const e of entries.values()) e.pool.tick(now)
  }, TICK_MS)
  tick.unref()
  log.info({ listen: listeners.map((l) => `${l.host}:${l.port}`), native: nativeOk, services: entries.size }, 'baton started')
  log.flush() // process managers and scripts wait for this line on a pipe

  let closing: Promise<void> | undefined
  return {
    ports: listeners.map((l) => l.port),
    native: nativeOk,
    admin: admin?.address,
    servers: snapshot,
    close: () => {
      closing ??= (async () => {
        await teardown()
        log.info('baton stopped')
        log.flush()
      })()
      return closing
    },
  }
}
