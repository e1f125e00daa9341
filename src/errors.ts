// Every public error Baton raises, with a stable code. Callers match on `err.code`, never on the message.
// docs/errors.md lists every code; test/unit/errors.test.ts fails when the two drift apart.
// To add a code: one line in CODES (keep the area grouping), one entry in docs/errors.md.

export type ErrorSource = 'client' | 'backend' | 'internal' | 'config'

export const CODES = {
  // config (found before anything listens)
  BATON_ERR_CONFIG_INVALID: 'the configuration has errors; see `issues`',
  BATON_ERR_CONFIG_READ: 'the configuration file could not be read',
  // client input, answered by the dispatcher itself
  BATON_ERR_BAD_REQUEST: 'malformed or ambiguous request head (400)',
  BATON_ERR_HEADER_TOO_LARGE: 'request head larger than limits.maxHeaderBytes (431)',
  BATON_ERR_HEADER_TIMEOUT: 'request head not complete within limits.headerTimeoutMs (408)',
  BATON_ERR_CLIENT_GONE: 'the client closed or reset before the request head was complete',
  BATON_ERR_NO_ROUTE: 'no route matched the request (404)',
  BATON_ERR_PENDING_LIMIT: 'the dispatcher held limits.maxPendingConns connections: the oldest was closed unanswered',
  // scheduling and forwarding
  BATON_ERR_NO_SERVER: 'no real server available for the service (503)',
  BATON_ERR_HANDOFF_FAILED: 'sending the connection to a real server failed',
  BATON_ERR_CHANNEL_DOWN: 'the handoff channel to a real server is closed or does not answer',
  BATON_ERR_CHANNEL_PEER: 'the peer of a handoff channel failed the credentials check',
  BATON_ERR_CONNECT_FAILED: 'connecting to a relayed real server failed',
  BATON_ERR_CONNECT_TIMEOUT: 'connecting to a relayed real server timed out',
  BATON_ERR_RELAY_RESET: 'a relayed connection was reset mid-stream',
  BATON_ERR_IDLE_TIMEOUT: 'a relayed connection was idle longer than limits.idleTimeoutMs',
  // cross-host handoff (migrate, baton agent)
  BATON_ERR_MIGRATE_UNAVAILABLE: 'migrate cannot run here: no native addon, no CAP_NET_ADMIN, or no nft flow map; Baton refuses to start',
  BATON_ERR_MIGRATE_FAILED: 'a connection could not be migrated to its agent; it was restored on the dispatcher',
  BATON_ERR_MIGRATE_AUTH: 'a migrate control peer failed the shared-secret challenge and was closed',
  BATON_ERR_MIGRATE_CONTROL: 'a migrate control connection is down, timed out, or sent a malformed message',
  // native addon
  BATON_ERR_NATIVE_UNAVAILABLE: 'the native addon did not load; Baton relays in JavaScript',
  BATON_ERR_NATIVE_CALL: 'a system call made by the native addon failed',
  // cluster verbs (reload, admin)
  BATON_ERR_CLUSTER_VERB: 'a cluster change named an unknown service or server, a name in use, or a bad weight',
  // admin API
  BATON_ERR_ADMIN_LISTEN: 'the admin API could not listen on its address or socket',
  BATON_ERR_ADMIN_AUTH: 'an admin write was refused: no or a wrong bearer token, or a browser request',
  BATON_ERR_ADMIN_REQUEST: 'an admin request could not be taken: unknown route, wrong method, or a bad or too large body',
  BATON_ERR_TAKEOVER: 'a takeover restart did not happen or is late: no running Baton answered, or one side waited past --takeover-timeout',
  // back-end module
  BATON_ERR_BACKEND_ATTACH: 'acceptHandoffs could not attach to the handoff socket',
} as const

export type ErrorCode = keyof typeof CODES

export interface BatonErrorOptions {
  cause?: unknown
  source?: ErrorSource
  retryable?: boolean
}

export class BatonError extends Error {
  readonly code: ErrorCode
  readonly source: ErrorSource
  readonly retryable: boolean

  constructor (code: ErrorCode, message: string, options: BatonErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BatonError'
    this.code = code
    this.source = options.source ?? 'internal'
    this.retryable = options.retryable ?? false
  }
}

/** One problem in a configuration file, located in the YAML source. */
export interface ConfigIssue {
  /** Dotted path into the document, e.g. `services.0.servers.1.weight`. */
  readonly path: string
  readonly message: string
  readonly file?: string
  readonly line?: number
  readonly col?: number
}

export class ConfigError extends BatonError {
  readonly issues: readonly ConfigIssue[]

  constructor (issues: readonly ConfigIssue[], options: BatonErrorOptions = {}) {
    super('BATON_ERR_CONFIG_INVALID', issues.map(formatIssue).join('\n'), { ...options, source: 'config' })
    this.name = 'ConfigError'
    this.issues = issues
  }
}

/** `file:line:col: message`, the form editors and CI annotate. */
export function formatIssue (issue: ConfigIssue): string {
  const where = issue.file === undefined
    ? issue.path
    : `${issue.file}:${issue.line ?? 0}:${issue.col ?? 0}`
  return `${where}: ${issue.message}`
}

/** Errors from the addon: `code` is the errno name (ECONNRESET), `errno` the positive number. */
export class BatonNativeError extends BatonError {
  readonly errno: number
  readonly syscall: string
  readonly errnoCode: string

  constructor (syscall: string, errno: number, errnoCode: string) {
    super('BATON_ERR_NATIVE_CALL', `${syscall} failed: ${errnoCode}`, { source: 'internal' })
    this.name = 'BatonNativeError'
    this.errno = errno
    this.syscall = syscall
    this.errnoCode = errnoCode
  }
}
