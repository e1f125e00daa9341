// Per-request routing through class Baton for relayed servers (issue 12): one kept-alive client connection
// whose requests go to two services in turn, each relayed (splice, then pipe) to its own server process.
// Every response comes from its own service's server, in order, sequential and pipelined; each server's own
// log shows it never saw the other service's requests.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import readline from 'node:readline'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import type { Baton } from '../../src/baton'
import { native } from '../../src/native/binding'
import { fdCount, harness, parseResponses, waitFor, type Harness } from '../helpers/cluster'

// A real server process: answers `<name> <METHOD> <url> <bodyBytes>` with x-server, logs `SEEN <url>`.
const SERVER = `
const http = require('node:http')
const name = process.argv[1]
const server = http.createServer((req, res) => {
  let n = 0
  req.on('data', (d) => { n += d.length })
  req.on('end', () => {
    process.stdout.write('SEEN ' + req.url + '\\n')
    const body = name + ' ' + req.method + ' ' + req.url + ' ' + n
    res.writeHead(200, { 'x-server': name, 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})
server.keepAliveTimeout = 30000
server.listen(0, '127.0.0.1', () => process.stdout.write('LISTEN ' + server.address().port + '\\n'))
`

/** Pipe fds of this process (the splice relay's pool, the server processes' stdio). */
function pipeFds (): number {
  let n = 0
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('pipe:')) n++
    } catch {}
  }
  return n
}

interface Upstream { child: ChildProcess; port: number; seen: string[] }

async function startServer (name: string): Promise<Upstream> {
  const child = spawn(process.execPath, ['-e', SERVER, name], { stdio: ['ignore', 'pipe', 'inherit'] })
  const seen: string[] = []
  let onPort!: (p: number) => void
  const port = new Promise<number>((resolve) => { onPort = resolve })
  readline.createInterface({ input: child.stdout! }).on('line', (l) => {
    if (l.startsWith('LISTEN ')) onPort(Number(l.slice(7)))
    else if (l.startsWith('SEEN ')) seen.push(l.slice(5))
  })
  return { child, port: await port, seen }
}

const GET = (p: string): string => `GET ${p} HTTP/1.1\r\nHost: example.com\r\n\r\n`
const POST = (p: string, body: string): string =>
  `POST ${p} HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`

