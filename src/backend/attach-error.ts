// The one way acceptHandoffs fails: BATON_ERR_BACKEND_ATTACH, naming the socket path and the reason.
import { BatonError } from '../errors'

export function attachError (socketPath: string, reason: string, cause?: unknown): BatonError {
  return new BatonError('BATON_ERR_BACKEND_ATTACH', `cannot listen on ${socketPath}: ${reason}`, cause === undefined ? {} : { cause })
}

/** attachError bound to a path, in the shape net/unix-socket.ts takes. */
export const attachFailure = (socketPath: string) => (reason: string, cause?: unknown): BatonError =>
  attachError(socketPath, reason, cause)
