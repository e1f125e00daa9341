// baton_backend_request_seconds: a handed-off back end (a real process) times each request from 'request' to
// the response's close and reports the bucket counts with its coalesced feedback (LATENCY); the dispatcher
// sums them per server and /metrics shows them as a histogram.
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { LATENCY_BOUNDS } from '../../src/protocol/handoff'
import { exchange, harness, type Harness } from '../helpers/cluster'

interface Sample { name: string; labels: Record<string, string>; value: number }

function parse (text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (m === null) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) })
  }
  return out
}

describe.runIf(process.platform === 'linux' && native.available)('back-end request times (LATENCY)', () => {
  let h: Harness
  let b: Awaited<ReturnType<Harness['baton']>>

  beforeAll(async () => {
    h = harness()
    await h.backend('h1')
    b = await h.baton(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
services:
  - { name: s, scheduler: rr, servers: [ { name: h1, handoff: ${h.sock('h1')} } ] }
`)
  })
  afterAll(async () => { await h.close() })

  async function scrape (): Promise<Sample[]> {
    const res = await request(`http://${b.admin!}/metrics`)
    expect(res.statusCode).toBe(200)
    return parse(await res.body.text())
  }

  it('counts each request into its bucket, per server', async () => {
    const FAST = 6
    const SLOW = 3
    const sends: Promise<unknown>[] = []
    for (let i = 0; i < FAST; i++) {
      sends.push(exchange(b.ports[0]!, `GET /f/${i} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`, { expect: 1 }))
    }
    for (let i = 0; i < SLOW; i++) {
      sends.push(exchange(b.ports[0]!, `GET /s/${i}?delayMs=200 HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`, { expect: 1, timeoutMs: 5000 }))
    }
    // Two requests on one kept-alive connection: each is timed on its own.
    sends.push(exchange(b.ports[0]!, 'GET /k/1 HTTP/1.1\r\nHost: e\r\n\r\nGET /k/2?delayMs=200 HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n',
      { expect: 2, timeoutMs: 5000 }))
    await Promise.all(sends)
    const total = FAST + SLOW + 2
    const slow = SLOW + 1
    const name = 'baton_backend_request_seconds'
    const labels = { service: 's', server: 'h1' }
    const get = (s: Sample[], n: string, le?: string): number | undefined => s.find((x) => x.name === n &&
      x.labels.service === 's' && x.labels.server === 'h1' && (le === undefined || x.labels.le === le))?.value
    // The LATENCY goes out with the next flush after each response's close: poll.
    let s = await scrape()
    for (let t = 0; t < 100 && get(s, `${name}_count`) !== total; t++) {
      await new Promise((resolve) => setTimeout(resolve, 30))
      s = await scrape()
    }
    expect(get(s, `${name}_count`)).toBe(total)
    expect(get(s, `${name}_bucket`, '+Inf')).toBe(total)
    const buckets = s.filter((x) => x.name === `${name}_bucket` && x.labels.server === labels.server)
    expect(buckets.map((x) => x.labels.le)).toEqual([...LATENCY_BOUNDS.map(String), '+Inf'])
    const values = buckets.map((x) => x.value)
    expect(values).toEqual([...values].sort((a, c) => a - c)) // cumulative
    // The fast ones well under 0.1 s, the slow ones between 0.1 s and 10 s.
    expect(get(s, `${name}_bucket`, '0.1')).toBe(total - slow)
    expect(get(s, `${name}_bucket`, '10')).toBe(total)
    const sum = get(s, `${name}_sum`)!
    expect(sum).toBeGreaterThanOrEqual(0.2 * slow - 0.01)
    expect(sum).toBeLessThan(0.2 * slow + 0.1 * (total - slow) + 5)
  })
})
