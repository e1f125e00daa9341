// What the two relays (splice.ts, pipe.ts) share: the error a failed connect becomes, and the PROXY
// protocol header a target asks for.
import { BatonError, BatonNativeError } from '../errors'
import { errnoName } from '../native/errno'
import type { CheckAddress } from '../protocol/handoff'
import { encodeProxyV1, encodeProxyV2 } from '../protocol/proxy'
import type { ForwardConn, ForwardTarget } from './types'

/** Local resource errors: another real server would fail the same way. */
const NOT_RETRYABLE = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'ECANCELED'])

/**
 * The failed() error for a connect that ended with errno: CONNECT_TIMEOUT or CONNECT_FAILED. Retryable,
 * with source 'backend', unless the cause is local (no fds, no memory, forwarder closing).
 */
export function connectError (errno: number, target: string): BatonError {
  const name = errnoName(errno)
  const cause = new BatonNativeError('connect', errno, name)
  const retryable = !NOT_RETRYABLE.has(name)
  const source = retryable ? 'backend' : 'internal'
  if (name === 'ETIMEDOUT') {
    return new BatonError('BATON_ERR_CONNECT_TIMEOUT', `connect to ${target} timed out`, { cause, source, retryable })
  }
  return new BatonError('BATON_ERR_CONNECT_FAILED', `connect to ${target} failed: ${name}`, { cause, source, retryable })
}

/** Where a relayed server answers: its target. */
export function relayCheckAddress (target: ForwardTarget): CheckAddress {
  return target.path !== undefined ? { path: target.path } : { host: target.host, port: target.port }
}

/** The PROXY header for a target, if it wants one. */
export function proxyPrefix (conn: ForwardConn, target: ForwardTarget): Buffer | undefined {
  if (target.proxyProtocol === 'v1') return encodeProxyV1(conn)
  if (target.proxyProtocol === 'v2') return encodeProxyV2(conn)
  return undefined
}
