// The public face: `require('baton')` and `require('baton/backend')` resolve, and a Baton is started,
// changed while it serves (weights, servers, a reloaded config) and closed through the public API alone.
import { execFile } from 'node:child_process'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Baton, parseConfig, type ServerSnapshot } from '../../src/index'
import { native } from '../../src/native/binding'
import { exchange, harness, ROOT, waitFor, type Harness } from '../helpers/cluster'

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n`

function run (code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

describe('the package', () => {
  it('resolves require("baton") and require("baton/backend") from the built package', async () => {
    const out = await run(`const b = require('baton'); const be = require('baton/backend');
      console.log([typeof b.startBaton, typeof b.Baton, typeof b.parseConfig, typeof b.BatonError,
        typeof be.acceptHandoffs, typeof be.handoffInfo].join(' '))`)
    expect(out).toBe('function function function function function function')
  })
})

describe.runIf(process.platform === 'linux' && native.available)('class Baton', () => {
  let h: Harness
  let baton: Baton
  let port: number
  const yaml = (servers: string, extra = ''): string => `
listen: 127.0.0.1:0
services:
  - name: s
    scheduler: rr
    servers:
${servers}
${extra}`
  const row = (id: string): ServerSnapshot => baton.servers().find((r) => r.id === id)!
  const backendOf = async (): Promise<string> => (await exchange(port, get('/x'))).responses[0]?.headers['x-baton-backend'] ?? '-'

  beforeAll(async () => {
    h = harness()
    await Promise.all(['A', 'B', 'C'].map((n) => h.backend(n)))
    baton = new Baton(parseConfig(yaml(`      - { name: A, handoff: ${h.sock('A')} }\n      - { name: B, handoff: ${h.sock('B')} }`),
      `${h.dir}/baton.yaml`), { logger: h.logger })
    await baton.start()
    port = baton.ports[0]!
    await waitFor(() => row('A').up && row('B').up)
  })
  afterAll(async () => {
    await baton.close()
    await h.close()
  })

  it('serves, and shows every server as ipvsadm -L would', async () => {
    const seen = new Set([await backendOf(), await backendOf()])
    expect(seen).toEqual(new Set(['A', 'B']))
    expect(row('A')).toMatchObject({ service: 's', method: 'handoff', up: true, weight: 1, configWeight: 1 })
  })

  it('drains a server with weight 0: no new connections, and says so', async () => {
    baton.setWeight('s', 'A', 0)
    expect(row('A')).toMatchObject({ weight: 0, configWeight: 0, up: true })
    for (let i = 0; i < 4; i++) expect(await backendOf()).toBe('B')
    baton.setWeight('s', 'A', 1)
  })

  it('refuses verbs on unknown names with BATON_ERR_CLUSTER_VERB, changing nothing', () => {
    expect(() => baton.setWeight('s', 'nope', 1)).toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
    expect(() => baton.setWeight('nope', 'A', 1)).toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
    expect(() => baton.setWeight('s', 'A', 70000)).toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
    expect(() => baton.addServer('s', { name: 'A', handoff: h.sock('C'), weight: 1, maxConns: 0, minConns: 0 }))
      .toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
    expect(baton.servers().map((r) => r.id)).toEqual(['A', 'B'])
  })

  it('adds and removes servers while it serves', async () => {
    baton.addServer('s', { name: 'C', handoff: h.sock('C'), weight: 1, maxConns: 0, minConns: 0 })
    await waitFor(() => row('C')?.up === true)
    const seen = new Set<string>()
    for (let i = 0; i < 6; i++) seen.add(await backendOf())
    expect(seen).toEqual(new Set(['A', 'B', 'C']))
    baton.removeServer('s', 'C')
    expect(baton.servers().map((r) => r.id)).toEqual(['A', 'B'])
    for (let i = 0; i < 4; i++) expect(await backendOf()).not.toBe('C')
  })

  it('reloads as a diff: a surviving server keeps its counters and channel, a removed one gets nothing new', async () => {
    // An idle kept-alive connection on A: A's inactive count is 1 once the back end reports.
    let idle: net.Socket | undefined
    for (let i = 0; i < 4 && idle === undefined; i++) {
      const s = net.connect(port, '127.0.0.1')
      const got = await new Promise<string>((resolve) => {
        s.once('data', (d) => resolve(d.toString()))
        s.write('GET /keep HTTP/1.1\r\nHost: e\r\n\r\n')
      })
      if (got.includes('x-baton-backend: A')) idle = s
      else s.destroy()
    }
    expect(idle).toBeDefined()
    await waitFor(() => row('A').inactive === 1)
    const channelUps = (): number => h.logs.filter((l) => l.msg === 'handoff channel up').length
    const upsBefore = channelUps()
    const diff = baton.reload(parseConfig(yaml(
      `      - { name: A, handoff: ${h.sock('A')}, weight: 2 }\n      - { name: C, handoff: ${h.sock('C')} }`,
      'routes: [ { match: { path: /x }, service: s } ]'), `${h.dir}/baton.yaml`))
    expect(diff).toEqual({ added: ['s/C'], removed: ['s/B'], changed: ['s/A'] })
    expect(row('A')).toMatchObject({ inactive: 1, up: true, weight: 2, configWeight: 2 })
    await waitFor(() => row('C')?.up === true)
    for (let i = 0; i < 6; i++) expect(['A', 'C']).toContain(await backendOf())
    expect((await exchange(port, get('/nope'))).responses[0]?.status).toBe(404) // the new routes are in force
    // The kept-alive connection was not touched: it still talks to A (its next request routes by the new
    // routes, to the same service, so it stays).
    const again = await new Promise<string>((resolve) => {
      idle!.once('data', (d) => resolve(d.toString()))
      idle!.write('GET /x/keep HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n')
    })
    expect(again).toContain('x-baton-backend: A')
    idle!.destroy()
    expect(channelUps() - upsBefore).toBe(1) // C's channel only: A's channel survived the reload
  })
})
