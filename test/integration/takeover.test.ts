// Zero-downtime restart: `baton start --takeover` beside a running `baton start` (real processes) takes its
// listening sockets over through <admin.socket>.takeover; the old one stops accepting, finishes its work and
// exits 0. Under a load of Connection: close requests, five takeovers in a row fail no request and reset
// no connection, and kept-alive connections handed off before (the back ends' own) keep being answered.
// Each wait between the two processes has its limit (--takeover-timeout, --takeover-servers-timeout), shown
// with a process stopped (SIGSTOP) at the step it would answer, or a server that never comes up.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { ctl, failures, keepAlive, killSwitches, load, MAIN, pick, sleep, spawnBaton, startSwitch, type Started, type Switch } from '../helpers/operating'

/** `down`: a third server whose back end never runs (it stays down). Each test has its own admin socket. */
function config (h: Harness, admin: boolean, down = false, adminSock = 'admin.sock'): string {
  const c = down ? `, { name: c, handoff: ${h.sock('c')} }` : ''
  return [
    'listen: 127.0.0.1:0',
    ...(admin ? [`admin: { socket: ${path.join(h.dir, adminSock)} }`] : []),
    'limits: { shutdownTimeoutMs: 10000 }',
    'services:',
    `  - { name: s, scheduler: rr, servers: [ { name: a, handoff: ${h.sock('a')} }, { name: b, handoff: ${h.sock('b')} }${c} ] }`,
    'routes: [ { service: s } ]',
    '',
  ].join('\n')
}

/** `baton start -c file --takeover ...args` expected to fail: its exit code and stderr. */
function failedStart (file: string, args: readonly string[] = []): Promise<{ code: number | null, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'start', '-c', file, '--takeover', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 30_000)
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }) })
  })
}

/** `baton start -c file --takeover ...args`, not waiting for anything: its log lines as they come. */
function takeover (file: string, args: readonly string[]): Started {
  return spawnBaton(file, ['--takeover', ...args])
}

