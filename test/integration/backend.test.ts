// baton/backend: Node's own timeouts keep working on handed-off sockets, and the channel checks its peer.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { acceptHandoffs, type HandoffHandle } from '../../src/backend/index'
import { native } from '../../src/native/binding'
import { exchange, harness, ROOT, waitFor, type Harness } from '../helpers/cluster'

describe.runIf(process.platform === 'linux' && native.available)('baton/backend', () => {
  let h: Harness
  let server: http.Server
  let handle: HandoffHandle
  let port: number
  const errors: Error[] = []

  beforeAll(async () => {
    h = harness()
    // Not listening anywhere: acceptHandoffs must still get Node's connection tracking going.
    server = http.createServer({ headersTimeout: 300, requestTimeout: 600, connectionsCheckingInterval: 50 },
      (req, res) => { res.setHeader('x-baton-backend', 'inproc'); res.end(`${req.url}\n`) })
    // The mode is masked by the umask (fixed before bind, never widened later): 0o666 needs umask 0.
    const umask = process.umask(0)
    try {
      handle = await acceptHandoffs(server, { path: h.sock('inproc'), mode: 0o666, onError: (e) => errors.push(e) })
    } finally {
      process.umask(umask)
    }
    const b = await h.baton(`
listen: 127.0.0.1:0
services: [ { name: s, scheduler: rr, servers: [ { name: inproc, handoff: ${h.sock('inproc')} } ] } ]
`)
    port = b.ports[0]!
  })
  afterAll(async () => {
    await handle.close()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
    await h.close()
  })

  it('keeps Node\'s headersTimeout working on a handed-off connection', async () => {
    const s = net.connect(port, '127.0.0.1')
    let data = ''
    s.on('data', (d) => { data += d.toString() })
    await new Promise((r) => s.once('connect', r))
    s.write('GET /first HTTP/1.1\r\nHost: e\r\n\r\n')
    await waitFor(() => data.includes('/first\n'))
    // A second head that never completes: Node's parser on the back end must time it out itself.
    const t0 = Date.now()
    s.write('GET /second HTTP/1.1\r\nHost: e\r\n')
    await new Promise((r) => s.once('close', r))
    expect(data).toContain('408')
    expect(Date.now() - t0).toBeLessThan(3000)
  })

  // The peer starts as root (so it can load the addon from a checkout that other users cannot enter, such
  // as one under /root or a mktemp -d folder), then drops to nobody before it connects.
  it.runIf(process.getuid?.() === 0)('refuses a channel from a peer running as another uid (needs root)', async () => {
    // Let the peer reach the socket (0666 above), so that SO_PEERCRED, not file permissions, refuses it.
    fs.chmodSync(h.dir, 0o755)
    const script = `const { native } = require(${JSON.stringify(path.join(ROOT, 'dist/src/native/binding.js'))});
process.setgid(65534); process.setuid(65534);
const fd = native.seqpacketConnect(${JSON.stringify(h.sock('inproc'))});
const buf = Buffer.alloc(64), out = new Int32Array(2);
const until = Date.now() + 2000; let n;
while ((n = native.recvMsg(fd, buf, out)) === -native.constants.EAGAIN && Date.now() < until) {}
console.log(n === 0 ? 'closed' : 'open ' + n)`
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-peer-'))
    fs.chmodSync(tmp, 0o755)
    const file = path.join(tmp, 'peer.js')
    fs.writeFileSync(file, script)
    fs.chmodSync(file, 0o644)
    // Asynchronous: the back end under test runs in this process and must keep its event loop.
    const r = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [file], { encoding: 'utf8', timeout: 5000 },
        (_err, stdout, stderr) => resolve({ stdout, stderr }))
    })
    fs.rmSync(tmp, { recursive: true, force: true })
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('closed')
    await waitFor(() => errors.some((e) => (e as { code?: string }).code === 'BATON_ERR_CHANNEL_PEER'))
  })
})

// The dispatcher's side of the same check: a "back end" listening as nobody gets no connection, its server
// stays down, and clients get 503 rather than being handed to it.
describe.runIf(process.platform === 'linux' && native.available && process.getuid?.() === 0)(
  'the dispatcher checks its handoff peer (needs root)', () => {
    let h: Harness
    let peer: ChildProcess | undefined
    beforeAll(() => { h = harness() })
    afterAll(async () => {
      peer?.kill('SIGKILL')
      await h.close()
    })

    it('refuses to hand off to a back end running as another uid', async () => {
      const path = `@baton-test-foreign-${process.pid}`
      // Root loads the addon (the checkout may be closed to other users), then listens as nobody.
      const script = `const { native } = require(${JSON.stringify(`${ROOT}/dist/src/native/binding.js`)});
process.setgid(65534); process.setuid(65534);
const fd = native.seqpacketListen(${JSON.stringify(path)}, 16);
console.log('ready'); setInterval(() => { native.accept(fd) }, 20)`
      peer = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
      await new Promise<void>((resolve) => peer!.stdout!.once('data', () => resolve()))
      const b = await h.baton(`
listen: 127.0.0.1:0
services: [ { name: s, scheduler: rr, servers: [ { name: foreign, handoff: "${path}" } ] } ]
`)
      await waitFor(() => h.logs.some((l) => l.code === 'BATON_ERR_CHANNEL_PEER'))
      expect(b.servers()[0]).toMatchObject({ id: 'foreign', up: false })
      const r = await exchange(b.ports[0]!, 'GET / HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n')
      expect(r.responses[0]?.status).toBe(503)
    })
  })
