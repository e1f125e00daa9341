// A dispatcher restart keeps least-connection scheduling right: the back end reports the connections it
// holds to the new dispatcher as soon as its channel connects (in answer to the first PING), and their
// later closes count down there. Also when the new dispatcher was already connected as the old one left.
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { fdCount, harness, parseResponses, waitFor, type Harness } from '../helpers/cluster'

/** Opens n kept-alive connections through the switch on `port`, each after one complete exchange. */
async function idleConnections (port: number, n: number): Promise<net.Socket[]> {
  return await Promise.all(Array.from({ length: n }, async (_, i) => await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let data = ''
    s.on('connect', () => s.write(`GET /k/${i} HTTP/1.1\r\nHost: e\r\n\r\n`))
    s.on('data', (d) => {
      data += d.toString('latin1')
      if (parseResponses(data).length >= 1) { s.removeAllListeners('data'); resolve(s) }
    })
    s.on('error', reject)
  })))
}

async function closeAll (sockets: net.Socket[]): Promise<void> {
  await Promise.all(sockets.map(async (s) => {
    if (s.destroyed) return
    const closed = new Promise((resolve) => s.once('close', resolve))
    s.destroy()
    await closed
  }))
}

describe.runIf(process.platform === 'linux' && native.available)('live counts after a dispatcher restart', () => {
  let h: Harness
  let sockets: net.Socket[] = []
  afterEach(async () => {
    await closeAll(sockets)
    sockets = []
    await h.close()
  })

  const config = (h: Harness): string =>
    `listen: 127.0.0.1:0\nservices: [ { name: s, scheduler: wlc, servers: [ { name: a1, handoff: ${h.sock('a1')} } ] } ]\n`
  const row = (b: Awaited<ReturnType<Harness['baton']>>) => b.servers().find((r) => r.id === 'a1')!

  it('reports the open connections to a dispatcher started after the old one closed', async () => {
    const fds = fdCount()
    h = harness()
    await h.backend('a1')
    const a = await h.baton(config(h))
    sockets = await idleConnections(a.ports[0]!, 5)
    await waitFor(() => row(a).inactive === 5 && row(a).active === 0, 5000)
    await a.close()
    const b = await h.baton(config(h))
    const t0 = Date.now()
    await waitFor(() => row(b).inactive === 5, 5000)
    expect(Date.now() - t0).toBeLessThan(2000) // at connect, not a heartbeat or a request later
    expect(row(b).active).toBe(0)
    await closeAll(sockets)
    await waitFor(() => row(b).inactive === 0 && row(b).active === 0, 5000)
    await h.close()
    expect(fdCount()).toBeLessThanOrEqual(fds + 2)
  })

  it('moves them to a dispatcher already connected when the old one closes, counting each once', async () => {
    h = harness()
    await h.backend('a1')
    const a = await h.baton(config(h))
    const b = await h.baton(config(h))
    sockets = await idleConnections(a.ports[0]!, 5)
    const more = await idleConnections(b.ports[0]!, 2)
    sockets.push(...more)
    await waitFor(() => row(a).inactive === 5 && row(b).inactive === 2, 5000)
    await a.close()
    await waitFor(() => row(b).inactive === 7, 5000)
    await closeAll(sockets.slice(0, 3))
    await waitFor(() => row(b).inactive === 4, 5000)
    await closeAll(sockets)
    await waitFor(() => row(b).inactive === 0 && row(b).active === 0, 5000)
  })
})
