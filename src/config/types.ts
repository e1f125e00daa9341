// The validated, frozen configuration. src/config/load.ts builds it from YAML; nothing else creates one.
// Durations are milliseconds unless the name says otherwise; sizes are bytes.
import type { Pattern } from './pattern'

export interface ListenAddress {
  readonly host: string
  readonly port: number
}

export interface LimitsConfig {
  /** A request head not complete within this gets 408 (default 10000). */
  readonly headerTimeoutMs: number
  /** A request head larger than this gets 431 (default 16384). */
  readonly maxHeaderBytes: number
  /** Relayed servers: connect timeout (default 3000). */
  readonly connectTimeoutMs: number
  /** Relayed connections: idle timeout in both directions (default 300000). */
  readonly idleTimeoutMs: number
  /**
   * After the dispatcher answered a client itself (400, 408, 431, 404, 503), the most time it keeps reading
   * and discarding what the client still sends before it closes the socket, from the answer on, whatever
   * the client does (default 1000).
   */
  readonly drainTimeoutMs: number
  /**
   * The most connections the dispatcher owns at once (heads arriving, answers draining); when a new one
   * would exceed it, the oldest is closed (default 4096).
   */
  readonly maxPendingConns: number
  /** A handoff back end that does not answer its channel's heartbeat within this is taken out of rotation (default 2000). */
  readonly channelTimeoutMs: number
  /** Graceful shutdown (SIGTERM, SIGINT): how long relayed connections may go on after listening stopped (default 10000). */
  readonly shutdownTimeoutMs: number
  /**
   * Rebalancing: a kept-alive connection is moved to shed load at most once per this many ms (default 1000).
   * Moves for a request that routes elsewhere are never held back.
   */
  readonly moveIntervalMs: number
}

export type ForwardMethod = 'handoff' | 'splice' | 'pipe' | 'migrate'

export interface ServerConfig {
  readonly name: string
  /** Handoff servers: the back end's SOCK_SEQPACKET socket path ('@name' = abstract namespace). */
  readonly handoff?: string
  /** Relayed servers: host and port. */
  readonly address?: ListenAddress
  /** Servers on another host (forward: migrate): where that host's `baton agent` listens for the control connection. */
  readonly agent?: ListenAddress
  /** As written; absent = the default, which src/forward/method.ts decides (and all fallbacks). */
  readonly forward?: ForwardMethod
  /** 0..65535, default 1. */
  readonly weight: number
  /** Connection thresholds (ipvsadm -x / -y), 0 = unset. */
  readonly maxConns: number
  readonly minConns: number
  /** Relayed servers only: prefix each connection with a PROXY protocol header. */
  readonly proxyProtocol?: 'v1' | 'v2'
  /** The active check of this server: the service's `health:` with the server's own keys over it; none if absent. */
  readonly health?: HealthCheckConfig
}

/** One server's active health check, defaults filled (see docs/config.md, `health`). */
export interface HealthCheckConfig {
  /** An HTTP check; absent = a TCP connect check. */
  readonly http?: {
    readonly method: string
    readonly path: string
    readonly host?: string
    /** Accepted statuses; absent = any 2xx or 3xx. */
    readonly expect?: readonly number[]
    readonly body?: string
  }
  /** Where to check instead of the server's own address (handoff servers: what the back end reports). */
  readonly address?: ListenAddress
  readonly intervalMs: number
  /** While a server is changing state (HAProxy's fastinter). */
  readonly fastIntervalMs: number
  readonly timeoutMs: number
  readonly rise: number
  readonly fall: number
}

/** What locality and hash schedulers hash or remember (see src/schedulers/keys.ts). */
export type KeySpec =
  | { readonly kind: 'path' }
  | { readonly kind: 'host' }
  | { readonly kind: 'host+path' }
  | { readonly kind: 'header'; readonly name: string }        // name lower-cased
  | { readonly kind: 'cookie'; readonly name: string }
  | { readonly kind: 'client-ip'; readonly prefixLength?: number }
  | { readonly kind: 'capture'; readonly group: number | string }

