// Zero-downtime restart: `baton start --takeover` beside a running `baton start` (real processes) takes its
// listening sockets over through <admin.socket>.takeover; the old one stops accepting, finishes its work and
// exits 0. Under a load of Connection: close requests, several takeovers in a row fail no request and reset
// no connection, and kept-alive connections handed off before (the back ends' own) keep being answered.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { failures, keepAlive, killSwitches, load, MAIN, sleep, startSwitch, type Switch } from '../helpers/operating'

function config (h: Harness, admin: boolean): string {
  return [
    'listen: 127.0.0.1:0',
    ...(admin ? [`admin: { socket: ${path.join(h.dir, 'admin.sock')} }`] : []),
    'limits: { shutdownTimeoutMs: 10000 }',
    'services:',
    `  - { name: s, scheduler: rr, servers: [ { name: a, handoff: ${h.sock('a')} }, { name: b, handoff: ${h.sock('b')} } ] }`,
    'routes: [ { service: s } ]',
    '',
  ].join('\n')
}

/** `baton start -c file --takeover` expected to fail: its exit code and stderr. */
function failedStart (file: string): Promise<{ code: number | null, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'start', '-c', file, '--takeover'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }) })
  })
}

const line = (sw: Switch, msg: string): Record<string, unknown> | undefined => sw.logs.find((l) => String(l.msg).startsWith(msg))

describe.runIf(process.platform === 'linux' && native.available)('operating: takeover restart', () => {
  let h: Harness
  beforeAll(async () => {
    h = harness()
    await Promise.all([h.backend('a'), h.backend('b')])
  })
  afterAll(async () => {
    await killSwitches()
    await h.close()
  })

  it('without admin.socket, or with no Baton running, --takeover exits 1 with a clear message', async () => {
    const bare = path.join(h.dir, 'bare.yaml')
    fs.writeFileSync(bare, config(h, false))
    const a = await failedStart(bare)
    expect(a.code).toBe(1)
    expect(a.stderr).toMatch(/--takeover needs admin\.socket/)

    const alone = path.join(h.dir, 'alone.yaml')
    fs.writeFileSync(alone, config(h, true).replace('admin.sock', 'nobody.sock'))
    const b = await failedStart(alone)
    expect(b.code).toBe(1)
    expect(b.stderr).toMatch(/takeover: no running Baton answers on .*nobody\.sock\.takeover/)
  }, 60_000)

  it('under load, 4 takeovers in a row: no failed request, no reset, kept-alive connections answered, old exits 0', async () => {
    const file = path.join(h.dir, 'baton.yaml')
    const yaml = config(h, true)
    let sw = await startSwitch(file, yaml)
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 15_000)
    const port = sw.port
    const kept = await Promise.all([1, 2, 3].map(() => keepAlive(port)))
    const owners = await Promise.all(kept.map((k) => k.get('/k0')))
    for (const o of owners) expect(o).toMatch(/^[ab]$/)
    const l = load(port, 4)
    await sleep(300)
    const pauses: number[] = []
    for (let round = 1; round <= 4; round++) {
      const next = await startSwitch(file, yaml, ['--takeover'])
      expect(next.port).toBe(port)
      expect(await sw.exited).toEqual({ code: 0, signal: null })
      const handed = line(sw, 'takeover: handed the listening sockets over')
      expect(handed).toBeDefined()
      await waitFor(() => line(next, 'takeover: first accept') !== undefined, 15_000)
      const first = line(next, 'takeover: first accept')!.firstAcceptAt as number
      pauses.push(Math.max(0, first - (handed!.lastAcceptAt as number)))
      expect(await Promise.all(kept.map((k, i) => k.get(`/k${round}-${i}`)))).toEqual(owners)
      const window = l.take()
      expect(failures(window)).toEqual([])
      sw = next
      await sleep(300)
    }
    const all = await l.stop()
    expect(failures(all)).toEqual([])
    const answered = [...all.values()].reduce((a, b) => a + b, 0)
    expect(answered).toBeGreaterThan(20)
    expect(await Promise.all(kept.map((k) => k.get('/last')))).toEqual(owners)
    for (const k of kept) k.close()
    console.log(`takeover: ${answered} requests, accept pauses (ms): ${pauses.map((p) => p.toFixed(3)).join(' ')}`)
    sw.child.kill('SIGTERM')
    expect(await sw.exited).toEqual({ code: 0, signal: null })
  }, 180_000)
})
