// The dispatcher's own answers: 400, 404, 408, 431, 502, 503, 505, always with Connection: close. The client
// becomes a net.Socket only here (and in the JS relay): building one costs more than the rest of the path.
// After the response the socket keeps reading (and discarding) what the client sends, because closing with
// unread data sends an RST that can destroy the response in flight; but only until an absolute deadline,
// drainTimeoutMs from the answer, set once and never restarted by the client's bytes, so no client
// behaviour keeps the descriptor longer.
import net from 'node:net'
import { responseBytes } from '../protocol/answers'

/**
 * Writes the response and closes gracefully, by `drainTimeoutMs` at the latest. Takes ownership of `fd`
 * (when socket is undefined) or of `socket`. `done` runs once, when the socket has closed. Returns the
 * socket, so that the caller can destroy it earlier (shedding).
 */
export function respond (fd: number, socket: net.Socket | undefined, status: number, code: string,
  drainTimeoutMs: number, done?: () => void): net.Socket {
  const s = socket ?? new net.Socket({ fd, readable: true, writable: true })
  const deadline = setTimeout(() => { s.destroy() }, drainTimeoutMs)
  s.on('error', noop)
  s.once('close', () => {
    clearTimeout(deadline)
    done?.()
  })
  s.end(responseBytes(status, code))
  s.resume()
  return s
}

function noop (): void {}
