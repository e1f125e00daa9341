// The back end without the native addon: the dispatcher cannot pass descriptors, so it relays each
// connection to a Unix stream socket at the handoff path, prefixed with a PROXY v2 header carrying the
// client's address. This listener reads that header, restores the address on the socket, and hands the
// socket (with any bytes read past the header) to the http.Server.
import type http from 'node:http'
import net from 'node:net'
import fs from 'node:fs'
import { BatonError } from '../errors'
import { parseProxyHeader, type ProxyHeader } from '../protocol/proxy'
import type { AcceptHandoffsOptions, HandoffHandle } from './index'

const HEADER_TIMEOUT_MS = 5000

export async function listenRelayFallback (server: http.Server, options: AcceptHandoffsOptions,
  onError: (err: Error) => void): Promise<HandoffHandle> {
  if (!options.path.startsWith('@')) fs.rmSync(options.path, { force: true })
  const relay = net.createServer((socket) => readProxyHeader(socket, server, onError))
  await new Promise<void>((resolve, reject) => {
    relay.once('error', (err) => reject(new BatonError('BATON_ERR_BACKEND_ATTACH',
      `cannot listen on ${options.path}: ${err.message}`, { cause: err })))
    relay.listen({ path: options.path }, () => resolve())
  })
  if (!options.path.startsWith('@')) fs.chmodSync(options.path, options.mode ?? 0o600)
  return {
    path: options.path,
    mode: 'relay',
    get channels () { return 0 },
    close: () => new Promise<void>((resolve) => relay.close(() => resolve())),
  }
}

function readProxyHeader (socket: net.Socket, server: http.Server, onError: (err: Error) => void): void {
  let buf: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => socket.destroy(), HEADER_TIMEOUT_MS)
  const onData = (chunk: Buffer): void => {
    buf = Buffer.concat([buf, chunk])
    let parsed: ProxyHeader | null
    try {
      parsed = parseProxyHeader(buf)
    } catch (err) {
      clearTimeout(timer)
      onError(err as Error)
      socket.destroy()
      return
    }
    if (parsed === null) return // incomplete
    clearTimeout(timer)
    socket.off('data', onData)
    socket.pause()
    const rest = buf.subarray(parsed.length)
    if (rest.length > 0) socket.unshift(rest)
    if (parsed.command === 'PROXY' && parsed.family !== 'UNKNOWN') {
      Object.defineProperty(socket, 'remoteAddress', { value: parsed.sourceAddress, configurable: true })
      Object.defineProperty(socket, 'remotePort', { value: parsed.sourcePort, configurable: true })
      Object.defineProperty(socket, 'remoteFamily', { value: parsed.family === 'TCP4' ? 'IPv4' : 'IPv6', configurable: true })
    }
    server.emit('connection', socket)
    socket.resume()
  }
  socket.on('data', onData)
  socket.on('error', () => socket.destroy())
}
