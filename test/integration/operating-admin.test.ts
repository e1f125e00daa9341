// The admin API's write routes over real sockets: JSON in and out, errors as { code, message } with their
// status, bodies capped, browsers refused, and the bearer token (401 without, 200 with; ctl finds it).
import fs from 'node:fs'
import path from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, type Harness } from '../helpers/cluster'
import { ctl } from '../helpers/operating'

const TOKEN = 'test-token-0123456789abcdef'

describe.runIf(process.platform === 'linux' && native.available)('operating: admin write API', () => {
  let h: Harness
  let base: string
  let file: string
  let b: Awaited<ReturnType<Harness['baton']>>

  const call = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', p: string, body?: unknown, headers: Record<string, string> = {}):
  Promise<{ status: number, body: Record<string, unknown>, headers: Record<string, unknown> }> => {
    const res = await request(`${base}${p}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    })
    const text = await res.body.text()
    let json: Record<string, unknown> = {}
    try { json = JSON.parse(text) as Record<string, unknown> } catch {}
    return { status: res.statusCode, body: json, headers: res.headers }
  }

  beforeAll(async () => {
    h = harness()
    await h.backend('a')
    fs.writeFileSync(path.join(h.dir, 'admin.token'), `${TOKEN}\n`)
    const yaml = [
      'listen: 127.0.0.1:0',
      'admin: { listen: 127.0.0.1:0, tokenFile: ./admin.token }',
      'services:',
      `  - { name: s, scheduler: rr, servers: [ { name: a, handoff: ${h.sock('a')} } ] }`,
      '',
    ].join('\n')
    file = path.join(h.dir, 'baton.yaml')
    fs.writeFileSync(file, yaml)
    b = await h.baton(yaml)
    base = `http://${b.admin!}`
  })
  afterAll(async () => { await h.close() })

  it('requires the bearer token for writes (401 without, 200 with); reads stay open', async () => {
    const without = await call('POST', '/servers/s/a/weight', { weight: 2 }, { authorization: '' })
    expect(without).toMatchObject({ status: 401, body: { code: 'BATON_ERR_ADMIN_AUTH' }, headers: { 'www-authenticate': 'Bearer realm="baton"' } })
    expect((await call('POST', '/servers/s/a/weight', { weight: 2 }, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401)
    expect((await call('POST', '/reload', undefined, { authorization: 'Basic eDp5' })).status).toBe(401)
    expect(b.servers()[0]!.configWeight).toBe(1)
    const ok = await call('POST', '/servers/s/a/weight', { weight: 2 })
    expect(ok).toMatchObject({ status: 200, body: { service: 's', id: 'a', configWeight: 2 } })
    expect((await request(`${base}/servers`)).statusCode).toBe(200)
  })

  it('lets ctl use the token from --token or the config\'s tokenFile', async () => {
    const denied = await ctl('--admin', b.admin!, 'weight', 's', 'a', '3')
    expect(denied).toMatchObject({ code: 1, stderr: expect.stringMatching(/^baton ctl: weight refused: BATON_ERR_ADMIN_AUTH: .* \(401\)\n$/) })
    expect((await ctl('--admin', b.admin!, '--token', TOKEN, 'weight', 's', 'a', '3')).code).toBe(0)
    expect((await ctl('--admin', b.admin!, '-c', file, 'weight', 's', 'a', '1')).stdout).toMatch(/^s\/a: state up, weight 1\/1/)
  })

  it('answers errors as JSON { code, message } with their status', async () => {
    expect(await call('POST', '/servers/s/zz/weight', { weight: 1 })).toMatchObject({ status: 404, body: { code: 'BATON_ERR_CLUSTER_VERB', message: 'service s has no server zz' } })
    expect(await call('POST', '/servers/nope/a/state', { state: 'drain' })).toMatchObject({ status: 404, body: { code: 'BATON_ERR_CLUSTER_VERB' } })
    expect(await call('POST', '/servers/s/a/weight', { weight: -1 })).toMatchObject({ status: 400, body: { code: 'BATON_ERR_CLUSTER_VERB' } })
    expect(await call('POST', '/servers/s/a/state', { state: 'off' })).toMatchObject({ status: 400, body: { message: 'state must be up, drain or maint, got "off"' } })
    expect(await call('PUT', '/servers/s/a', { handoff: h.sock('a') })).toMatchObject({ status: 409, body: { code: 'BATON_ERR_CLUSTER_VERB' } })
    expect(await call('PUT', '/servers/t/x', { handoff: h.sock('a') })).toMatchObject({ status: 404 })
    expect(await call('DELETE', '/servers/s/zz')).toMatchObject({ status: 404, body: { code: 'BATON_ERR_CLUSTER_VERB' } })
    const bad = await call('PUT', '/servers/s/x', { address: '10.0.0.1:80', handoff: '/x.sock', weight: 'heavy', color: 1 })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe('BATON_ERR_CONFIG_INVALID')
    expect(bad.body.issues).toEqual([
      'weight: must be an integer 0..65535, got "heavy"',
      'color: unknown key (valid keys here: name, handoff, address, agent, forward, weight, maxConns, minConns, proxyProtocol, health)',
      'server "x" needs exactly one of handoff: <socket path> or address: "host:port"',
    ])
    expect(b.servers().map((r) => r.id)).toEqual(['a'])
  })

  it('refuses unknown routes (404), wrong methods (405), bad bodies (400), large bodies (413) and browsers (403)', async () => {
    expect(await call('POST', '/nope')).toMatchObject({ status: 404, body: { code: 'BATON_ERR_ADMIN_REQUEST' } })
    expect(await call('POST', '/servers/s/a/frob', {})).toMatchObject({ status: 404 })
    expect(await call('POST', '/servers')).toMatchObject({ status: 405, body: { code: 'BATON_ERR_ADMIN_REQUEST' } })
    expect(await call('GET', '/reload')).toMatchObject({ status: 404 })          // the read side's own 404
    expect(await call('POST', '/servers/s/a', { weight: 1 })).toMatchObject({ status: 405 })
    expect(await call('POST', '/servers/s/a/weight', '{"weight":')).toMatchObject({ status: 400, body: { code: 'BATON_ERR_ADMIN_REQUEST' } })
    expect(await call('POST', '/servers/s/a/weight', '{"weight":1}', { 'content-type': 'text/plain' })).toMatchObject({ status: 400 })
    expect(await call('POST', '/servers/s/a/weight', { weight: 1, pad: 'x'.repeat(70_000) })).toMatchObject({ status: 413, body: { code: 'BATON_ERR_ADMIN_REQUEST' } })
    expect(await call('POST', '/servers/s/a/weight', { weight: 1 }, { origin: 'http://evil.example' })).toMatchObject({ status: 403, body: { code: 'BATON_ERR_ADMIN_AUTH' } })
  })

  it('adds and removes a server, and reloads from the file', async () => {
    const added = await call('PUT', '/servers/s/a2', { handoff: h.sock('a'), weight: 2 })
    expect(added).toMatchObject({ status: 201, body: { service: 's', id: 'a2', configWeight: 2, method: 'handoff' } })
    expect(b.servers().map((r) => r.id)).toEqual(['a', 'a2'])
    expect(await call('DELETE', '/servers/s/a2')).toMatchObject({ status: 200, body: { ok: true, service: 's', server: 'a2' } })
    expect(await call('PUT', '/servers/s/a3', { handoff: h.sock('a') })).toMatchObject({ status: 201 })
    expect(await call('POST', '/servers/s/a/weight', { weight: 9 })).toMatchObject({ status: 200 })
    expect(await call('POST', '/reload')).toMatchObject({ status: 200, body: { ok: true, removed: ['s/a3'], changed: ['s/a'] } })
    expect(b.servers().map((r) => [r.id, r.configWeight])).toEqual([['a', 1]])   // the file wins
  })

  it('setState throws BATON_ERR_CLUSTER_VERB for unknown names', () => {
    expect(() => { b.setState('s', 'nope', 'drain') }).toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
    expect(() => { b.setState('nope', 'a', 'drain') }).toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
    expect(() => { b.setState('s', 'a', 'off' as 'up') }).toThrow(expect.objectContaining({ code: 'BATON_ERR_CLUSTER_VERB' }))
  })
})
