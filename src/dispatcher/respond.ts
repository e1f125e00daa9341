// The dispatcher's own answers: 400, 404, 408, 431, 502, 503, 505, always with Connection: close. The client
// becomes a net.Socket only here (and in the JS relay): building one costs more than the rest of the path.
// After the response the socket keeps reading (and discarding) what the client sends, because closing with
// unread data sends an RST that can destroy the response in flight; but only until an absolute deadline,
// drainTimeoutMs from the answer, set once and never restarted by the client's bytes, so no client
// behaviour keeps the descriptor longer.
import net from 'node:net'

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
}

const cache = new Map<string, Buffer>()
const RETRY_AFTER_S = 1

/** The full response bytes for a status and error code, built once per pair. */
export function responseBytes (status: number, code: string): Buffer {
  const k = `${status} ${code}`
  let b = cache.get(k)
  if (b === undefined) {
    const reason = REASONS[status] ?? 'Error'
    const body = `${status} ${reason}\n`
    // 503: nothing can serve now; a client may try again shortly (a server recovers, a channel reconnects).
    const retry = status === 503 ? `Retry-After: ${RETRY_AFTER_S}\r\n` : ''
    b = Buffer.from(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n${retry}X-Baton-Error: ${code}\r\n\r\n${body}`, 'latin1')
    cache.set(k, b)
  }
  return b
}

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
