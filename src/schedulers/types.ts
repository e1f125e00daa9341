// The scheduler contract (IPVS ip_vs_scheduler + Pingora BackendSelection + Envoy factory).
// Schedulers are pure: no I/O, no timers, no allocation per pick, never throw from pick().

/** One real server as a scheduler sees it. Only the cluster code writes these fields. */
export interface RealServer {
  /** Unique within its service: the server's `name` from the config. */
  readonly id: string
  /** Position in the service's config list: Baton iterates in config order (the kernel: newest first). */
  readonly index: number
  /** Address used by hash schedulers that hash the server itself (mh). Handoff servers use their socket path. */
  readonly host: string
  readonly port: number
  /** 0..65535; 0 = quiesced: no new connections, existing ones untouched. */
  weight: number
  /** Last non-zero weight (mh builds its table from it, like the kernel's last_weight). */
  lastWeight: number
  /** false = down (channel closed, health check failed). Only health/channel code writes it. */
  up: boolean
  /** LVS's OVERLOAD flag, set and cleared by the threshold rule in cluster/real-server.ts. */
  overloaded: boolean
  /** Upper/lower connection thresholds (ipvsadm -x / -y); 0 = unset. */
  readonly maxConns: number
  readonly minConns: number
  /** LVS counters, fed by forwarding feedback only. overhead = active * 256 + inactive. */
  readonly conns: { active: number; inactive: number }
}

/** What a pick may look at. Reused between picks by the caller: do not keep a reference. */
export interface PickContext {
  /** Client IP as a string (IPv4 dotted or IPv6), from the accepted socket. */
  readonly clientAddress: string
  readonly clientPort: number
  /** The service's key for this request (path, host+path, header, ...); undefined = key missing. */
  readonly hashKey: string | undefined
  /** Ids that already failed for this connection (HAProxy's `avoid`). */
  readonly avoid: ReadonlySet<string> | undefined
  /** Milliseconds, monotonic (performance.now() in production, a fake clock in tests). */
  readonly now: number
}

export interface Scheduler {
  /** Sync, no I/O, never throws; null = nothing available (the caller answers 503). */
  pick (ctx: PickContext): RealServer | null
  /** The set, a weight or a threshold changed (IPVS add_dest/del_dest/upd_dest). */
  update? (servers: readonly RealServer[]): void
  /**
   * One server's counters or OVERLOAD flag changed (cluster bind/feedback/reset). Schedulers that keep
   * an index over the counters (lc wlc sed nq lblc lblcr) need every such change reported here; the
   * cluster code, the only writer of those fields, does so. Hot path: O(log n), no allocation.
   */
  changed? (server: RealServer): void
  /** Periodic housekeeping (LVS's GC timer): expire locality entries. Called about once a second. */
  tick? (now: number): void
  close? (): void
}

export interface SchedulerFactory<O = unknown> {
  /** === file name === config value (`wlc` lives in src/schedulers/wlc.ts). */
  readonly name: string
  /** 1-3 lines, printed by `baton --list-schedulers`. */
  readonly description: string
  /** Whether the scheduler reads PickContext.hashKey (lblc, lblcr, dh, sh, mh). */
  readonly usesKey: boolean
  /** Config time only. `path` is the dotted config path of the options object; throws ConfigError. */
  parseOptions (raw: unknown, path: string): O
  create (servers: readonly RealServer[], options: O): Scheduler
}
