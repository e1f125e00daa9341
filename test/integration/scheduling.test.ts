// Schedulers through the running switch: real connections, real back ends, the feedback channel driving
// the counters.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import net from 'node:net'
import { exchange, harness, waitFor, type Harness } from '../helpers/cluster'

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`

describe.runIf(process.platform === 'linux' && native.available)('scheduling through the switch', () => {
  let h: Harness
  let port: number

  beforeAll(async () => {
    h = harness()
    await Promise.all(['A', 'B', 'C', 'L1', 'L2', 'L3'].map((n) => h.backend(n)))
    const b = await h.baton(`
listen: 127.0.0.1:0
services:
  - name: weighted
    scheduler: wrr
    servers:
      - { name: A, handoff: ${h.sock('A')}, weight: 4 }
      - { name: B, handoff: ${h.sock('B')}, weight: 3 }
      - { name: C, handoff: ${h.sock('C')}, weight: 2 }
  - name: local
    scheduler: lblcr
    key: path
    servers:
      - { name: L1, handoff: ${h.sock('L1')} }
      - { name: L2, handoff: ${h.sock('L2')} }
      - { name: L3, handoff: ${h.sock('L3')} }
routes:
  - { match: { path: /w/ }, service: weighted }
  - { match: { path: /l/ }, service: local }
`)
    port = b.ports[0]!
  })
  afterAll(async () => { await h.close() })

  const backendOf = async (path: string): Promise<string> => {
    const { responses } = await exchange(port, get(path), { expect: 1 })
    return responses[0]!.headers['x-baton-backend']!
  }

  it('wrr with weights 4,3,2 gives AABABCABC over new connections', async () => {
    let seq = ''
    for (let i = 0; i < 18; i++) seq += await backendOf(`/w/${i}`)
    expect(seq).toBe('AABABCABC'.repeat(2))
  })

  it('lblcr keeps a hot path on its server and spreads distinct paths', async () => {
    // Distinct paths on connections held open: each new path goes to the least-loaded server, and the
    // connections it already holds are that load, so the paths spread over all three.
    const held: net.Socket[] = []
    const firsts = new Map<string, string>()
    for (let i = 0; i < 9; i++) {
      const path = `/l/item-${i}`
      const s = net.connect(port, '127.0.0.1')
      held.push(s)
      let data = ''
      s.on('data', (d) => { data += d.toString() })
      await new Promise((r) => s.once('connect', r))
      s.write(`GET ${path} HTTP/1.1\r\nHost: e\r\n\r\n`)
      await waitFor(() => data.endsWith('}\n'))
      firsts.set(path, /x-baton-backend: (\w+)/.exec(data)![1]!)
    }
    expect(new Set(firsts.values())).toEqual(new Set(['L1', 'L2', 'L3']))
    // A hot path keeps going to the server set it was given, connection after connection.
    for (const [path, server] of [...firsts].slice(0, 3)) {
      for (let i = 0; i < 5; i++) expect(await backendOf(path)).toBe(server)
    }
    for (const s of held) s.destroy()
  })
})
