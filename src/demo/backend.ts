// A demo real server, one process per server in the demo config. It names itself in X-Baton-Backend and
// echoes what it saw (`?delayMs=N` answers after N ms), so `curl -i localhost:8080/...` shows routing and handoff at work:
//   node dist/src/demo/backend.js --name api-1 --handoff /tmp/baton-demo/api-1.sock
//   node dist/src/demo/backend.js --name legacy-1 --listen 127.0.0.1:8181     (a plain TCP server, relayed)
import http from 'node:http'
import { parseArgs } from 'node:util'
import { acceptHandoffs, handoffInfo } from '../backend/index'

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { name: { type: 'string' }, handoff: { type: 'string' }, listen: { type: 'string' } } })
  const name = values.name ?? `backend-${process.pid}`
  let requests = 0
  const server = http.createServer((req, res) => {
    const delayMs = Number(/[?&]delayMs=(\d+)/.exec(req.url ?? '')?.[1] ?? 0)
    if (delayMs > 0) setTimeout(() => answer(req, res), Math.min(delayMs, 60_000))
    else answer(req, res)
  })
  const answer = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    requests++
    const info = handoffInfo(req.socket)
    const body = JSON.stringify({
      backend: name,
      pid: process.pid,
      method: req.method,
      url: req.url,
      host: req.headers.host,
      headers: req.headers,
      client: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
      via: info !== undefined ? `handoff (service ${info.service}, route ${info.route}, conn ${info.connId})` : 'tcp',
      requestsServed: requests,
    }) + '\n'
    res.writeHead(200, { 'content-type': 'application/json', 'x-baton-backend': name, 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }
  server.keepAliveTimeout = 65_000
  if (values.listen !== undefined) {
    const i = values.listen.lastIndexOf(':')
    await new Promise<void>((resolve) => server.listen(Number(values.listen!.slice(i + 1)), values.listen!.slice(0, i), resolve))
  }
  const handle = values.handoff !== undefined ? await acceptHandoffs(server, { path: values.handoff }) : undefined
  const stop = (): void => {
    void (handle?.close() ?? Promise.resolve()).then(() => {
      server.closeIdleConnections()
      server.close(() => process.exit(0))
      setTimeout(() => process.exit(0), 2000).unref()
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.on('disconnect', stop)
  process.send?.({ ready: name })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
