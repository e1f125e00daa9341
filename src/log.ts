// Structured logs (pino). The dispatcher writes one line per connection, so the destination is asynchronous
// (sonic-boom with a small buffer) and flushed on close; fixed keys: svc, backend, conn, fd, err, durMs.
import pino from 'pino'

export type Logger = pino.Logger
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export function createLogger (level: LogLevel = 'info', dest: number | string = 1): Logger {
  const destination = pino.destination({ dest, sync: false, minLength: 4096 })
  return pino({
    level,
    base: { pid: process.pid },
    formatters: { level: (label) => ({ level: label }) },
  }, destination)
}

/** A logger that writes nothing (tests that only look at behaviour). */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}

/**
 * Writes out what is buffered, also when a write is already in flight: sonic-boom's flush() then only
 * waits for that write, and what was logged meanwhile stays buffered (under minLength) until more comes.
 * For the lines a process manager or an operator waits for (started, takeover steps).
 */
export function flushLog (log: Logger): void {
  log.flush(() => { log.flush() })
}