const line = (sw: Switch | Taker, msg: string): Record<string, unknown> | undefined => sw.logs.find((l) => String(l.msg).startsWith(msg))

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

  it('under load, 5 takeovers in a row: no failed request, no reset, kept-alive connections answered, old exits 0', async () => {
    const file = path.join(h.dir, 'baton.yaml')
    const yaml = config(h, true)
    let sw = await startSwitch(file, yaml)
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 15_000)
    const port = sw.port
    const kept = await Promise.all([1, 2, 3].map(() => keepAlive(port)))
    // Answered by a back end each time (which one may change: a keepAlive: reroute service may move a
    // kept-alive connection to rebalance, and a move goes through whichever dispatcher is running).
    const byBackend = kept.map(() => expect.stringMatching(/^[ab]$/))
    expect(await Promise.all(kept.map((k) => k.get('/k0')))).toEqual(byBackend)
    const l = load(port, 4)
    await sleep(300)
    const pauses: number[] = []
    for (let round = 1; round <= 5; round++) {
      const next = await startSwitch(file, yaml, ['--takeover'])
      expect(next.port).toBe(port)
      expect(await sw.exited).toEqual({ code: 0, signal: null })
      const handed = line(sw, 'takeover: handed the listening sockets over')
      expect(handed).toBeDefined()
      await waitFor(() => line(next, 'takeover: first accept') !== undefined, 15_000)
      const first = line(next, 'takeover: first accept')!.firstAcceptAt as number
      pauses.push(Math.max(0, first - (handed!.lastAcceptAt as number)))
      expect(await Promise.all(kept.map((k, i) => k.get(`/k${round}-${i}`)))).toEqual(byBackend)
      const window = l.take()
      expect(failures(window)).toEqual([])
      sw = next
      await sleep(300)
    }
    const all = await l.stop()
    expect(failures(all)).toEqual([])
    const answered = [...all.values()].reduce((a, b) => a + b, 0)
    expect(answered).toBeGreaterThan(20)
    expect(await Promise.all(kept.map((k) => k.get('/last')))).toEqual(byBackend)
    for (const k of kept) k.close()
    console.log(`takeover: ${answered} requests, accept pauses (ms): ${pauses.map((p) => p.toFixed(3)).join(' ')}`)
    sw.child.kill('SIGTERM')
    expect(await sw.exited).toEqual({ code: 0, signal: null })
  }, 180_000)

  it('the running Baton never sends its sockets (stopped): --takeover gives up after --takeover-timeout, exits 1; the running one goes on', async () => {
    const file = path.join(h.dir, 'hung-old.yaml')
    const sw = await startSwitch(file, config(h, true, false, 'hung-old.sock'))
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 15_000)
    sw.child.kill('SIGSTOP')
    try {
      const r = await failedStart(file, ['--takeover-timeout', '500'])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/takeover: the running Baton did not send its listening sockets within 500 ms/)
    } finally {
      sw.child.kill('SIGCONT')
    }
    // Resumed, it finds the new process gone, says so, and never stopped accepting.
    await waitFor(() => line(sw, 'takeover abandoned') !== undefined, 5000)
    expect(line(sw, 'takeover abandoned')).toMatchObject({ code: 'BATON_ERR_TAKEOVER' })
    expect(await pick(sw.port)).toMatch(/^[ab]$/)
    sw.child.kill('SIGTERM')
    expect(await sw.exited).toEqual({ code: 0, signal: null })
  }, 60_000)

  it('a new process that sends no GO within the running one\'s --takeover-timeout: the running one keeps its sockets; the new one exits 1', async () => {
    const file = path.join(h.dir, 'slow-new.yaml')
    // The running one waits 1 s for GO; the new one waits 3 s for server c, which never comes up.
    const sw = await startSwitch(file, config(h, true, true, 'slow-new.sock'), ['--takeover-timeout', '1000'])
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 15_000)
    const next = takeover(file, ['--takeover-servers-timeout', '3000'])
    await waitFor(() => line(next, 'takeover: received the listening sockets') !== undefined, 15_000)
    await waitFor(() => line(sw, 'takeover abandoned: no GO in time') !== undefined, 5000)
    expect(line(sw, 'takeover abandoned: no GO in time')).toMatchObject({ code: 'BATON_ERR_TAKEOVER', goTimeoutMs: 1000 })
    expect(await pick(sw.port)).toMatch(/^[ab]$/)
    expect((await next.exited).code).toBe(1)
    expect(next.stderr()).toMatch(/takeover: the running Baton is gone or gave up waiting \(sending GO: E[A-Z]+\)/)
    expect(line(next, 'takeover: accepting')).toBeUndefined()
    expect(await pick(sw.port)).toMatch(/^[ab]$/)
    const after = await ctl('--admin', path.join(h.dir, 'slow-new.sock'), 'list', '--json')
    expect(after.code).toBe(0)
    sw.child.kill('SIGTERM')
    expect(await sw.exited).toEqual({ code: 0, signal: null })
  }, 60_000)

  it('a server still down after --takeover-servers-timeout, and an old process that stops answering after GO: the new one takes over, serves, and gets the admin API once the old one lets go', async () => {
    const file = path.join(h.dir, 'hung-after-go.yaml')
    const sw = await startSwitch(file, config(h, true, true, 'hung-after-go.sock'))
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 15_000)
    const next = takeover(file, ['--takeover-servers-timeout', '1500', '--takeover-timeout', '500'])
    await waitFor(() => line(next, 'takeover: received the listening sockets') !== undefined, 15_000)
    sw.child.kill('SIGSTOP') // it sent its sockets; it will not read GO until SIGCONT
    try {
      await waitFor(() => line(next, 'baton started') !== undefined, 15_000)
      expect(line(next, 'takeover: servers still down')).toMatchObject({ down: ['s/c'], timeoutMs: 1500 })
      expect(line(next, 'takeover: the old process has not released the admin socket yet')).toMatchObject({ code: 'BATON_ERR_TAKEOVER', timeoutMs: 500 })
      expect(line(next, 'admin API listening')).toBeUndefined()
      // The old one is stopped: only the new one accepts.
      for (let i = 0; i < 4; i++) expect(await pick(sw.port)).toMatch(/^[ab]$/)
    } finally {
      sw.child.kill('SIGCONT')
    }
    expect(await sw.exited).toEqual({ code: 0, signal: null })
    await waitFor(() => line(next, 'admin API listening') !== undefined, 10_000)
    const r = await ctl('--admin', path.join(h.dir, 'hung-after-go.sock'), 'list', '--json')
    expect(r.code).toBe(0)
    expect((JSON.parse(r.stdout) as Array<{ id: string }>).map((s) => s.id)).toEqual(['a', 'b', 'c'])
    expect(await pick(sw.port)).toMatch(/^[ab]$/)
    next.child.kill('SIGTERM')
    expect((await next.exited).code).toBe(0)
  }, 60_000)
})
