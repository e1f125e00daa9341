// Unix socket helpers for the back-end socket tests: what a process has bound (from /proc), and a request
// over a no-addon back end's stream socket with a PROXY v2 header.
import fs from 'node:fs'
import net from 'node:net'
import { encodeProxyV2 } from '../../src/protocol/proxy'

/** Every bound name in this network namespace ('@...' = abstract). */
export const unixNames = (): string[] => fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)
  .map((l) => l.trim().split(/\s+/)[7]).filter((p): p is string => p !== undefined)

/** Every name the process's Unix sockets are bound to ('@...' = abstract), from its fds and /proc/net/unix. */
export function boundNames (pid: number): string[] {
  const inodes = new Set<string>()
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))
    if (m !== null) inodes.add(m[1]!)
  }
  return fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f[7] !== undefined && inodes.has(f[6]!)).map((f) => f[7]!)
}

/** GET / over a relay back end's stream socket, as the dispatcher's pipe forwarder would send it. */
export function getRelayed (where: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(where.startsWith('@') ? `\0${where.slice(1)}` : where)
    let data = ''
    s.on('connect', () => {
      s.write(encodeProxyV2({ clientAddress: '192.0.2.7', clientPort: 4242, localAddress: '127.0.0.1', localPort: 80 }))
      s.write('GET / HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n')
    })
    s.on('data', (d) => { data += d.toString() })
    s.on('end', () => { s.destroy(); resolve(data.slice(data.indexOf('\r\n\r\n') + 4)) })
    s.on('error', reject)
  })
}