describe.runIf(process.platform === 'linux' && native.available).each(['splice', 'pipe'])('Baton, %s servers', (method) => {
  let h: Harness
  let baton: Baton
  let pub: Upstream
  let adm: Upstream
  let startFds: number

  beforeAll(async () => {
    h = harness()
    ;[pub, adm] = await Promise.all([startServer('pub'), startServer('adm')])
    baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - { name: pub, scheduler: rr, servers: [ { name: p1, address: 127.0.0.1:${pub.port}, forward: ${method} } ] }
  - { name: adm, scheduler: rr, servers: [ { name: a1, address: 127.0.0.1:${adm.port}, forward: ${method} } ] }
routes:
  - { name: admin, match: { path: /admin/ }, service: adm }
  - { name: public, service: pub }
`)
    startFds = fdCount() - pipeFds() // the switch's own (listener, relay thread, ...) and the server processes' pipes
  })
  afterAll(async () => {
    await h.close()
    for (const u of [pub, adm]) u.child.kill('SIGKILL')
  })

  async function connect (): Promise<{ s: net.Socket; raw: () => string }> {
    const s = net.connect(baton.ports[0]!, '127.0.0.1')
    let raw = ''
    s.on('data', (d: Buffer) => { raw += d.toString('latin1') })
    s.on('error', () => {})
    await new Promise((resolve) => s.once('connect', resolve))
    return { s, raw: () => raw }
  }

  it('sequential: each request is answered by its own service, on one connection', async () => {
    const { s, raw } = await connect()
    const paths = ['/public/1', '/admin/2', '/admin/3', '/public/4', '/admin/5', '/public/6']
    for (const [i, p] of paths.entries()) {
      s.write(i === 2 ? POST(p, 'body!') : GET(p))
      await waitFor(() => parseResponses(raw()).length === i + 1)
    }
    const rs = parseResponses(raw())
    expect(rs.map((r) => r.body)).toEqual(paths.map((p, i) =>
      `${p.startsWith('/admin/') ? 'adm' : 'pub'} ${i === 2 ? 'POST' : 'GET'} ${p} ${i === 2 ? 5 : 0}`))
    expect(s.destroyed).toBe(false)
    s.destroy()
    expect(pub.seen.filter((u) => u.startsWith('/admin/'))).toEqual([])
    expect(adm.seen.filter((u) => u.startsWith('/public/'))).toEqual([])
  })

  it('pipelined: responses come back in order, each from its own service; /admin never reaches pub', async () => {
    const { s, raw } = await connect()
    const paths = ['/public/p1', '/public/p2', '/admin/p3', '/public/p4', '/admin/p5', '/admin/p6', '/public/p7']
    s.write(paths.map((p) => p === '/public/p4' ? POST(p, 'xyz') : GET(p)).join(''))
    await waitFor(() => parseResponses(raw()).length === paths.length, 5000)
    const rs = parseResponses(raw())
    expect(rs.map((r) => r.headers['x-server'])).toEqual(paths.map((p) => p.startsWith('/admin/') ? 'adm' : 'pub'))
    expect(rs.map((r) => r.body.split(' ')[2])).toEqual(paths)
    expect(rs[3]!.body).toBe('pub POST /public/p4 3')
    s.destroy()
    expect(pub.seen.filter((u) => u.startsWith('/admin/'))).toEqual([])
    expect(adm.seen.filter((u) => u.startsWith('/public/'))).toEqual([])
    expect(adm.seen.filter((u) => u.includes('/p'))).toEqual(['/admin/p3', '/admin/p5', '/admin/p6'])
  })

  it('the dispatcher holds no descriptor for finished connections', async () => {
    // Pooled pipes (splice keeps a few idle ones for reuse, 2 fds each) are not connections.
    const open = (): number => fdCount() - pipeFds()
    await waitFor(() => open() === startFds, 3000).catch(() => {})
    expect(open()).toBe(startFds)
  })
})

describe.runIf(process.platform === 'linux' && native.available)('Baton, a relayed service and a handoff service', () => {
  let h: Harness
  let baton: Baton
  let pub: Upstream

  beforeAll(async () => {
    h = harness()
    pub = await startServer('pub')
    await h.backend('a1')
    baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - { name: pub, scheduler: rr, servers: [ { name: p1, address: 127.0.0.1:${pub.port}, forward: splice } ] }
  - { name: adm, scheduler: rr, servers: [ { name: a1, handoff: ${h.sock('a1')} } ] }
routes:
  - { name: admin, match: { path: /admin/ }, service: adm }
  - { name: public, service: pub }
`)
  })
  afterAll(async () => {
    await h.close()
    pub.child.kill('SIGKILL')
  })

  const who = (r: { headers: Record<string, string> }): string | undefined => r.headers['x-server'] ?? r.headers['x-baton-backend']

  it('one connection moves between the relay and the back end, sequential and pipelined', async () => {
    const s = net.connect(baton.ports[0]!, '127.0.0.1')
    let raw = ''
    s.on('data', (d: Buffer) => { raw += d.toString('latin1') })
    await new Promise((resolve) => s.once('connect', resolve))
    const seq = ['/public/1', '/admin/2', '/public/3', '/admin/4']
    for (const [i, p] of seq.entries()) {
      s.write(GET(p))
      await waitFor(() => parseResponses(raw).length === i + 1, 5000)
    }
    const piped = ['/public/5', '/admin/6', '/admin/7', '/public/8', '/admin/9']
    s.write(piped.map(GET).join(''))
    await waitFor(() => parseResponses(raw).length === seq.length + piped.length, 5000)
    const rs = parseResponses(raw)
    const paths = [...seq, ...piped]
    expect(rs.map(who)).toEqual(paths.map((p) => p.startsWith('/admin/') ? 'a1' : 'pub'))
    expect(rs.map((r) => r.body.includes(`${paths[rs.indexOf(r)]}`))).toEqual(paths.map(() => true))
    expect(pub.seen.filter((u) => u.startsWith('/admin/'))).toEqual([])
    s.destroy()
  })
})
