// Graceful shutdown of `baton start` (a real process): on SIGTERM it stops accepting, answers or forwards
// every connection it already accepted (heads still arriving included), lets relays finish within
// limits.shutdownTimeoutMs, then exits 0; kept-alive connections handed off go on with their back ends.
// A second signal exits at once.
import net from 'node:net'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, harness, waitFor, type Harness } from '../helpers/cluster'
import { freePort, keepAlive, killSwitches, load, sleep, startSwitch } from '../helpers/operating'

function config (h: Harness, relayPort: number, shutdownTimeoutMs: number): string {
  return [
    'listen: 127.0.0.1:0',
    `limits: { shutdownTimeoutMs: ${shutdownTimeoutMs}, headerTimeoutMs: 8000 }`,
    'services:',
    `  - { name: s, scheduler: rr, servers: [ { name: a, handoff: ${h.sock('a')} }, { name: b, handoff: ${h.sock('b')} } ] }`,
    `  - { name: r, servers: [ { name: slow, address: 127.0.0.1:${relayPort} } ] }`,
    'routes: [ { match: { path: /r/ }, service: r }, { service: s } ]',
    '',
  ].join('\n')
}

/** Connects and sends the start of a head; complete() sends the rest and resolves with the response. */
async function partialHead (port: number): Promise<{ complete: () => Promise<{ status: number, backend: string }> }> {
  const s = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  s.write('GET /partial HTTP/1.1\r\nHost: t\r\n')
  let data = ''
  const done = new Promise<{ status: number, backend: string }>((resolve, reject) => {
    s.on('data', (d: Buffer) => { data += d.toString('latin1') })
    s.on('error', reject)
    s.on('close', () => {
      resolve({ status: Number(data.split(' ')[1] ?? 0), backend: /x-baton-backend: (\S+)/i.exec(data)?.[1] ?? '' })
    })
  })
  return { complete: async () => { s.write('Connection: close\r\n\r\n'); return done } }
}

const connectRefused = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1')
  s.once('connect', () => { s.destroy(); resolve(false) })
  s.once('error', (err: NodeJS.ErrnoException) => { resolve(err.code === 'ECONNREFUSED') })
})

describe.runIf(process.platform === 'linux' && native.available)('operating: graceful shutdown', () => {
  let h: Harness
  let relayPort: number
  beforeAll(async () => {
    h = harness()
    relayPort = await freePort()
    await Promise.all([h.backend('a'), h.backend('b'), h.backend('slow', { listen: `127.0.0.1:${relayPort}` })])
  })
  afterAll(async () => {
    await killSwitches()
    await h.close()
  })

  it('on SIGTERM under load: answers or hands off every accepted connection, then exits 0', async () => {
    const sw = await startSwitch(path.join(h.dir, 'term.yaml'), config(h, relayPort, 10_000))
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 10_000)
    const l = load(sw.port)
    const kept = await keepAlive(sw.port)
    const first = await kept.get('/k1')
    const heads = await Promise.all([1, 2, 3].map(() => partialHead(sw.port)))
    const relayed = exchange(sw.port, 'GET /r/slow?delayMs=1500 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', { timeoutMs: 20_000 })
    await sleep(300)                                          // heads and the relay are the dispatcher's now

    sw.child.kill('SIGTERM')
    await waitFor(() => sw.logs.some((x) => String(x.msg).startsWith('shutting down')), 10_000)
    expect(sw.logs.find((x) => String(x.msg).startsWith('shutting down'))).toMatchObject({ pending: { head: 3 }, relays: 1 })
    expect(await connectRefused(sw.port)).toBe(true)          // not accepting any more
    const all = await l.stop()

    for (const head of heads) expect(await head.complete()).toMatchObject({ status: 200, backend: expect.stringMatching(/^[ab]$/) })
    const slow = await relayed
    expect(slow.responses[0]).toMatchObject({ status: 200, headers: { 'x-baton-backend': 'slow' } })
    expect(await kept.get('/k2')).toBe(first)                 // handed off: the back end answers it
    expect(await sw.exited).toEqual({ code: 0, signal: null })
    expect(await kept.get('/k3')).toBe(first)                 // even with the switch gone
    kept.close()

    // Requests that lost the race with the closing listener were refused or reset by the kernel, never
    // accepted and dropped: no status error, no accepted connection closed without an answer.
    const failed = [...all].filter(([k]) => k.startsWith('error'))
    expect(failed.filter(([k]) => !/ECONNREFUSED|ECONNRESET/.test(k))).toEqual([])
    expect((all.get('a') ?? 0) + (all.get('b') ?? 0)).toBeGreaterThan(10)
    expect(sw.logs.at(-1)).toMatchObject({ msg: 'baton stopped' })
  })

  it('closes relays still open at limits.shutdownTimeoutMs, then exits 0', async () => {
    const sw = await startSwitch(path.join(h.dir, 'timeout.yaml'), config(h, relayPort, 300))
    const relayed = exchange(sw.port, 'GET /r/slow?delayMs=20000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', { timeoutMs: 20_000 })
      .then((r) => r.raw, (err: Error) => err.message)
    await waitFor(() => sw.logs.some((x) => x.msg === 'baton started'), 10_000)
    await sleep(300)
    const t0 = Date.now()
    sw.child.kill('SIGTERM')
    expect(await sw.exited).toEqual({ code: 0, signal: null })
    expect(Date.now() - t0).toBeLessThan(5000)
    expect(await relayed).not.toContain('200 OK')               // cut, not answered
    expect(sw.logs.some((x) => x.msg === 'shutdown timeout: closing what is left' && x.relaysLeft === 1)).toBe(true)
  })

  it('exits at once, with 1, on a second signal', async () => {
    const sw = await startSwitch(path.join(h.dir, 'twice.yaml'), config(h, relayPort, 60_000))
    const relayed = exchange(sw.port, 'GET /r/slow?delayMs=20000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n', { timeoutMs: 20_000 })
      .catch(() => undefined)
    await sleep(300)
    sw.child.kill('SIGTERM')
    await waitFor(() => sw.logs.some((x) => String(x.msg).startsWith('shutting down')), 10_000)
    const t0 = Date.now()
    sw.child.kill('SIGINT')
    expect(await sw.exited).toEqual({ code: 1, signal: null })
    expect(Date.now() - t0).toBeLessThan(5000)
    await relayed
  })
})