export interface PersistenceConfig {
  /** ipvsadm -p: default 300 s. */
  readonly timeoutS: number
  /** ipvsadm -M: IPv4 prefix length, default 32 (IPv6: 128). */
  readonly netmask: number
}

export interface ServiceConfig {
  readonly name: string
  readonly scheduler: string
  /** The object the scheduler's factory returned from parseOptions(). */
  readonly schedulerOptions: unknown
  readonly key: KeySpec
  readonly persistent?: PersistenceConfig
  /** Ramp a recovered server's weight up linearly over this many seconds (0 = at once). */
  readonly slowStartS: number
  /** A failed server stays listed with weight 0 instead of going down (ldirectord's quiescent). */
  readonly quiescent: boolean
  /**
   * Later requests on a kept-alive connection: 'reroute' (default) routes each one and moves the connection
   * when its route selects another service; 'sticky' leaves the connection where its first request went.
   */
  readonly keepAlive: 'reroute' | 'sticky'
  /** The service's own `health:` check with defaults filled (servers added at run time get it); none if absent. */
  readonly health?: HealthCheckConfig
  /** The sorry server: used only while no regular server of the service is up. */
  readonly fallback?: ServerConfig
  readonly servers: readonly ServerConfig[]
}

export interface HeaderMatch {
  /** Lower-cased header name. */
  readonly name: string
  /**
   * Exact value (case-sensitive) or an RE2 pattern, tested against the value Node gives the application
   * (request/headers.ts); neither = header present.
   */
  readonly value?: string
  readonly regex?: Pattern
}

export interface RouteMatch {
  readonly path?: string
  readonly pathExact?: string
  /** Tested against the routing path (request/path.ts); its groups feed `capture:` keys. */
  readonly pathRegex?: Pattern
  /** Lower-cased host names; '*.example.com' matches any subdomain (not example.com itself). */
  readonly host?: readonly string[]
  /** Upper-cased methods. */
  readonly method?: readonly string[]
  readonly header?: readonly HeaderMatch[]
}

export interface RouteConfig {
  /** `name` from the config, or `route-<index>`. */
  readonly name: string
  readonly match: RouteMatch
  readonly service: string
}

export interface AdminConfig {
  readonly listen?: ListenAddress
  readonly socket?: string
  /** A non-loopback `listen` is refused unless this is true (and then a token is required). */
  readonly allowRemote?: boolean
  /** Bearer token the write routes require (`admin.token`, or the content of `admin.tokenFile`). */
  readonly token?: string
  /** Where the token was read from, when it came from a file (absolute). */
  readonly tokenFile?: string
}

/** `migrate:`: cross-host handoff to `agent:` servers (docs/config.md, docs/migrate-forward.md). */
export interface MigrateConfig {
  /** The control connections' shared secret (`secret`, or the content of `secretFile`). */
  readonly secret: string
  /** Where the secret was read from, when it came from a file (absolute). */
  readonly secretFile?: string
  /** The nft map of steered flows (`ipv4_addr . inet_service : mark`, flags timeout), made by `baton host dispatcher`. */
  readonly flowTable: { readonly table: string; readonly map: string }
  /** How long a flow stays steered after its agent reported it closed (default 3000). */
  readonly graceMs: number
  /** The control round trip limit: MIGRATE to READY, and the liveness pings (default 1000). */
  readonly timeoutMs: number
}

export interface Config {
  /** Absolute path of the file this came from ('' for an in-memory config). */
  readonly file: string
  readonly listen: readonly ListenAddress[]
  readonly admin?: AdminConfig
  /** Reload when the file changes (fs.watch on its directory, debounced). */
  readonly watch: boolean
  readonly limits: LimitsConfig
  /** Present when any server is given as `agent:` (checks.ts requires it then). */
  readonly migrate?: MigrateConfig
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' }
  readonly services: readonly ServiceConfig[]
  readonly routes: readonly RouteConfig[]
}
