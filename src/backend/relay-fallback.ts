// The back end without the native addon: the dispatcher cannot pass descriptors, so it relays each
// connection to a Unix stream socket at the handoff path, prefixed with a PROXY v2 header carrying the
// client's address. This listener reads that header, restores the address on the socket, and hands the
// socket (with any bytes read past the header) to the http.Server.
//
// The socket file is created as the addon's is: its mode fixed before anyone can reach it, a live back
// end's never taken, a dead one's replaced (net/unix-socket.ts listenUnix). An abstract '@name' is refused
// here: without the addon there is no SO_PEERCRED check, and any uid can reach an abstract name, so every
// local user could send this back end requests and forge their client address in a PROXY header.
import type http from 'node:http'
import net from 'node:net'
import { parseProxyHeader, type ProxyHeader } from '../protocol/proxy'
import { isAbstract, listenUnix, unlinkIfSame } from '../net/unix-socket'
import { attachError, attachFailure } from './attach-error'
import type { HandoffHandle } from './index'

const HEADER_TIMEOUT_MS = 5000

/** Rejects with BATON_ERR_BACKEND_ATTACH naming `socketPath`; nothing is left open or on disk then. */
export async function listenRelayFallback (server: http.Server, socketPath: string, mode: number,
  onError: (err: Error) => void): Promise<HandoffHandle> {
  if (isAbstract(socketPath)) {
    throw attachError(socketPath, 'an abstract name needs the native addon (SO_PEERCRED): without it any local ' +
      'user could reach this back end; use a socket file path')
  }
  const relay = net.createServer((socket) => readProxyHeader(socket, server, onError))
  const id = await listenUnix(relay, socketPath, mode, attachFailure(socketPath))
  let closed = false
  return {
    path: socketPath,
    mode: 'relay',
    get channels () { return 0 },
    setState: () => {},
    setWeight: () => {},
    close: async () => {
      if (closed) return
      closed = true
      unlinkIfSame(socketPath, id) // before the listener closes: the name can then never be a successor's
      await new Promise<void>((resolve) => relay.close(() => resolve()))
    },
  }
}

function readProxyHeader (socket: net.Socket, server: http.Server, onError: (err: Error) => void): void {
  let buf: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => socket.destroy(), HEADER_TIMEOUT_MS)
  socket.once('close', () => clearTimeout(timer)) // a peer that leaves before its header holds no timer
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
