// GET /metrics from the prom-client registry (src/admin/metrics.ts): every line obeys the Prometheus text
// exposition grammar, every sample has its HELP and TYPE, and the counters match the connections sent.
import net from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, harness, type Harness } from '../helpers/cluster'

async function freePort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`
const VALUE = '(?:[-+]?(?:[0-9]+(?:\\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\\.[0-9]+)|[-+]?Inf|NaN)'
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (${VALUE})(?: -?[0-9]+)?$`)
const HELP = new RegExp(`^# HELP (${NAME}) .*$`)
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`)

interface Sample { name: string; labels: Record<string, string>; value: number }

/** A strict parser: throws on any line outside the grammar, a sample without HELP and TYPE, or a repeated TYPE. */
function parseExposition (text: string): Sample[] {
  expect(text.endsWith('\n')).toBe(true)
  const help = new Set<string>()
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue
    let m = HELP.exec(line)
    if (m !== null) { help.add(m[1]!); continue }
    m = TYPE.exec(line)
    if (m !== null) {
      if (types.has(m[1]!)) throw new Error(`TYPE repeated: ${line}`)
      types.set(m[1]!, m[2]!); continue
    }
    if (line.startsWith('#')) throw new Error(`bad comment line: ${line}`)
    m = SAMPLE.exec(line)
    if (m === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const name = m[1]!
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    if (!types.has(family) || !help.has(family)) throw new Error(`sample without HELP/TYPE: ${line}`)
    if (family !== name && types.get(family) !== 'histogram') throw new Error(`suffix on a ${types.get(family)}: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = JSON.parse(`"${l[2]!}"`) as string
    const v = m[3]!
    samples.push({ name, labels, value: v.endsWith('Inf') ? (v.startsWith('-') ? -Infinity : Infinity) : Number(v) })
  }
  return samples
}

function value (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value
}

describe.runIf(process.platform === 'linux' && native.available)('GET /metrics (prom-client)', () => {
  let h: Harness
  let b: Awaited<ReturnType<Harness['baton']>>

  beforeAll(async () => {
    h = harness()
    const live = await freePort()
    await h.backend('h1')
    await h.backend('r1', { listen: `127.0.0.1:${live}` })
    b = await h.baton(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
routes:
  - { match: { path: /r/ }, service: relayed }
  - { service: s }
services:
  - { name: s, scheduler: wlc, servers: [ { name: h1, handoff: ${h.sock('h1')} } ] }
  - { name: relayed, scheduler: rr, servers: [ { name: r1, address: 127.0.0.1:${live}, forward: splice } ] }
`)
  })
  afterAll(async () => { await h.close() })

  async function scrape (): Promise<Sample[]> {
    const res = await request(`http://${b.admin!}/metrics`)
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toContain('text/plain')
    return parseExposition(await res.body.text())
  }

  it('parses strictly and counts the connections sent', async () => {
    const N = 7
    const M = 4
    const R = 3
    for (let i = 0; i < N; i++) {
      const { responses } = await exchange(b.ports[0]!, `GET /x/${i} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`, { expect: 1 })
      expect(responses[0]!.headers['x-baton-backend']).toBe('h1')
    }
    for (let i = 0; i < M; i++) await exchange(b.ports[0]!, 'BAD\r\n\r\n')
    let down = 0
    let up = 0
    for (let i = 0; i < R; i++) {
      const req = `GET /r/${i} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`
      const { raw, responses } = await exchange(b.ports[0]!, req, { expect: 1 })
      expect(responses[0]!.headers['x-baton-backend']).toBe('r1')
      up += Buffer.byteLength(req)
      down += Buffer.byteLength(raw)
    }
    // The relay's close is reported after the client saw its bytes: poll.
    let s = await scrape()
    for (let t = 0; t < 100 && value(s, 'baton_connections_total', { outcome: 'splice' }) !== R; t++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      s = await scrape()
    }
    expect(value(s, 'baton_connections_total', { outcome: 'handoff' })).toBe(N)
    expect(value(s, 'baton_connections_total', { outcome: 'status-400' })).toBe(M)
    expect(value(s, 'baton_connections_total', { outcome: 'splice' })).toBe(R)
    expect(value(s, 'baton_rejections_total', { status: '400' })).toBe(M)
    expect(value(s, 'baton_relay_bytes_up_total', { service: 'relayed', server: 'r1' })).toBe(up)
    expect(value(s, 'baton_relay_bytes_down_total', { service: 'relayed', server: 'r1' })).toBe(down)
    // Handoffs, the 400s and the relay starts each give one dispatch-time sample.
    expect(value(s, 'baton_dispatch_seconds_count')).toBe(N + M + R)
    expect(value(s, 'baton_dispatch_seconds_bucket', { le: '+Inf' })).toBe(N + M + R)
    const sum = value(s, 'baton_dispatch_seconds_sum')!
    expect(sum).toBeGreaterThan(0)
    expect(sum).toBeLessThan(60)
    const buckets = s.filter((x) => x.name === 'baton_dispatch_seconds_bucket').map((x) => x.value)
    expect(buckets).toEqual([...buckets].sort((a, c) => a - c)) // cumulative
    expect(value(s, 'baton_server_up', { service: 's', server: 'h1' })).toBe(1)
    expect(value(s, 'baton_server_state', { service: 's', server: 'h1', state: 'up' })).toBe(1)
    expect(value(s, 'baton_pending_connections', { state: 'head' })).toBe(0)
    expect(value(s, 'baton_pending_shed_total')).toBe(0)
    for (const x of s) {
      for (const k of Object.keys(x.labels)) expect(['service', 'server', 'outcome', 'state', 'status', 'result', 'le']).toContain(k)
    }
  })
})
