// A handoff back end that stops without closing its channel (SIGSTOP): real back-end processes, the real
// switch. It leaves rotation within a bound of limits.channelTimeoutMs, new connections go to the other back
// end and none hangs, and it is picked again once it continues (SIGCONT). Connections sent to it before it was
// noticed wait in its socket and resume when it continues; the test only makes sure they end.
import type { ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { afterAll, describe, expect, it } from 'vitest'
import type { Baton } from '../../src/baton'
import { native } from '../../src/native/binding'
import { exchange, harness, waitFor, type Harness } from '../helpers/cluster'

const TIMEOUT_MS = 300
const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`

describe.runIf(process.platform === 'linux' && native.available)('a handoff back end that stops without closing', () => {
  const h: Harness = harness()
  const stopped = new Set<ChildProcess>()
  afterAll(async () => {
    for (const c of stopped) c.kill('SIGCONT')
    await h.close() // SIGKILLs every back end
  })

  const backendOf = async (port: number, path: string): Promise<string> => {
    const { responses } = await exchange(port, get(path), { expect: 1, timeoutMs: 3000 })
    return responses[0]!.headers['x-baton-backend']!
  }
  const isUp = (b: Baton, id: string): boolean => b.servers().find((s) => s.id === id)!.up

  it('leaves rotation within the bound, others take every new connection, and it is picked again after SIGCONT', async () => {
    const [a] = await Promise.all([h.backend('A'), h.backend('B')])
    const baton = await h.baton(`
listen: 127.0.0.1:0
limits: { channelTimeoutMs: ${TIMEOUT_MS} }
services:
  - name: web
    scheduler: rr
    servers:
      - { name: A, handoff: ${h.sock('A')} }
      - { name: B, handoff: ${h.sock('B')} }
`)
    const port = baton.ports[0]!
    const first = new Set<string>()
    for (let i = 0; i < 4; i++) first.add(await backendOf(port, `/before/${i}`))
    expect(first).toEqual(new Set(['A', 'B']))

    // Stop A, and keep clients coming while it is not noticed yet: about half go to A and wait there.
    stopped.add(a)
    a.kill('SIGSTOP')
    const t0 = performance.now()
    const early: Array<Promise<unknown>> = []
    while (isUp(baton, 'A') && performance.now() - t0 < 5 * TIMEOUT_MS) {
      early.push(exchange(port, get(`/early/${early.length}`), { expect: 1, timeoutMs: 20_000 }).catch((err: unknown) => err))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const detectMs = performance.now() - t0
    expect(isUp(baton, 'A')).toBe(false)
    expect(detectMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 20)
    expect(detectMs).toBeLessThan(5 * TIMEOUT_MS)
    expect(isUp(baton, 'B')).toBe(true)
    const unresponsive = h.logs.filter((l) => l.msg === 'handoff channel unresponsive')
    expect(unresponsive).toHaveLength(1)
    expect(unresponsive[0]).toMatchObject({ backend: 'A', code: 'BATON_ERR_CHANNEL_DOWN' })
    expect(h.logs.some((l) => l.msg === 'handoff channel down')).toBe(false) // the channel stays open

    // Every new connection is answered, by B, and none hangs.
    const t1 = performance.now()
    const after = await Promise.all(Array.from({ length: 50 }, (_, i) => backendOf(port, `/after/${i}`)))
    expect(after.filter((b) => b !== 'B')).toEqual([])
    const fiftyMs = performance.now() - t1

    // A continues: it answers the pings it missed and is picked again.
    a.kill('SIGCONT')
    stopped.delete(a)
    const t2 = performance.now()
    await waitFor(() => isUp(baton, 'A'), 5 * TIMEOUT_MS)
    const recoverMs = performance.now() - t2
    const again = new Set<string>()
    for (let i = 0; i < 4; i++) again.add(await backendOf(port, `/again/${i}`))
    expect(again).toEqual(new Set(['A', 'B']))

    const ended = await Promise.all(early) // they resumed with A (or failed): only make sure none is left behind
    const answered = ended.filter((r) => !(r instanceof Error)).length
    console.log(`channelTimeoutMs ${TIMEOUT_MS}: A down ${detectMs.toFixed(0)} ms after SIGSTOP (${answered} of ` +
      `${early.length} connections sent meanwhile answered in the end), 50 connections answered by B in ` +
      `${fiftyMs.toFixed(0)} ms, A up ${recoverMs.toFixed(0)} ms after SIGCONT`)
  })
})
