// The answers Baton gives itself instead of a back end (400, 404, 408, 431, 502, 503, 505), byte for byte:
// the dispatcher's (dispatcher/respond.ts), and a back end's when a later request on a kept-alive connection
// breaks a rule it can only see there (backend/reroute.ts). Always Connection: close, with the stable error
// code in X-Baton-Error.

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
