// A back end killed with SIGKILL under load: real back-end processes, the real switch, a client load of
// Connection: close requests from a few concurrent clients. What fails is counted against the moment the
// switch noticed (the 'real server down' line, same clock as the client's Date.now()).
import { afterAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { failed, fixtures, load, sleep, stateLines, stateOf, type Outcome } from '../helpers/health'

const CONCURRENCY = 4
const LOAD_MS = 2500
const KILL_AT_MS = 700

/**
 * What may fail: the connections the back end held at the kill (one per client at most: each client has one
 * request in flight), plus those the switch sent it between the kill and the moment it noticed (a process
 * being killed still completes handshakes and takes fds until the kernel closes its sockets), rr sends it
 * half of those. Nothing started after the switch noticed may fail.
 */
function bound (out: readonly Outcome[], killMs: number, downMs: number): number {
  return CONCURRENCY + Math.ceil(out.filter((o) => o.startMs >= killMs && o.startMs < downMs).length / 2)
}

function summary (out: readonly Outcome[], killMs: number, downMs: number): string {
  const after = (t: number): Outcome[] => out.filter((o) => o.startMs >= t)
  return `${out.length} requests, ${out.filter(failed).length} failed; started after the kill: ${after(killMs).length} ` +
    `(${after(killMs).filter(failed).length} failed); started after the switch noticed (${downMs - killMs} ms after ` +
    `the kill): ${after(downMs).length} (${after(downMs).filter(failed).length} failed); bound ${bound(out, killMs, downMs)}`
}

describe.runIf(process.platform === 'linux' && native.available)('a back end killed under load', () => {
  const h: Harness = harness()
  const f = fixtures()
  afterAll(async () => {
    await h.close()
    await f.close()
  })

  it('handoff: no new connection fails once its channel closed; only the ones it held are lost', async () => {
    const [a] = await Promise.all([f.start('hA', { handoff: h.sock('hA') }), f.start('hB', { handoff: h.sock('hB') })])
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: rr
    servers:
      - { name: hA, handoff: ${h.sock('hA')} }
      - { name: hB, handoff: ${h.sock('hB')} }
`)
    await waitFor(() => stateOf(baton, 'hA') === 'up' && stateOf(baton, 'hB') === 'up', 5000)
    const t0 = Date.now()
    let killMs = 0
    const out = await load(baton.ports[0]!, CONCURRENCY, () => Date.now() - t0 > LOAD_MS, async () => {
      await sleep(KILL_AT_MS)
      killMs = Date.now()
      a.child.kill('SIGKILL')
    })
    const down = stateLines(h.logs, 'hA').find((l) => l.state === 'down')
    expect(down).toMatchObject({ cause: 'channel-down', from: 'up' })
    const downMs = down!.time as number
    console.log(`handoff kill -9: ${summary(out, killMs, downMs)}`)
    expect(out.filter((o) => o.startMs < killMs && o.backend === 'hA').length).toBeGreaterThan(0) // it took load
    expect(out.filter((o) => o.startMs >= downMs).filter(failed)).toEqual([])
    expect(out.filter(failed).length).toBeLessThanOrEqual(bound(out, killMs, downMs))
    expect(out.filter((o) => o.startMs >= downMs).length).toBeGreaterThan(10)
    expect(stateOf(baton, 'hA')).toBe('down')
  })

  // Once the killed process's sockets are closed its port refuses connects; a refused connect is retried on
  // the other server before any byte reached the client, and is the passive signal that takes the server out
  // (at once without active checks; with them it counts as a failed check, `fall` of them in a row). So the
  // failures are bounded as for handoff (bound() above), and none comes after that first passive signal.
  const cases = [
    { forward: native.available ? 'splice' : 'pipe', health: '', cause: 'connect-failed' },
    { forward: 'pipe', health: 'health: { tcp: true, intervalMs: 5000, fall: 2 }', cause: 'check-failed' },
  ]
  for (const { forward, health, cause } of cases) {
    it(`relayed (${forward}${health === '' ? '' : ', active checks'}): failures bounded, none after the first passive signal`, async () => {
      const [a, b] = await Promise.all([f.start(`${forward}A`, { listen: '127.0.0.1:0' }), f.start(`${forward}B`, { listen: '127.0.0.1:0' })])
      const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: rr
    ${health}
    servers:
      - { name: ${forward}A, address: 127.0.0.1:${a.port}, forward: ${forward} }
      - { name: ${forward}B, address: 127.0.0.1:${b.port}, forward: ${forward} }
`)
      const t0 = Date.now()
      let killMs = 0
      const out = await load(baton.ports[0]!, CONCURRENCY, () => Date.now() - t0 > LOAD_MS, async () => {
        await sleep(KILL_AT_MS)
        killMs = Date.now()
        a.child.kill('SIGKILL')
      })
      const down = stateLines(h.logs, `${forward}A`).find((l) => l.state === 'down')
      expect(down).toMatchObject({ cause })
      const downMs = down!.time as number
      console.log(`relayed (${forward}, ${health === '' ? 'passive only' : 'fall 2'}) kill -9: ${summary(out, killMs, downMs)}`)
      expect(out.filter((o) => o.startMs < killMs && o.backend === `${forward}A`).length).toBeGreaterThan(0)
      expect(out.filter(failed).length).toBeLessThanOrEqual(bound(out, killMs, downMs))
      expect(out.filter((o) => o.startMs >= downMs).filter(failed)).toEqual([])
    })
  }
})
