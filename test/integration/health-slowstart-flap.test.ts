// Health over time, through the real switch with real back-end processes: slow start shows in the pick
// ratios after a server recovers, and a flapping server changes state no faster than rise/fall allow.
import http from 'node:http'
import { afterAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { fixtures, load, sleep, stateLines, stateOf, weightOf } from '../helpers/health'

function metrics (admin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(`http://${admin}/metrics`, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve(body) })
    }).on('error', reject)
  })
}

/** baton_server_state_changes_total for one server, summed over the states entered. */
function changesOf (text: string, server: string): number {
  let n = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('baton_server_state_changes_total{') && line.includes(`server="${server}"`)) n += Number(line.split(' ').at(-1))
  }
  return n
}

describe.runIf(process.platform === 'linux' && native.available)('health over time', () => {
  const h: Harness = harness()
  const f = fixtures()
  afterAll(async () => {
    await h.close()
    await f.close()
  })

  it('slow start: a recovered server\'s share of the picks grows over slowStartS', async () => {
    const [a] = await Promise.all([
      f.start('A', { handoff: h.sock('A'), listen: '127.0.0.1:0' }),
      f.start('B', { handoff: h.sock('B') }),
    ])
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: wrr
    slowStartS: 2
    health: { http: { path: /healthz }, intervalMs: 100, rise: 1, fall: 1 }
    servers:
      - { name: A, handoff: ${h.sock('A')}, weight: 10 }
      - { name: B, handoff: ${h.sock('B')}, weight: 10, health: false }
`)
    await waitFor(() => stateOf(baton, 'A') === 'up' && stateOf(baton, 'B') === 'up', 5000)
    expect(weightOf(baton, 'A')).toBe(10) // no slow start at start-up (HAProxy alike)
    await a.send({ health: 'fail' })
    await waitFor(() => stateOf(baton, 'A') === 'down', 3000)
    await a.send({ health: 'ok' })
    await waitFor(() => stateOf(baton, 'A') === 'up', 3000)
    const upAt = Date.now()

    const weights: Array<[number, number]> = []
    const out = await load(baton.ports[0]!, 2, () => Date.now() - upAt > 3000, async () => {
      while (Date.now() - upAt <= 3000) {
        weights.push([Date.now() - upAt, weightOf(baton, 'A')!])
        await sleep(100)
      }
    })
    const windows = [0, 1, 2, 3, 4, 5].map((w) => {
      const inWindow = out.filter((o) => o.startMs - upAt >= w * 500 && o.startMs - upAt < (w + 1) * 500)
      return inWindow.filter((o) => o.backend === 'A').length / Math.max(1, inWindow.length)
    })
    console.log(`slow start 2 s: A's share per 500 ms window after recovery: ${windows.map((s) => s.toFixed(2)).join(', ')} ` +
      `(${out.length} picks); A's weight: ${weights.filter((_, i) => i % 5 === 0).map(([t, w]) => `${t} ms ${w}`).join(', ')}`)
    expect(weights[0]![1]).toBeLessThanOrEqual(4)
    expect(weights.at(-1)![1]).toBe(10)
    for (let i = 1; i < weights.length; i++) expect(weights[i]![1]).toBeGreaterThanOrEqual(weights[i - 1]![1])
    expect(windows[0]!).toBeLessThan(0.3) // weight ≤ 4 of 14 while the ramp starts
    expect(windows[5]!).toBeGreaterThan(0.4) // 10 of 20 once it is over
    expect(windows[5]!).toBeGreaterThan(windows[0]! + 0.15)
    expect(out.filter((o) => o.status !== 200)).toEqual([])
  })

  it('a flapping server changes state no faster than rise/fall allow', async () => {
    const flap = await f.start('F', { listen: '127.0.0.1:0' })
    // Two servers at one back end, per-server overrides: S needs 6 results in a row (1.5 s) to change, more
    // than a flap's half period; Q needs 2 (0.4 s) and follows each flip at most once.
    const baton = await h.baton(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
services:
  - name: flap
    scheduler: rr
    health: { http: { path: /healthz }, intervalMs: 250, fastIntervalMs: 250 }
    servers:
      - { name: S, address: 127.0.0.1:${flap.port}, health: { rise: 6, fall: 6 } }
      - { name: Q, address: 127.0.0.1:${flap.port}, health: { intervalMs: 200, fastIntervalMs: 200, rise: 2, fall: 2 } }
`)
    const FLIPS = 6
    for (let i = 0; i < FLIPS; i++) {
      await flap.send({ health: i % 2 === 0 ? 'fail' : 'ok' })
      await sleep(1000)
    }
    await flap.send({ health: 'ok' })
    await waitFor(() => stateOf(baton, 'Q') === 'up', 3000)
    const text = await metrics(baton.admin!)
    const q = stateLines(h.logs, 'Q')
    console.log(`flapping 1 s up / 1 s down, ${FLIPS} flips: S (rise/fall 6 at 250 ms) changed ${changesOf(text, 'S')} times, ` +
      `Q (rise/fall 2 at 200 ms) ${changesOf(text, 'Q')} times, at ${q.map((l) => `${(l.time as number) % 100_000} ${l.state}`).join(', ')}`)
    expect(changesOf(text, 'S')).toBe(0)
    expect(stateLines(h.logs, 'S')).toEqual([])
    expect(changesOf(text, 'Q')).toBe(q.length)
    expect(q.length).toBeGreaterThanOrEqual(2)
    expect(q.length).toBeLessThanOrEqual(FLIPS)
    q.forEach((l, i) => {
      expect(l).toMatchObject({ state: i % 2 === 0 ? 'down' : 'up', cause: i % 2 === 0 ? 'check-failed' : 'check-passed' })
      // Two results in a row, 200 ms apart at the least, between any two changes.
      if (i > 0) expect((l.time as number) - (q[i - 1]!.time as number)).toBeGreaterThanOrEqual(200)
    })
    expect(text).toMatch(/baton_server_state\{service="flap",server="S",state="up"\} 1/)
  })
})
