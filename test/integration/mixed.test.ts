// One service mixing a handoff server, a relayed server and a dead relayed server, through the dispatcher:
// a refused connect retries another server before any byte reached the client, holds the dead one down,
// and counters follow relayed connections too.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, harness, waitFor, type Harness } from '../helpers/cluster'

async function freePort (): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

describe.runIf(process.platform === 'linux' && native.available).each(['splice', 'pipe'])('a mixed service (%s)', (method) => {
  let h: Harness
  let b: Awaited<ReturnType<Harness['baton']>>

  beforeAll(async () => {
    h = harness()
    const live = await freePort()
    const dead = await freePort()
    await h.backend('h1')
    await h.backend('r1', { listen: `127.0.0.1:${live}` })
    b = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: mixed
    scheduler: rr
    servers:
      - { name: dead, address: 127.0.0.1:${dead}, forward: ${method} }
      - { name: h1, handoff: ${h.sock('h1')} }
      - { name: r1, address: 127.0.0.1:${live}, forward: ${method} }
`)
  })
  afterAll(async () => { await h.close() })

  it('retries past a refused connect, holds the dead server down, and serves every request', async () => {
    const seen: string[] = []
    for (let i = 0; i < 12; i++) {
      const { responses } = await exchange(b.ports[0]!, `GET /m/${i} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`, { expect: 1 })
      expect(responses[0]!.status).toBe(200)
      seen.push(responses[0]!.headers['x-baton-backend']!)
    }
    expect(new Set(seen)).toEqual(new Set(['h1', 'r1']))
    const dead = b.servers().find((s) => s.id === 'dead')!
    expect(dead.up).toBe(false)
  })

  it('counts a relayed connection as active while it lasts', async () => {
    const r1 = (): number => b.servers().find((x) => x.id === 'r1')!.active
    // Open kept-alive connections until one lands on r1 (rr walks the other servers in between).
    for (let attempt = 0; attempt < 6; attempt++) {
      const s = net.connect(b.ports[0]!, '127.0.0.1')
      let data = ''
      s.on('data', (d) => { data += d.toString() })
      await new Promise((r) => s.once('connect', r))
      s.write('GET /hold HTTP/1.1\r\nHost: e\r\n\r\n')
      await waitFor(() => data.endsWith('}\n'))
      if (!data.includes('x-baton-backend: r1')) { s.destroy(); continue }
      expect(r1()).toBe(1)
      s.destroy()
      await waitFor(() => r1() === 0)
      return
    }
    throw new Error('no connection landed on r1 in 6 tries')
  })
})
