// The nft map of migrated flows (`table ip baton`, map `flows` of `ipv4_addr . inet_service : mark`, flags
// timeout, made by `baton host dispatcher`): the client's address and port -> a mark. The prerouting chain
// drops mark FREEZE_MARK (a flow being dumped) and routes mark N by `ip rule fwmark N lookup N` to agent N's
// host (migrate-route.ts). Every element carries a timeout, so nothing outlives a dispatcher crash by more
// than FLOW_TIMEOUT_MS: live flows are refreshed (replaced, timeout renewed) every REFRESH_MS while their
// agent's control connection says they live; a flow the agent reports CLOSED is deleted after graceMs; a flow
// whose CLOSED never comes (its agent went away) is no longer refreshed and expires.
import type { Config } from '../config/types'
import { BatonError, BatonNativeError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import { FROZEN_MARK } from '../host/nft-table'
import { errnoName } from '../native/errno'
import { NFT_MAX_BATCH } from '../native/nft'
import type { FlowEnds, MoveOutResult, NftElement, NftSetHandle } from '../native/types'

/** The frozen flow's mark (host/nft-table.ts: the prerouting chain drops it). */
export const FREEZE_MARK = FROZEN_MARK
/** A steered flow's element lives this long unless refreshed. */
export const FLOW_TIMEOUT_MS = 10 * 60_000
/** Live flows are refreshed this often (well before FLOW_TIMEOUT_MS). */
export const REFRESH_MS = 60_000

/** One migrated flow: the client's end, the mark steering it. */
export interface Flow { readonly address: string; readonly port: number; readonly mark: number }

/**
 * Opens the flow map, or throws BATON_ERR_MIGRATE_UNAVAILABLE saying why migrate cannot run here (no addon,
 * no CAP_NET_ADMIN, no such map, a map of the wrong type). The caller owns the handle.
 */
export function openFlowMap (table: string, map: string): NftSetHandle {
  const unavailable = (why: string, cause?: unknown): BatonError => new BatonError('BATON_ERR_MIGRATE_UNAVAILABLE',
    `forward: migrate cannot run: ${why}`, { source: 'config', cause })
  if (!native.available) throw unavailable(`the native addon did not load (${native.loadError?.message ?? ''})`)
  let h: NftSetHandle
  try {
    h = native.nftOpen({ family: 'ip', table, set: map })
  } catch (err) {
    const e = err as BatonNativeError
    if (e.errnoCode === 'EPERM') throw unavailable('this process lacks CAP_NET_ADMIN (TCP_REPAIR and nftables need it; run as root or grant the capability)', err)
    if (e.errnoCode === 'ENOENT') throw unavailable(`no nft map "ip ${table} ${map}" (run \`baton host dispatcher --vip VIP\` first)`, err)
    throw unavailable(`cannot open nft map "ip ${table} ${map}": ${e.message}`, err)
  }
  if (!h.isMap || !h.hasTimeout) {
    h.close()
    throw unavailable(`nft "ip ${table} ${map}" must be a map of ipv4_addr . inet_service : mark with flags timeout`)
  }
  return h
}

/** What the migrate forwarder gets from the config (ForwarderOptions.migrate): `migrate:` and the VIPs. */
export function migrateOptionsOf (config: Config): { migrate?: Config['migrate'] & { vips: readonly string[] } } {
  if (config.migrate === undefined) return {}
  return { migrate: { ...config.migrate, vips: config.listen.map((l) => l.host) } }
}

/**
 * Before anything listens: a config with agent: servers needs what migrate needs here (the addon,
 * CAP_NET_ADMIN, the flow map). Throws BATON_ERR_MIGRATE_UNAVAILABLE; never degrades silently.
 */
export function checkMigrateReady (config: Config): void {
  const agents = config.services.some((s) => s.servers.some((v) => v.agent !== undefined) || s.fallback?.agent !== undefined)
  if (!agents) return
  const m = config.migrate
  if (m === undefined) throw new BatonError('BATON_ERR_MIGRATE_UNAVAILABLE', 'agent: servers need the top-level migrate: settings', { source: 'config' })
  openFlowMap(m.flowTable.table, m.flowTable.map).close()
}

export class FlowTable<O> {
  readonly #nft: NftSetHandle
  readonly #log: Logger
  readonly #graceMs: number
  readonly #freezeMs: number
  /** Live flows by owner (an agent's instance) and connection id: what the refresh renews. */
  readonly #live = new Map<O, Map<number, Flow>>()
  /**
   * Who holds each element now ("address port"): a client port reused for a new connection (loopback reuses
   * TIME_WAIT tuples) takes the element over, so the old connection's CLOSED must not delete it.
   */
  readonly #holder = new Map<string, { readonly owner: O; readonly id: number }>()
  #dying: Flow[] = []
  #graceTimer: NodeJS.Timeout | undefined
  readonly #refresh: NodeJS.Timeout
  readonly #one: NftElement[] = [{ address: '', port: 0 }]

  /** freezeMs: a frozen element's timeout (a crash mid-migration unfreezes the client by itself). */
  constructor (nft: NftSetHandle, log: Logger, graceMs: number, freezeMs: number) {
    this.#nft = nft
    this.#log = log
    this.#graceMs = graceMs
    this.#freezeMs = freezeMs
    this.#refresh = setInterval(() => { this.#renew() }, REFRESH_MS)
    this.#refresh.unref()
  }

  /** How many flows are steered now (tests, metrics). */
  get size (): number {
    let n = 0
    for (const m of this.#live.values()) n += m.size
    return n
  }

  /**
   * freeze + repairDump + repairClose + steer(mark) in one addon call (NftSetHandle.moveOut), with this
   * table's timeouts; the frozen element takes over a stale one as freeze does. Returns the MIGRATE frame:
   * `prefix` (encodeMigratePrefix) with the dumped state written after it, the state's addresses those of
   * `ends` (a ForwardConn: its client and local ends). Throws BatonNativeError if the freeze fails (fd
   * untouched) or the dump does (fd out of repair mode and still the caller's, the flow unfrozen again).
   * Otherwise fd is closed; a failed steer is steerError, not thrown: the flow is still frozen, restore the
   * connection here from the frame's state (native.repairRestoreWire(frame, stateAt, ...)) and unfreeze it. Hot.
   *
   * steerFirst: no freeze; the first element the flow gets is its steer, and the dump follows (one
   * transaction instead of two). Only where none of the flow's packets can reach the old socket meanwhile:
   * early demux off on this host, and a mark that routes to another host (migrate.ts decides). Then fd is
   * also left open, in repair mode: the caller closes it (sending nothing) once its MIGRATE is written.
   */
  moveOut (fd: number, ends: FlowEnds, prefix: Buffer, mark: number, steerFirst = false): MoveOutResult {
    try {
      return this.#nft.moveOut(fd, ends, prefix, steerFirst
        ? { freezeMark: mark, freezeTimeoutMs: FLOW_TIMEOUT_MS, steerMark: mark, steerTimeoutMs: FLOW_TIMEOUT_MS, keepOpen: true }
        : { freezeMark: FREEZE_MARK, freezeTimeoutMs: this.#freezeMs, steerMark: mark, steerTimeoutMs: FLOW_TIMEOUT_MS })
    } catch (err) {
      const un = (err as { unfreezeErrno?: unknown } | null)?.unfreezeErrno
      if (typeof un === 'number') {
        this.#log.warn({ err: `nft delete: ${errnoName(un)}`, code: 'BATON_ERR_MIGRATE_FAILED' },
          'unfreeze after a failed dump failed (the element expires)')
      }
      throw err
    }
  }

  /** Lets the flow's packets reach this host again; never throws (a missing element is fine). */
  unfreeze (address: string, port: number): void {
    this.#elem(address, port, undefined, 0)
    try { this.#nft.delete(this.#one) } catch (err) {
      if ((err as BatonNativeError).errnoCode !== 'ENOENT') this.#log.warn({ err: (err as Error).message, code: 'BATON_ERR_MIGRATE_FAILED' }, 'unfreeze failed')
    }
  }

  /** A steered flow, refreshed until closed() or forget(). */
  track (owner: O, id: number, flow: Flow): void {
    const key = `${flow.address} ${flow.port}`
    const before = this.#holder.get(key)
    if (before !== undefined) this.#untrack(before.owner, before.id)
    this.#holder.set(key, { owner, id })
    let m = this.#live.get(owner)
    if (m === undefined) this.#live.set(owner, m = new Map())
    m.set(id, flow)
  }

  #untrack (owner: O, id: number): Flow | undefined {
    const m = this.#live.get(owner)
    const f = m?.get(id)
    if (f === undefined) return undefined
    m!.delete(id)
    if (m!.size === 0) this.#live.delete(owner)
    const key = `${f.address} ${f.port}`
    const h = this.#holder.get(key)
    if (h?.owner === owner && h.id === id) this.#holder.delete(key)
    return f
  }

  /** The owner reported these connections ended: their elements go after graceMs. Returns how many it knew. */
  closed (owner: O, ids: readonly number[]): number {
    let n = 0
    for (const id of ids) {
      const f = this.#untrack(owner, id)
      if (f === undefined) continue
      this.#dying.push(f)
      n++
    }
    if (n > 0 && this.#graceTimer === undefined) {
      this.#graceTimer = setTimeout(() => { this.#graceTimer = undefined; this.#reap() }, this.#graceMs)
      this.#graceTimer.unref()
    }
    return n
  }

  /**
   * The owner's connections are lost (its agent died, or another agent process answers for its host now):
   * their elements go after graceMs, like closed ones, so no stale element steers a later connection from
   * the same client port (pitfall 8). Returns how many.
   */
  lost (owner: O): number {
    const ids = [...(this.#live.get(owner)?.keys() ?? [])]
    return this.closed(owner, ids)
  }

  /** The owner is gone for good: its flows are no longer refreshed and expire. Returns how many. */
  forget (owner: O): number {
    const ids = [...(this.#live.get(owner)?.keys() ?? [])]
    for (const id of ids) this.#untrack(owner, id)
    return ids.length
  }

  /** Flows the owner holds. */
  count (owner: O): number { return this.#live.get(owner)?.size ?? 0 }

  /** Stops the timers and closes the handle; elements stay in the kernel until they expire. */
  close (): void {
    clearInterval(this.#refresh)
    clearTimeout(this.#graceTimer)
    this.#nft.close()
  }

  #elem (address: string, port: number, mark: number | undefined, timeoutMs: number): NftElement {
    const e = { address, port, ...(mark === undefined ? {} : { mark, timeoutMs }) }
    this.#one[0] = e
    return e
  }

  /** Deletes what waited its grace, in batches; one failed batch is retried element by element. */
  #reap (): void {
    // A flow whose client port a new migrated connection took meanwhile keeps its element.
    const dying = this.#dying.filter((f) => !this.#holder.has(`${f.address} ${f.port}`))
    this.#dying = []
    for (let i = 0; i < dying.length; i += NFT_MAX_BATCH) {
      const batch = dying.slice(i, i + NFT_MAX_BATCH).map((f) => ({ address: f.address, port: f.port }))
      try { this.#nft.delete(batch) } catch {
        for (const f of batch) this.unfreeze(f.address, f.port) // ENOENT: expired or taken over already
      }
    }
  }

  /** Renews every live flow's timeout; an element that vanished (expired, deleted by hand) is added again. */
  #renew (): void {
    const all: NftElement[] = []
    for (const m of this.#live.values()) {
      for (const f of m.values()) all.push({ address: f.address, port: f.port, mark: f.mark, timeoutMs: FLOW_TIMEOUT_MS })
    }
    for (let i = 0; i < all.length; i += NFT_MAX_BATCH) {
      const batch = all.slice(i, i + NFT_MAX_BATCH)
      try { this.#nft.replace(batch) } catch {
        for (const e of batch) {
          try { this.#nft.replace([e]) } catch {
            try { this.#nft.add([e]) } catch (err) {
              this.#log.warn({ err: (err as Error).message, code: 'BATON_ERR_MIGRATE_FAILED' }, 'flow refresh failed')
            }
          }
        }
      }
    }
  }
}
