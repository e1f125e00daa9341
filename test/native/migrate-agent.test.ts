// forward: migrate end to end on one host: a real Baton (this process) migrates real connections with
// TCP_REPAIR to a real `baton agent` child process, which restores them and hands them to a real back end
// (the demo back end, over its handoff socket). Everything runs in one fresh network namespace with the nft
// table of `baton host dispatcher` (src/host/nft-table.ts), VIP 127.0.0.1:8080: the agent is on loopback, so
// no policy route is needed and the steered flow is delivered to the restored socket on this host. The
// multi-host topology (bridge, steering, direct return) is test/integration/migrate*.test.ts.
//
// Shows: the first request and later keep-alive requests answered by the back end on the migrated connection;
// the flow element present while it lives and gone graceMs after its CLOSED; 200 migrations with the
// dispatcher's own time (to MIGRATE sent) and the agent's round trip; an agent that refuses (wrong VIP) -> restored on the dispatcher and
// served by the service's other server; a MIGRATE past its deadline (or before any PING) refused by the agent with
// nothing restored, also by a real agent stopped (SIGSTOP) while the dispatcher gave up and restored the
// connection itself; a forged control connection (wrong secret) closed with nothing restored; an agent
// that dies is down at once and the client gets 503, never a hang.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { type Baton, startBaton } from '../../src/baton'
import { parseConfig } from '../../src/config/load'
import { dispatcherTable, realserverTable } from '../../src/host/nft-table'
import { native } from '../../src/native/binding'
import { ControlLink } from '../../src/forward/migrate-link'
import {
  decodeMigrate, decodeReady, encodeAuth, encodeHello, encodeLoad, encodeMigrate, encodePing, FrameReader, MSG_AUTH, MSG_HELLO,
  MSG_MIGRATE, MSG_PING, MSG_PONG, MSG_READY, encodeU32, NONCE_BYTES, ROLE_AGENT, ROLE_DISPATCHER,
} from '../../src/protocol/migrate-control'
import { netnsAdd, netnsDel, nftIn, skipReason, until } from './netns'

const ROOT = path.join(__dirname, '../..')
const MAIN = path.join(ROOT, 'dist/src/cli/main.js')
const DEMO = path.join(ROOT, 'dist/src/demo/backend.js')
const VIP = '127.0.0.1'
const PORT = 8080
const SECRET = randomBytes(24).toString('hex')

const skip = process.platform !== 'linux'
  ? 'Linux only'
  : skipReason({ netns: true, nft: true }) ?? (fs.existsSync(MAIN) && fs.existsSync(DEMO) ? null : 'needs the build (npx tsc -p tsconfig.json): runs dist/src/cli/main.js agent')
if (skip !== null) describe('migrate to baton agent', () => { it.skip(`skipped: ${skip}`, () => {}) })

interface Answer { status: number; headers: Record<string, string>; body: Record<string, unknown> }

/** Reads one HTTP/1.1 response with Content-Length from a raw socket. */
function readResponse (sock: net.Socket): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0)
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d])
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
      const headers: Record<string, string> = {}
      for (const l of lines.slice(1)) { const i = l.indexOf(':'); headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim() }
      const len = Number(headers['content-length'] ?? 0)
      if (buf.length < end + 4 + len) return
      sock.off('data', onData)
      sock.off('close', onClose)
      const text = buf.subarray(end + 4, end + 4 + len).toString()
      resolve({ status: Number(lines[0]!.split(' ')[1]), headers, body: text.startsWith('{') ? JSON.parse(text) as Record<string, unknown> : { text } })
    }
    const onClose = (): void => { reject(new Error(`closed after ${buf.length} bytes: ${buf.toString('latin1').slice(0, 200)}`)) }
    sock.on('data', onData)
    sock.once('close', onClose)
  })
}

async function connect (): Promise<net.Socket> {
  const s = net.connect(PORT, VIP)
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  return s
}

