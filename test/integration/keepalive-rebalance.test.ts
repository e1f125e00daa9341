// Rebalancing kept-alive connections: a server added under a keep-alive load gets its share of the requests,
// and a drained one sheds its connections, within seconds and without a single reset seen by the clients.
// Real back-end processes (the demo back end), an in-process switch, 60 raw keep-alive clients.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Baton } from '../../src/baton'
import { exchange, fdCount, harness, waitFor, type Harness } from '../helpers/cluster'
import { freePort } from '../helpers/operating'

const CONNS = 60

/** A keep-alive client that sends one request after another and counts who answered. */
class Client {
  readonly socket: net.Socket
  errors: string[] = []
  #buf = ''
  #stopped = false
  constructor (port: number, readonly counts: Map<string, number>) {
    this.socket = net.connect(port, '127.0.0.1', () => { this.#send() })
    this.socket.setEncoding('latin1')
    this.socket.on('data', (d: string) => { this.#buf += d; this.#parse() })
    this.socket.on('error', (err) => { this.errors.push(err.message) })
    this.socket.on('close', () => { if (!this.#stopped) this.errors.push('closed by the switch or back end') })
  }

  #send (): void {
    if (!this.#stopped) this.socket.write('GET /x HTTP/1.1\r\nHost: t\r\n\r\n')
  }

  #parse (): void {
    for (;;) {
      const end = this.#buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = this.#buf.slice(0, end)
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)
      if (this.#buf.length < end + 4 + len) return
      const who = /x-baton-backend: (\S+)/i.exec(head)?.[1] ?? '?'
      if (!head.startsWith('HTTP/1.1 200')) this.errors.push(head.split('\r\n')[0]!)
      this.counts.set(who, (this.counts.get(who) ?? 0) + 1)
      this.#buf = this.#buf.slice(end + 4 + len)
      setTimeout(() => { this.#send() }, 5)
    }
  }

  stop (): void {
    this.#stopped = true
    this.socket.destroy()
  }
}

describe.each(['handoff', 'splice'] as const)('rebalancing kept-alive connections (%s)', (method) => {
  let h: Harness
  let b: Baton
  let port: number
  let target: (n: string) => { handoff?: string; address?: { host: string; port: number }; forward?: 'splice' }
  beforeAll(async () => {
    h = harness()
    if (method === 'handoff') {
      await Promise.all(['r1', 'r2', 'r3'].map((n) => h.backend(n)))
      target = (n) => ({ handoff: h.sock(n) })
    } else {
      const ports = new Map<string, number>()
      for (const n of ['r1', 'r2', 'r3']) {
        const port = await freePort()
        ports.set(n, port)
        await h.backend(n, { listen: `127.0.0.1:${port}` })
      }
      target = (n) => ({ address: { host: '127.0.0.1', port: ports.get(n)! }, forward: 'splice' })
    }
    const yamlTarget = (n: string): string => {
      const t = target(n)
      return t.handoff !== undefined ? `handoff: ${t.handoff}` : `address: 127.0.0.1:${t.address!.port}, forward: splice`
    }
    b = await h.baton(`
listen: 127.0.0.1:0
log: { level: warn }
services:
  - name: s
    scheduler: wlc
    servers: [ { name: r1, ${yamlTarget('r1')} }, { name: r2, ${yamlTarget('r2')} } ]
`)
    port = b.ports[0]!
    await waitFor(() => b.servers().every((s) => s.state === 'up'), 5000)
  })
  afterAll(async () => { await h.close() })

  /** Requests answered per back end during `ms`, starting now. */
  async function window (counts: Map<string, number>, ms: number): Promise<Map<string, number>> {
    const before = new Map(counts)
    await new Promise((resolve) => setTimeout(resolve, ms))
    const out = new Map<string, number>()
    for (const [k, v] of counts) out.set(k, v - (before.get(k) ?? 0))
    return out
  }

  it('a server added under load answers its share within 5 s; a drained or removed one answers nothing within 5 s; no client sees a reset', async () => {
    const fds = fdCount()
    const counts = new Map<string, number>()
    const clients = Array.from({ length: CONNS }, () => new Client(port, counts))
    try {
      await waitFor(() => [...counts.values()].reduce((a, v) => a + v, 0) > CONNS * 5, 10_000)
      const start = await window(counts, 500)
      expect(start.get('r3') ?? 0).toBe(0)

      b.addServer('s', { name: 'r3', ...target('r3'), weight: 1, maxConns: 0, minConns: 0 })
      await new Promise((resolve) => setTimeout(resolve, 5000))
      const added = await window(counts, 1500)
      const total = [...added.values()].reduce((a, v) => a + v, 0)
      expect(total).toBeGreaterThan(0)
      const share = (added.get('r3') ?? 0) / total
      expect(share).toBeGreaterThan(1 / 3 - 0.1)
      expect(share).toBeLessThan(1 / 3 + 0.1)

      b.setState('s', 'r1', 'drain')
      await new Promise((resolve) => setTimeout(resolve, 5000))
      const drained = await window(counts, 1500)
      expect(drained.get('r1') ?? 0).toBe(0)
      expect((drained.get('r2') ?? 0) + (drained.get('r3') ?? 0)).toBeGreaterThan(0)

      // A removed server's back end hands its connections back over the channel kept open for that.
      b.removeServer('s', 'r2')
      await new Promise((resolve) => setTimeout(resolve, 5000))
      const removed = await window(counts, 1500)
      expect(removed.get('r2') ?? 0).toBe(0)
      expect(removed.get('r3') ?? 0).toBeGreaterThan(0)
      expect(clients.flatMap((c) => c.errors)).toEqual([])
    } finally {
      for (const c of clients) c.stop()
    }
    // handoff: + r3's channel, + r2's, open while it retires; splice: the relay keeps a pair of pipes for reuse
    await waitFor(() => fdCount() <= fds + 2, 3000)
  }, 40_000)
})

describe('moves in /metrics', () => {
  let h: Harness
  let b: Baton
  beforeAll(async () => {
    h = harness()
    await Promise.all(['p1', 'q1'].map((n) => h.backend(n)))
    b = await h.baton(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
services:
  - { name: p, scheduler: rr, servers: [ { name: p1, handoff: ${h.sock('p1')} } ] }
  - { name: q, scheduler: rr, servers: [ { name: q1, handoff: ${h.sock('q1')} } ] }
routes:
  - { match: { path: /q/ }, service: q }
  - { service: p }
`)
    await waitFor(() => b.servers().every((s) => s.state === 'up'), 5000)
  })
  afterAll(async () => { await h.close() })

  it('counts each move once, by the service it left and why', async () => {
    const get = (p: string, last = false): string => `GET ${p} HTTP/1.1\r\nHost: t\r\n${last ? 'Connection: close\r\n' : ''}\r\n`
    const { responses } = await exchange(b.ports[0]!, get('/p/1') + get('/q/1') + get('/p/2') + get('/q/2', true), { expect: 4 })
    expect(responses.map((r) => r.headers['x-baton-backend'])).toEqual(['p1', 'q1', 'p1', 'q1'])
    const text = await (await fetch(`http://${b.admin!}/metrics`)).text()
    expect(text).toContain('baton_connection_moves_total{service="p",outcome="reroute"} 2')
    expect(text).toContain('baton_connection_moves_total{service="q",outcome="reroute"} 1')
  })
})
