// The benchmark back end: one process, one http.Server, started by bench/run.ts with fork() (IPC).
// Listens on TCP (the direct, splice, pipe, HAProxy and nginx rows) and, when Baton's back-end module is
// built, also takes handed-off connections on a SOCK_SEQPACKET path (the handoff rows).
//   /small            a 100-byte body
//   /a/small, /b/small the same, under two path prefixes that bench/keepalive.ts routes to two services
//   /64k              a 64 KiB body
//   /stream?bytes=N   N bytes, Content-Length framed, written with back-pressure
//   /__stats          the counters below as JSON (also answered over IPC: { type: 'stats' })
// Every connection the server sees is counted: TCP accepts (local port = our port) apart from handed-off
// ones (local port = the dispatcher's). keepAliveTimeout is above every balancer's idle timeout.
// Usage: node dist/bench/backend.js --port=0 [--handoff=/tmp/x/b1.sock]
import http from 'node:http'
import path from 'node:path'
import type { Socket } from 'node:net'

const SMALL = Buffer.alloc(100, 'x')
const BODY_64K = Buffer.alloc(64 * 1024, 'y')
const CHUNK = Buffer.alloc(256 * 1024, 'z')
/** Above HAProxy's and nginx's 60 s and Baton's relay idleTimeoutMs (300 s). */
const KEEP_ALIVE_TIMEOUT_MS = 600_000

export interface BackendStats {
  readonly type: 'stats'
  readonly pid: number
  /** Every connection the http.Server saw. */
  readonly accepted: number
  readonly tcpAccepted: number
  readonly handoffAccepted: number
  readonly active: number
  readonly requests: number
}

export interface BackendReady {
  readonly type: 'ready'
  readonly port: number
  /** 'ok', or why handed-off connections cannot be taken. */
  readonly handoff: string
}

const counters = { accepted: 0, tcpAccepted: 0, handoffAccepted: 0, active: 0, requests: 0 }

function stats (): BackendStats {
  return { type: 'stats', pid: process.pid, ...counters }
}

function parseArgs (argv: readonly string[]): { port: number, handoff: string | undefined } {
  let port = 0
  let handoff: string | undefined
  for (const a of argv) {
    if (a.startsWith('--port=')) port = Number(a.slice(7))
    else if (a.startsWith('--handoff=')) handoff = a.slice(10)
  }
  return { port, handoff }
}

function streamBody (res: http.ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) })
  let left = total
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length)
      left -= n
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))
      if (!more && left > 0) { res.once('drain', pump); return }
    }
    res.end()
  }
  res.once('close', () => { left = 0 })
  pump()
}

function handle (req: http.IncomingMessage, res: http.ServerResponse): void {
  counters.requests++
  const url = req.url ?? '/'
  if (url === '/small' || url === '/a/small' || url === '/b/small') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(SMALL.length) })
    res.end(SMALL)
  } else if (url === '/64k') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY_64K.length) })
    res.end(BODY_64K)
  } else if (url.startsWith('/stream')) {
    const bytes = Number(new URL(url, 'http://x').searchParams.get('bytes') ?? '1048576')
    if (!Number.isSafeInteger(bytes) || bytes < 0) { res.writeHead(400); res.end(); return }
    streamBody(res, bytes)
  } else if (url === '/__stats') {
    const body = JSON.stringify(stats())
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
    res.end(body)
  } else {
    res.writeHead(404, { 'content-length': '0' })
    res.end()
  }
}

/** Loads Baton's back-end module and attaches it; returns 'ok' or the reason it could not. */
async function attachHandoff (server: http.Server, socketPath: string): Promise<string> {
  const modPath = path.resolve(__dirname, '..', 'src', 'backend', 'index.js')
  let mod: unknown
  try {
    mod = require(modPath)
  } catch (err) {
    return `Baton's back-end module did not load (${modPath}): ${(err as Error).message.split('\n')[0] ?? ''}`
  }
  const accept = (mod as { acceptHandoffs?: unknown }).acceptHandoffs
  if (typeof accept !== 'function') return `${modPath} does not export acceptHandoffs()`
  try {
    const handle = await (accept as (s: http.Server, o: { path: string }) => Promise<{ mode?: unknown }>)(server, { path: socketPath })
    return handle.mode === 'relay' ? 'ok, but in relay mode: the native addon did not load, so Baton relays instead of handing off' : 'ok'
  } catch (err) {
    return `acceptHandoffs(server, { path: ${socketPath} }) failed: ${(err as Error).message}`
  }
}

async function main (): Promise<void> {
  const { port, handoff } = parseArgs(process.argv.slice(2))
  const server = http.createServer(handle)
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1000
  server.requestTimeout = 0
  let ownPort = -1
  server.on('connection', (sock: Socket) => {
    counters.accepted++
    counters.active++
    if (sock.localPort === ownPort) counters.tcpAccepted++
    else counters.handoffAccepted++
    sock.once('close', () => { counters.active-- })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port, backlog: 4096 }, resolve)
  })
  const addr = server.address()
  ownPort = typeof addr === 'object' && addr !== null ? addr.port : -1
  const handoffState = handoff === undefined ? 'not requested' : await attachHandoff(server, handoff)
  process.on('message', (msg: unknown) => {
    if (typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === 'stats') process.send?.(stats())
  })
  process.on('disconnect', () => process.exit(0))
  const ready: BackendReady = { type: 'ready', port: ownPort, handoff: handoffState }
  if (process.send !== undefined) process.send(ready)
  else console.log(JSON.stringify(ready))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
