// The back end's own word (baton/backend handle.setState / setWeight, sent as REPORT over the handoff
// channel), through the real switch with real back-end processes: drain stops new connections at once while
// open keep-alive connections go on being answered; ready brings it back; setWeight(50) halves its share; a
// back end that restarts does not inherit the word of the process before it.
import net from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, parseResponses, waitFor, type Harness } from '../helpers/cluster'
import { fixtures, get, picks, stateLines, stateOf, weightOf } from '../helpers/health'

/** A keep-alive client connection: one request at a time, each answer read whole. */
class KeepAlive {
  readonly #s: net.Socket
  #data = ''
  #want = 0
  #done: ((r: { status: number; backend: string | undefined }) => void) | undefined
  constructor (port: number) {
    this.#s = net.connect(port, '127.0.0.1')
    this.#s.on('data', (d) => {
      this.#data += d.toString('latin1')
      const rs = parseResponses(this.#data)
      if (rs.length >= this.#want && this.#done !== undefined) {
        const r = rs[this.#want - 1]!
        this.#done({ status: r.status, backend: r.headers['x-baton-backend'] })
        this.#done = undefined
      }
    })
  }

  request (p: string): Promise<{ status: number; backend: string | undefined }> {
    this.#want++
    return new Promise((resolve, reject) => {
      this.#done = resolve
      this.#s.once('close', () => { reject(new Error('keep-alive connection closed')) })
      this.#s.write(get(p, false))
    })
  }

  close (): void { this.#s.destroy() }
}

describe.runIf(process.platform === 'linux' && native.available)('the back end reports its state and weight', () => {
  const h: Harness = harness()
  const f = fixtures()
  const conns: KeepAlive[] = []
  afterAll(async () => {
    for (const c of conns) c.close()
    await h.close()
    await f.close()
  })

  async function setup (scheduler: string, weight: number): Promise<{ port: number; baton: Awaited<ReturnType<Harness['baton']>> }> {
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: ${scheduler}
    servers:
      - { name: A, handoff: ${h.sock('A')}, weight: ${weight} }
      - { name: B, handoff: ${h.sock('B')}, weight: ${weight} }
`)
    await waitFor(() => stateOf(baton, 'A') === 'up' && stateOf(baton, 'B') === 'up', 5000)
    return { port: baton.ports[0]!, baton }
  }

  it('drain stops new connections at once, open keep-alive ones go on; ready brings it back', async () => {
    const [a] = await Promise.all([f.start('A', { handoff: h.sock('A') }), f.start('B', { handoff: h.sock('B') })])
    const { port, baton } = await setup('rr', 1)
    let onA: KeepAlive | undefined
    for (let i = 0; i < 6 && onA === undefined; i++) { // rr: one of two connections lands on A
      const k = new KeepAlive(port)
      conns.push(k)
      if ((await k.request(`/ka/${i}`)).backend === 'A') onA = k
    }
    expect(onA).toBeDefined()

    await a.send({ state: 'drain' })
    await waitFor(() => stateOf(baton, 'A') === 'drain', 2000)
    expect(baton.servers().find((s) => s.id === 'A')).toMatchObject({ up: true, weight: 0, state: 'drain' })
    expect(stateLines(h.logs, 'A').at(-1)).toMatchObject({ state: 'drain', from: 'up', cause: 'agent' })
    expect(await picks(port, 20)).toEqual(new Map([['B', 20]]))
    for (let i = 0; i < 5; i++) expect(await onA!.request(`/ka/after-drain/${i}`)).toEqual({ status: 200, backend: 'A' })

    await a.send({ state: 'ready' })
    await waitFor(() => stateOf(baton, 'A') === 'up', 2000)
    expect(await picks(port, 20)).toEqual(new Map([['A', 10], ['B', 10]]))
    expect(stateLines(h.logs, 'A').at(-1)).toMatchObject({ state: 'up', from: 'drain', cause: 'agent' })

    await a.send({ state: 'maint' })
    await waitFor(() => stateOf(baton, 'A') === 'maint', 2000)
    expect(await picks(port, 10)).toEqual(new Map([['B', 10]]))
    await a.send({ state: 'ready' })
    await waitFor(() => stateOf(baton, 'A') === 'up', 2000)
    await baton.close()
  })

  it('setWeight(50) halves its share (wrr, weights 10 and 10: 5 of every 15 picks)', async () => {
    const a = await f.start('A2', { handoff: h.sock('A2') })
    await f.start('B2', { handoff: h.sock('B2') })
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: wrr
    servers:
      - { name: A2, handoff: ${h.sock('A2')}, weight: 10 }
      - { name: B2, handoff: ${h.sock('B2')}, weight: 10 }
`)
    const port = baton.ports[0]!
    await waitFor(() => stateOf(baton, 'A2') === 'up' && stateOf(baton, 'B2') === 'up', 5000)
    expect(await picks(port, 60)).toEqual(new Map([['A2', 30], ['B2', 30]]))
    await a.send({ weight: 50 })
    await waitFor(() => weightOf(baton, 'A2') === 5, 2000)
    expect(await picks(port, 60)).toEqual(new Map([['A2', 20], ['B2', 40]]))
    await a.send({ weight: 100 })
    await waitFor(() => weightOf(baton, 'A2') === 10, 2000)
    await baton.close()
  })

  it('a back end that restarts starts from ready, not from the word of the process before it', async () => {
    const a = await f.start('A3', { handoff: h.sock('A3') })
    await f.start('B3', { handoff: h.sock('B3') })
    const baton = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: web
    scheduler: rr
    servers:
      - { name: A3, handoff: ${h.sock('A3')} }
      - { name: B3, handoff: ${h.sock('B3')} }
`)
    await waitFor(() => stateOf(baton, 'A3') === 'up', 5000)
    await a.send({ state: 'drain' })
    await waitFor(() => stateOf(baton, 'A3') === 'drain', 2000)
    a.child.kill('SIGKILL')
    await waitFor(() => stateOf(baton, 'A3') === 'down', 2000)
    await f.start('A3', { handoff: h.sock('A3') }) // a new process on the same socket; it never said drain
    await waitFor(() => stateOf(baton, 'A3') === 'up', 10_000)
    expect((await picks(baton.ports[0]!, 10)).get('A3')).toBe(5)
    await baton.close()
  })
})
