// A real PROXY-protocol consumer: Debian's nginx (`apt-get install -y nginx-light`) with
// `listen ... proxy_protocol` answers with the client address it read from the header. Both header versions,
// through both relays. Skipped, with a message, when nginx is not installed.
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { native } from '../../src/native/binding'
import {
  FdListener, closedPort, connOf, connectClient, linux, recorder, targetOf, pipeForwarder, spliceForwarder, type TestForwarder,
} from './relay-helpers'

const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].find((p) => fs.existsSync(p)) ??
  (spawnSync('nginx', ['-v']).status === 0 ? 'nginx' : undefined)

if (NGINX === undefined) {
  console.warn('relay-proxy-nginx: nginx is not installed, skipping the PROXY protocol consumer test ' +
    '(Debian: apt-get install -y nginx-light)')
}

function nginxConf (dir: string, port: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / {
      default_type text/plain;
      return 200 "client=$proxy_protocol_addr:$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port\\n";
    }
  }
}
`
}

async function waitListening (port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) }).on('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nginx did not listen on ${port}`)
}

describe.runIf(linux && NGINX !== undefined && native.available)('PROXY protocol read by nginx', () => {
  let dir: string
  let nginx: ChildProcess
  let nginxPort: number
  let listener: FdListener
  let port: number

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-nginx-'))
    nginxPort = await closedPort()
    fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, nginxPort))
    nginx = spawn(NGINX!, ['-e', 'stderr', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] })
    await waitListening(nginxPort)
    listener = new FdListener()
    port = await listener.listen()
  })

  afterAll(async () => {
    await listener?.close()
    if (nginx !== undefined && nginx.exitCode === null) {
      await new Promise((resolve) => { nginx.once('exit', resolve); nginx.kill('SIGTERM') })
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const cases = [
    { method: 'splice', make: (): TestForwarder => spliceForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 }) },
    { method: 'pipe', make: (): TestForwarder => pipeForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0, channelTimeoutMs: 2000, maxHeaderBytes: 16384 }) },
  ].flatMap((c) => (['v1', 'v2'] as const).map((version) => ({ ...c, version })))

  it.each(cases)('$method relay, PROXY $version: nginx reports the real client address', async ({ make, version }) => {
    const fwd = make()
    const client = await connectClient(port)
    client.write('GET / HTTP/1.1\r\nHost: baton.test\r\nConnection: close\r\n\r\n')
    const a = await listener.next()
    const rec = recorder()
    fwd.forward(connOf(rec, targetOf(nginxPort, { proxyProtocol: version }), a))
    const chunks: Buffer[] = []
    client.on('data', (d: Buffer) => chunks.push(d))
    await new Promise((resolve) => client.once('end', resolve))
    client.end()
    const response = Buffer.concat(chunks).toString()
    expect(response).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(response).toContain(`client=${a.clientAddress}:${a.clientPort} server=${a.localAddress}:${a.localPort}\n`)
    expect((await rec.done).stats?.errno).toBe(0)
    await fwd.close()
  })
})