async function get (sock: net.Socket, url: string, close = false): Promise<Answer> {
  const answer = readResponse(sock)
  sock.write(`GET ${url} HTTP/1.1\r\nHost: test\r\n${close ? 'Connection: close\r\n' : ''}\r\n`)
  return await answer
}

/** The flow map's elements, as "address . port" -> mark. */
function flows (ns: string): Map<string, number> {
  const out = JSON.parse(nftIn(ns, ['-j', 'list', 'map', 'ip', 'baton', 'flows'])) as { nftables: Array<Record<string, any>> }
  const map = out.nftables.find((o) => o.map !== undefined)?.map as { elem?: any[] }
  return new Map((map.elem ?? []).map((e: any) => {
    const c = (e[0].elem?.val ?? e[0]).concat as [string, number]
    return [`${c[0]} . ${c[1]}`, e[1] as number]
  }))
}

function quantile (sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN
}

describe.runIf(skip === null)('migrate to baton agent (one network namespace)', () => {
  let ns = ''
  let back = -1
  let dir = ''
  let baton: Baton | undefined
  const procs: ChildProcess[] = []
  const logs: Array<Record<string, any>> = []
  const agentOut: string[] = []
  let paused: ChildProcess | undefined

  /** Starts a child (in this thread's namespace) and resolves once `ready` shows in its stdout or IPC. */
  async function child (args: string[], ready: string): Promise<ChildProcess> {
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    procs.push(p)
    let out = ''
    p.stdout!.on('data', (d: Buffer) => { out += d.toString(); agentOut.push(d.toString()) })
    p.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    let up = false
    p.on('message', () => { up = true })
    await until(`${args[1] ?? args[0]} ready (${out})`, () => up || out.includes(ready) || p.exitCode !== null, 10_000)
    if (p.exitCode !== null) throw new Error(`child exited ${p.exitCode}: ${out}`)
    return p
  }

  const fakes: net.Server[] = []
  const fakeSeen: Record<string, number[]> = { silent: [], dying: [], forged: [] }

  /**
   * An agent in this process: `silent` authenticates and never answers a MIGRATE; `dying` closes the control
   * connection when one comes; `forged` does not know the secret.
   */
  async function fakeAgent (port: number, kind: 'silent' | 'dying' | 'forged'): Promise<void> {
    const srv = net.createServer((sock) => {
      const link: ControlLink = new ControlLink(sock, ROLE_AGENT, kind === 'forged' ? 'not-the-secret-but-long-enough' : SECRET, {
        ready: () => { link.send(encodeLoad(0, true)) },
        message: (type, payload) => {
          if (type === MSG_PING) link.send(encodeU32(MSG_PONG, payload.readUInt32BE(0)))
          if (type !== MSG_MIGRATE) return
          fakeSeen[kind]!.push(decodeMigrate(payload)!.id)
          if (kind === 'dying') link.close()
        },
        closed: () => {},
      }, 5000, randomBytes(8))
    })
    fakes.push(srv)
    await new Promise<void>((resolve) => srv.listen(port, '127.0.0.1', resolve))
  }

  const state = (id: string): string | undefined => baton?.servers().find((s) => s.id === id)?.state as string | undefined

  beforeAll(async () => {
    ns = netnsAdd('baton-mig')
    nftIn(ns, ['-f', '-'], dispatcherTable({ vip: VIP, port: PORT }))
    nftIn(ns, ['-f', '-'], realserverTable({ vip: VIP })) // the agents refuse to run without it (loopback is exempt)
    back = native.netnsEnter(`/run/netns/${ns}`) // this thread, its sockets and its children live there from now on
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-mig-'))
    fs.writeFileSync(path.join(dir, 'agent.key'), SECRET, { mode: 0o600 })
    const sock = path.join(dir, 'be1.sock')
    await child([DEMO, '--name', 'be1', '--handoff', sock], '')
    const agent = (listen: string, vip: string): string[] =>
      [MAIN, 'agent', '--listen', listen, '--secret-file', path.join(dir, 'agent.key'), '--vip', vip, '--handoff', sock]
    await child(agent('127.0.0.1:7070', `${VIP}:${PORT}`), 'baton agent listening')
    await child(agent('127.0.0.1:7071', `${VIP}:9999`), 'baton agent listening') // refuses every flow: wrong VIP
    paused = await child(agent('127.0.0.1:7075', `${VIP}:${PORT}`), 'baton agent listening') // stopped (SIGSTOP) by a test
    await fakeAgent(7072, 'silent')
    await fakeAgent(7073, 'dying')
    await fakeAgent(7074, 'forged')
    const config = parseConfig([
      `listen: ${VIP}:${PORT}`,
      'migrate: { secretFile: agent.key, graceMs: 200, timeoutMs: 1000 }',
      'admin: { listen: 127.0.0.1:0 }',
      'services:',
      '  - name: web',
      '    servers: [ { name: r1, agent: 127.0.0.1:7070 } ]',
      '  - name: bad',
      '    scheduler: fo', // r2 first; the local back end only once r2 failed for a connection
      '    servers: [ { name: r2, agent: 127.0.0.1:7071, weight: 2 }, { name: local, handoff: be1.sock } ]',
      '  - name: silent',
      '    scheduler: fo',
      '    servers: [ { name: s1, agent: 127.0.0.1:7072, weight: 2 }, { name: local2, handoff: be1.sock } ]',
      '  - name: dying',
      '    scheduler: fo',
      '    servers: [ { name: d1, agent: 127.0.0.1:7073, weight: 2 }, { name: local3, handoff: be1.sock } ]',
      '  - name: forged',
      '    servers: [ { name: f1, agent: 127.0.0.1:7074 } ]',
      '  - name: paused',
      '    scheduler: fo',
      '    servers: [ { name: p1, agent: 127.0.0.1:7075, weight: 2 }, { name: local4, handoff: be1.sock } ]',
      'routes:',
      '  - { match: { path: /bad/ }, service: bad }',
      '  - { match: { path: /silent/ }, service: silent }',
      '  - { match: { path: /dying/ }, service: dying }',
      '  - { match: { path: /paused/ }, service: paused }',
      '  - { service: web }',
    ].join('\n'), path.join(dir, 'baton.yaml'))
    const logger = pino({ level: 'debug' }, {
      write: (s: string) => { for (const l of s.split('\n')) if (l !== '') logs.push(JSON.parse(l) as Record<string, any>) },
    })
    baton = await startBaton(config, { logger })
    await until('every real agent up', () => ['r1', 'r2', 'local', 's1', 'd1', 'p1'].every((id) => state(id) === 'up'), 10_000)
  })

  afterAll(async () => {
    await baton?.close()
    for (const f of fakes) f.close()
    for (const p of procs) p.kill('SIGKILL')
    if (back >= 0) native.netnsReturn(back)
    netnsDel(ns)
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true })
  })

  it('answers the first request and later keep-alive requests from the back end on the migrated connection', async () => {
    const sock = await connect()
    const first = await get(sock, '/first')
    expect(first.status).toBe(200)
    expect(first.headers['x-baton-backend']).toBe('be1')
    expect(first.body.via).toMatch(/^handoff \(service web, route route-\d+, conn \d+\)$/)
    expect(first.body.client).toBe(`${VIP}:${sock.localPort}`)
    expect(flows(ns).get(`${VIP} . ${sock.localPort}`)).toBe(1) // steered with r1's mark while it lives
    for (let i = 0; i < 3; i++) {
      const next = await get(sock, `/next-${i}`)
      expect(next.status).toBe(200)
      expect(next.body).toMatchObject({ url: `/next-${i}`, via: first.body.via, requestsServed: (first.body.requestsServed as number) + i + 1 })
    }
    sock.end()
    await until('flow element removed after CLOSED + graceMs', () => !flows(ns).has(`${VIP} . ${sock.localPort}`), 5000)
  })

  /** baton_migrate_seconds_count and _sum for web/r1 and a phase, from GET /metrics. */
  async function migrateMetric (phase: string): Promise<{ count: number; sum: number }> {
    const text = await (await fetch(`http://${baton!.admin!}/metrics`)).text()
    const labels = `{service="web",server="r1",phase="${phase}"}`
    const value = (name: string): number => Number(text.split('\n').find((l) => l.startsWith(`${name}${labels} `))?.split(' ')[1] ?? 0)
    return { count: value('baton_migrate_seconds_count'), sum: value('baton_migrate_seconds_sum') }
  }

  it('migrates 200 connections one after the other, each answered, and leaves no steering behind', async () => {
    const before = { dispatcher: await migrateMetric('dispatcher'), ready: await migrateMetric('ready') }
    const from = logs.length
    for (let i = 0; i < 200; i++) {
      const sock = await connect()
      const a = await get(sock, `/n/${i}`, true)
      expect(a.status).toBe(200)
      expect(a.body.url).toBe(`/n/${i}`)
      sock.destroy()
    }
    // The agent hands a connection to its back end before it answers READY, so the last answer can reach the
    // client before the dispatcher has read the last READY.
    await until('every READY read', () => logs.slice(from).filter((l) => l.msg === 'migrated').length >= 200, 5000)
    const migrated = logs.slice(from).filter((l) => l.msg === 'migrated')
    expect(migrated.length).toBe(200)
    // The same migrations in baton_migrate_seconds: each phase counted once, the dispatcher's part the shorter.
    const after = { dispatcher: await migrateMetric('dispatcher'), ready: await migrateMetric('ready') }
    expect(after.dispatcher.count - before.dispatcher.count).toBe(200)
    expect(after.ready.count - before.ready.count).toBe(200)
    const sum = migrated.reduce((n, l) => n + (l.durMs as number) / 1000, 0)
    expect(after.ready.sum - before.ready.sum).toBeCloseTo(sum, 3)
    expect(after.dispatcher.sum - before.dispatcher.sum).toBeLessThan(after.ready.sum - before.ready.sum)
    const line = (what: string, us: number[]): string => {
      const t = us.sort((a, b) => a - b)
      return `${what}: median ${quantile(t, 0.5).toFixed(0)}, p90 ${quantile(t, 0.9).toFixed(0)}, p99 ${quantile(t, 0.99).toFixed(0)}`
    }
    console.log(`migration, dispatcher clock, µs over ${migrated.length}:\n  ` + [
      line('total (head to READY)', migrated.map((l) => (l.durMs as number) * 1000)),
      line('dispatcher work (freeze, dump, close, steer, MIGRATE sent)', migrated.map((l) => l.localUs as number)),
      line('waiting for READY (agent process: decode, restore, hand off, answer)', migrated.map((l) => l.agentUs as number)),
    ].join('\n  '))
    await until('every flow element removed', () => flows(ns).size === 0, 8000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify([...flows(ns)])}`)
    })
    expect(baton!.servers().find((s) => s.id === 'r1')).toMatchObject({ active: 0 })
  })

  it('restores a connection the agent refuses on the dispatcher and serves it elsewhere', async () => {
    const sock = await connect()
    const a = await get(sock, '/bad/x')
    expect(a.status).toBe(200)
    expect(a.body.via).toMatch(/^handoff \(service bad, route route-0, conn \d+\)$/) // `local`, by plain handoff
    const failed = logs.find((l) => l.code === 'BATON_ERR_MIGRATE_FAILED' && l.backend === 'r2')
    expect(failed?.err).toMatch(/agent refused: flow is for 127\.0\.0\.1:8080, this agent's VIP is 127\.0\.0\.1:9999/)
    expect(flows(ns).has(`${VIP} . ${sock.localPort}`)).toBe(false) // unfrozen
    const again = await get(sock, '/bad/y') // the restored connection is an ordinary one
    expect(again.status).toBe(200)
    sock.destroy()
  })

  it('restores on the dispatcher when READY does not come within timeoutMs, and when the control connection dies', async () => {
    const t0 = Date.now()
    let sock = await connect()
    let a = await get(sock, '/silent/x')
    expect(a.status).toBe(200)
    expect(a.body.via).toMatch(/^handoff \(service silent, /) // local2, after the restore
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    expect(fakeSeen.silent).toHaveLength(1)
    expect(logs.find((l) => l.backend === 's1' && l.code === 'BATON_ERR_MIGRATE_FAILED')?.err).toMatch(/no READY within 1000 ms/)
    expect((await get(sock, '/silent/y')).status).toBe(200)
    sock.destroy()

    sock = await connect()
    a = await get(sock, '/dying/x')
    expect(a.status).toBe(200)
    expect(a.body.via).toMatch(/^handoff \(service dying, /)
    expect(fakeSeen.dying).toHaveLength(1)
    expect(logs.find((l) => l.backend === 'd1' && l.code === 'BATON_ERR_MIGRATE_FAILED')?.err).toMatch(/control connection lost/)
    sock.destroy()
    await until('no flow left frozen', () => flows(ns).size === 0, 3000)
  })

  it('an agent stopped past a MIGRATE\'s deadline refuses it once it runs again: the connection stays the dispatcher\'s alone', async () => {
    paused!.kill('SIGSTOP')
    const refusedBefore = agentOut.join('').split('stale: ').length
    const sock = await connect()
    let first: Awaited<ReturnType<typeof get>>
    try {
      const t0 = Date.now()
      first = await get(sock, '/paused/x')
      expect(first.status).toBe(200)
      expect(first.body.via).toMatch(/^handoff \(service paused, /) // local4, restored here after timeoutMs
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900)
    } finally {
      paused!.kill('SIGCONT') // within 2 x timeoutMs: its control connection is still up, the MIGRATE still queued
    }
    await until('the agent refused the stale MIGRATE', () => agentOut.join('').split('stale: ').length > refusedBefore, 5000)
    const again = await get(sock, '/paused/y') // the same connection, still served here, by the same back end
    expect(again.status).toBe(200)
    expect(again.body.via).toBe(first.body.via)
    // One socket holds the flow's server end: the back end's (the agent restored nothing).
    const held = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${PORT} and dport = :${sock.localPort} )`], { encoding: 'utf8' })
    expect(held.trim().split('\n').filter((l) => l !== '')).toHaveLength(1)
    sock.destroy()
    await until('p1 up again', () => state('p1') === 'up', 5000)
  })

  it('never takes an agent that cannot prove the secret into rotation', () => {
    expect(state('f1')).not.toBe('up')
    expect(fakeSeen.forged).toEqual([])
    expect(logs.some((l) => l.backend === 'f1' && l.code === 'BATON_ERR_MIGRATE_AUTH')).toBe(true)
  })

  it('closes a control connection that cannot prove the secret, before restoring anything', async () => {
    const s = net.connect(7070, '127.0.0.1')
    const reader = new FrameReader()
    const types: number[] = []
    s.on('data', (d: Buffer) => {
      reader.push(d)
      for (let f = reader.next(); f !== null && !('error' in f); f = reader.next()) {
        types.push(f.type)
        if (f.type === MSG_AUTH) { // the agent answered our HELLO with its proof: ours is forged, then a MIGRATE
          s.write(Buffer.concat([encodeAuth(randomBytes(32)), encodeMigrate({ id: 1, sentAt: 0, deadline: 1e12, service: 'web', route: 'r' }, Buffer.alloc(100))]))
        }
      }
    })
    s.write(encodeHello(ROLE_DISPATCHER, randomBytes(NONCE_BYTES), Buffer.alloc(8)))
    await new Promise<void>((resolve) => s.once('close', () => { resolve() }))
    expect(types).toEqual([MSG_HELLO, MSG_AUTH]) // no ACCEPTED, no READY
    await until('the agent logged it', () => agentOut.join('').includes('BATON_ERR_MIGRATE_AUTH'), 3000)
    expect(state('r1')).toBe('up') // the real dispatcher's connection is not affected
  })

  it('refuses a MIGRATE past its deadline by its estimate of the dispatcher\'s clock, or before any PING, restoring nothing', async () => {
    const answers: Array<{ id: number; ok: boolean; reason: string }> = []
    const link: ControlLink = await new Promise((resolve, reject) => {
      const l: ControlLink = new ControlLink(net.connect(7070, '127.0.0.1'), ROLE_DISPATCHER, SECRET, {
        ready: () => { resolve(l) },
        message: (type, payload) => { if (type === MSG_READY) answers.push(decodeReady(payload)!) },
        closed: (err) => { reject(err) },
      }, 5000)
    })
    // Our clock is this process's; the agent learns it from the PING. The state is never looked at: the
    // deadline is checked first, so nothing is restored (a state of zeros would not restore anyway).
    const head = { service: 'web', route: 'r', sentAt: 0, deadline: 0 }
    link.send(encodeMigrate({ ...head, id: 1, sentAt: performance.now(), deadline: performance.now() + 1e6 }, Buffer.alloc(64)))
    link.send(encodePing(1, performance.now()))
    const t = performance.now()
    link.send(encodeMigrate({ ...head, id: 2, sentAt: t - 600, deadline: t - 100 }, Buffer.alloc(64)))
    await until('two answers', () => answers.length === 2, 3000)
    expect(answers[0]).toMatchObject({ id: 1, ok: false, reason: 'no PING yet' })
    expect(answers[1]).toMatchObject({ id: 2, ok: false })
    expect(answers[1]!.reason).toMatch(/^stale: \d+\.\d ms past its deadline$/)
    link.close()
  })

  it('an agent does not run on a host without baton host realserver\'s early-drop table for its VIP', () => {
    nftIn(ns, ['delete', 'table', 'ip', 'baton_realserver'])
    try {
      const r = spawnSync(process.execPath, [MAIN, 'agent', '--listen', '127.0.0.1:7079', '--secret-file', path.join(dir, 'agent.key'),
        '--vip', `${VIP}:${PORT}`, '--handoff', path.join(dir, 'be1.sock')], { encoding: 'utf8', timeout: 10_000 })
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/cannot restore connections: no nft table ip baton_realserver .*run `baton host realserver --vip 127\.0\.0\.1` first \(BATON_ERR_MIGRATE_UNAVAILABLE\)/)
      nftIn(ns, ['-f', '-'], realserverTable({ vip: '10.1.2.3' })) // a table for another VIP
      const other = spawnSync(process.execPath, [MAIN, 'agent', '--listen', '127.0.0.1:7079', '--secret-file', path.join(dir, 'agent.key'),
        '--vip', `${VIP}:${PORT}`, '--handoff', path.join(dir, 'be1.sock')], { encoding: 'utf8', timeout: 10_000 })
      expect(other.status).toBe(1)
      expect(other.stderr).toMatch(/has no early-drop rule for 127\.0\.0\.1/)
    } finally {
      nftIn(ns, ['delete', 'table', 'ip', 'baton_realserver'])
      nftIn(ns, ['-f', '-'], realserverTable({ vip: VIP }))
    }
  })

  it('takes an agent that dies out at once; its clients get 503, never a hang', async () => {
    const agent = procs[1]!
    agent.kill('SIGKILL')
    const t0 = Date.now()
    await until('r1 down', () => state('r1') !== 'up', 2000)
    expect(Date.now() - t0).toBeLessThan(1000)
    const sock = await connect()
    const a = await get(sock, '/after')
    expect(a.status).toBe(503)
    sock.destroy()
  })
})
