// The idle scenario's client: opens `count` keep-alive connections through a target, 256 at a time, sends
// one GET /small on each, reads the response and then leaves the connection open and silent. autocannon
// cannot hold connections idle (it keeps every connection busy), hence this small client.
import net from 'node:net'
import { LatencyHistogram } from './histogram'
import type { Progress } from './load'

const WINDOW = 256
const CONN_TIMEOUT_MS = 10_000
const REQUEST = Buffer.from('GET /small HTTP/1.1\r\nHost: bench\r\n\r\n')

export interface IdleConnections {
  readonly wanted: number
  readonly held: number
  readonly failed: number
  readonly openS: number
  readonly setupP50Ms: number
  readonly setupP99Ms: number
  readonly errorDetail: string
  /** Held connections the other side closed since they were opened. */
  dropped (): number
  /** Destroys every connection and waits until all are closed. */
  close (): Promise<void>
}

/** Resolves when the response head and its Content-Length body have arrived; rejects on error/timeout. */
function openOne (port: number, sockets: net.Socket[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    sockets.push(sock)
    let buf = Buffer.alloc(0)
    const timer = setTimeout(() => sock.destroy(new Error('no response within 10 s')), CONN_TIMEOUT_MS)
    const fail = (err: Error): void => { clearTimeout(timer); reject(err) }
    sock.once('error', fail)
    sock.once('close', () => fail(new Error('closed before the response')))
    sock.once('connect', () => sock.write(REQUEST))
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = buf.subarray(0, end).toString('latin1')
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0)
      if (buf.length < end + 4 + len) return
      clearTimeout(timer)
      sock.removeAllListeners('data')
      sock.removeListener('error', fail)
      sock.removeAllListeners('close')
      sock.on('error', () => {})
      if (!head.startsWith('HTTP/1.1 200')) { sock.destroy(); reject(new Error(head.split('\r\n')[0])); return }
      resolve()
    })
  })
}

/**
 * Opens up to `count` connections. Stops starting new ones after 5 ms per connection (20 s at least) or once
 * more than 5% have failed (a target out of descriptors), and says so in errorDetail.
 */
export async function openIdle (port: number, count: number, progress: Progress): Promise<IdleConnections> {
  const sockets: net.Socket[] = []
  const hist = new LatencyHistogram()
  const errors = new Map<string, number>()
  let held = 0
  let failed = 0
  let next = 0
  const started = Date.now()
  const deadline = started + Math.max(20_000, count * 5)
  const maxFailures = Math.max(50, Math.ceil(count * 0.05))
  let stopped = ''
  const ticker = setInterval(() => progress((Date.now() - started) / 1000, held), 500)
  const worker = async (): Promise<void> => {
    while (next < count) {
      if (stopped === '' && failed > maxFailures) stopped = `stopped after ${failed} failures`
      if (stopped === '' && Date.now() > deadline) stopped = `stopped at the ${((deadline - started) / 1000).toFixed(0)} s deadline`
      if (stopped !== '') return
      next++
      const t0 = process.hrtime.bigint()
      try {
        await openOne(port, sockets)
        hist.record(Number(process.hrtime.bigint() - t0) / 1e6)
        held++
      } catch (err) {
        failed++
        const key = (err as NodeJS.ErrnoException).code ?? (err as Error).message
        errors.set(key, (errors.get(key) ?? 0) + 1)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(WINDOW, count) }, worker))
  clearInterval(ticker)
  const openS = (Date.now() - started) / 1000
  const live = sockets.filter((s) => !s.destroyed)
  let dropped = 0
  for (const s of live) s.once('close', () => { dropped++ })
  return {
    wanted: count,
    held,
    failed,
    openS,
    setupP50Ms: hist.quantileMs(0.5),
    setupP99Ms: hist.quantileMs(0.99),
    errorDetail: [...[...errors].map(([k, n]) => `${n}× ${k}`), stopped].filter((x) => x !== '').join(', '),
    dropped: () => dropped,
    close: async () => {
      await Promise.all(sockets.map(async (s) => {
        if (s.destroyed) return
        await new Promise<void>((resolve) => { s.once('close', () => resolve()); s.destroy() })
      }))
    }
  }
}
