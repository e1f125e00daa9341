// The dispatcher's own answers: 400, 404, 408, 431, 503, 505, always with Connection: close. The client
// becomes a net.Socket only here (and in the JS relay): building one costs more than the rest of the path.
// After the response the socket keeps reading (and discarding) what the client sends until the client
// closes or drainTimeoutMs passes: closing with unread data would send an RST that can destroy the response.
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

/** The full response bytes for a status and error code, built once per pair. */
export function responseBytes (status: number, code: string): Buffer {
  const k = `${status} ${code}`
  let b = cache.get(k)
  if (b === undefined) {
    const reason = REASONS[status] ?? 'Error'
    const body = `${status} ${reason}\n`
    b = Buffer.from(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\nX-Baton-Error: ${code}\r\n\r\n${body}`, 'latin1')
    cache.set(k, b)
  }
  return b
}

/**
 * Writes the response and closes gracefully. Takes ownership of `fd` (when socket is undefined) or of `socket`.
 * `done` runs once, when the socket has closed.
 */
export function respond (fd: number, socket: net.Socket | undefined, status: number, code: string,
  drainTimeoutMs: number, done?: () => void): void {
  const s = socket ?? new net.Socket({ fd, readable: true, writable: true })
  s.on('error', noop)
  if (done !== undefined) s.once('close', done)
  s.setTimeout(drainTimeoutMs, () => s.destroy())
  s.end(responseBytes(status, code))
  s.resume()
}

function noop (): void {}
