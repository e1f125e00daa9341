// Without the native addon (BATON_NO_NATIVE=1 in both processes) Baton says so once and still serves:
// a JavaScript listener reads the head, the connection is relayed to the back end's stream socket with a
// PROXY v2 header, and the back end still sees the real client address.
import { spawn, fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { exchange, ROOT, waitFor } from '../helpers/cluster'

const env = { ...process.env, BATON_NO_NATIVE: '1' }

describe.runIf(process.platform === 'linux')('without the native addon', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-nonative-'))
  const children: ChildProcess[] = []
  let out = ''
  let port = 0

  beforeAll(async () => {
    const backend = fork(path.join(ROOT, 'dist/src/demo/backend.js'), ['--name', 'js1', '--handoff', path.join(dir, 'js1.sock')],
      { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(backend)
    await new Promise((resolve) => backend.once('message', resolve))
    fs.writeFileSync(path.join(dir, 'baton.yaml'), `
listen: 127.0.0.1:0
services: [ { name: s, scheduler: rr, servers: [ { name: js1, handoff: ${path.join(dir, 'js1.sock')} } ] } ]
`)
    const baton = spawn(process.execPath, [path.join(ROOT, 'dist/src/cli/main.js'), 'start', '-c', path.join(dir, 'baton.yaml')],
      { env, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(baton)
    baton.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    await waitFor(() => out.includes('baton started'), 5000)
    const started = out.split('\n').map((l) => (l.startsWith('{') ? JSON.parse(l) as Record<string, unknown> : {}))
      .find((l) => l.msg === 'baton started')!
    port = Number(String((started.listen as string[])[0]).split(':')[1])
  })
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('says so once', () => {
    const warnings = out.split('\n').filter((l) => l.includes('BATON_ERR_NATIVE_UNAVAILABLE'))
    expect(warnings).toHaveLength(1)
    expect(out).toContain('"native":false')
  })

  it('serves keep-alive requests by relaying, and the back end sees the client address', async () => {
    const req = 'GET /one HTTP/1.1\r\nHost: e\r\n\r\nGET /two HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n'
    const { responses, local } = await exchange(port, req, { expect: 2 })
    expect(responses.map((r) => r.status)).toEqual([200, 200])
    const bodies = responses.map((r) => JSON.parse(r.body) as { url: string; client: string; backend: string })
    expect(bodies.map((b) => b.url)).toEqual(['/one', '/two'])
    expect(bodies[0]!.backend).toBe('js1')
    expect(bodies[0]!.client).toBe(`${local.address}:${local.port}`)
  })

  it('still rejects bad input itself', async () => {
    const { responses } = await exchange(port, 'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')
    expect(responses[0]!.status).toBe(400)
  })
})
