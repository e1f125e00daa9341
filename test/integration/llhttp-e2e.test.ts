// The parser-agreement rule end to end: every request of llhttp's corpus goes through the real dispatcher to a
// real Node back end (llhttp). Either the dispatcher rejects it itself, or it routed on exactly the method,
// target and Host that the back end's parser reports for the first request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, harness, waitFor, type Harness } from '../helpers/cluster'
import { readCorpus } from '../helpers/llhttp-corpus'

const cases = readCorpus().filter((c) => !c.lenient)

function normalizeHost (h: string | undefined): string {
  if (h === undefined) return ''
  const host = h.toLowerCase()
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  const i = host.lastIndexOf(':')
  return i < 0 ? host : host.slice(0, i)
}

describe.runIf(process.platform === 'linux' && native.available)('llhttp corpus through the dispatcher', () => {
  let h: Harness
  let port: number
  const verdicts = { rejected: 0, routed: 0 }

  beforeAll(async () => {
    h = harness()
    await h.backend('echo')
    const b = await h.baton(`
listen: 127.0.0.1:0
limits: { headerTimeoutMs: 500 }
services: [ { name: all, scheduler: rr, servers: [ { name: echo, handoff: ${h.sock('echo')} } ] } ]
`)
    port = b.ports[0]!
  })
  afterAll(async () => {
    await h.close()
    console.log(`llhttp corpus end to end: ${verdicts.routed} routed, ${verdicts.rejected} rejected by the dispatcher, of ${cases.length}`)
  })

  it('has cases', () => { expect(cases.length).toBeGreaterThan(50) })

  it.each(cases.map((c) => [`${c.file}:${c.line} ${c.title}`, c] as const))('%s', async (_name, c) => {
    const before = h.logs.length
    const { responses, local } = await exchange(port, c.bytes, { expect: 1, timeoutMs: 3000 }).catch(() =>
      ({ responses: [], local: { address: '', port: 0 }, raw: '' }))
    const first = responses[0]
    if (first === undefined || first.headers['x-baton-error'] !== undefined) {
      // Rejected by the dispatcher (or the client was closed): nothing was routed for this connection.
      const routed = h.logs.slice(before).some((l) => l.client === `${local.address}:${local.port}` && l.outcome === 'handoff')
      expect(routed).toBe(false)
      verdicts.rejected++
      return
    }
    // Routed: the back end must have parsed the same first request the dispatcher routed on.
    expect(first.headers['x-baton-backend'], `back end's parser rejected what the dispatcher routed: ${first.status}`).toBe('echo')
    await waitFor(() => h.logs.slice(before).some((l) => l.client === `${local.address}:${local.port}`))
    const line = h.logs.slice(before).find((l) => l.client === `${local.address}:${local.port}`)!
    const seen = JSON.parse(first.body) as { method: string; url: string; host?: string }
    expect({ method: line.method, target: line.target, host: line.host })
      .toEqual({ method: seen.method, target: seen.url, host: normalizeHost(seen.host) })
    verdicts.routed++
  })
})
