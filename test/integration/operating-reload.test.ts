// Hot reload of a running `baton start` (a real process) under load: SIGHUP, `baton ctl reload` and
// `watch: true` apply changed weights and routes with no failed request; a broken file changes nothing
// and is reported; surviving servers keep their connection counters.
import fs from 'node:fs'
import path from 'node:path'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { ctl, failures, fdsOf, keepAlive, killSwitches, list, load, pick, sleep, startSwitch, type Switch } from '../helpers/operating'

function config (h: Harness, opts: { a: number, b: number, c?: number, v2Route?: boolean, watch?: boolean, broken?: boolean }): string {
  return [
    'listen: 127.0.0.1:0',
    `admin: { socket: ${path.join(h.dir, 'admin.sock')} }`,
    ...(opts.watch === true ? ['watch: true'] : []),
    'services:',
    '  - name: s',
    '    scheduler: wrr',
    '    servers:',
    `      - { name: a, handoff: ${h.sock('a')}, weight: ${opts.broken === true ? 'heavy' : opts.a} }`,
    `      - { name: b, handoff: ${h.sock('b')}, weight: ${opts.b} }`,
    '  - name: t',
    `    servers: [ { name: c, handoff: ${h.sock('c')}, weight: ${opts.c ?? 1} } ]`,
    'routes:',
    ...(opts.v2Route === true ? ['  - { match: { path: /v2/ }, service: t }'] : []),
    ...(opts.broken === true ? ['  - { match: { path: /x/ }, service: nope }'] : []),
    '  - { match: { path: /t/ }, service: t }',
    '  - { service: s }',
    '',
  ].join('\n')
}

/** Share of `a` among a and b in a window of picks. */
function shareOfA (counts: Map<string, number>): number {
  const a = counts.get('a') ?? 0
  const b = counts.get('b') ?? 0
  return a / Math.max(1, a + b)
}

async function metrics (h: Harness): Promise<string> {
  const dispatcher = new Agent({ connect: { socketPath: path.join(h.dir, 'admin.sock') } })
  const res = await request('http://localhost/metrics', { dispatcher })
  const text = await res.body.text()
  await dispatcher.close()
  return text
}

describe.runIf(process.platform === 'linux' && native.available)('operating: hot reload', () => {
  let h: Harness
  let sw: Switch
  beforeAll(async () => {
    h = harness()
    await Promise.all(['a', 'b', 'c'].map((n) => h.backend(n)))
    sw = await startSwitch(path.join(h.dir, 'baton.yaml'), config(h, { a: 1, b: 1 }))
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 3, 10_000)
  })
  afterAll(async () => {
    await killSwitches()
    await h.close()
  })

  it('applies new weights and routes under load with no failed request (ctl reload and SIGHUP)', async () => {
    const fds = fdsOf(sw.child.pid!)
    const l = load(sw.port)
    await sleep(1500)
    expect(shareOfA(l.take())).toBeGreaterThan(0.35)
    expect(await pick(sw.port, '/v2/x')).not.toBe('c')

    fs.writeFileSync(sw.file, config(h, { a: 3, b: 1, v2Route: true }))
    const r = await ctl('-c', sw.file, 'reload')
    expect(r).toMatchObject({ code: 0, stdout: 'reloaded: changed s/a\n' })
    l.take()
    await sleep(2000)
    const share = shareOfA(l.take())
    expect(share).toBeGreaterThan(0.65)
    expect(share).toBeLessThan(0.85)
    expect(await pick(sw.port, '/v2/x')).toBe('c')

    fs.writeFileSync(sw.file, config(h, { a: 1, b: 1 }))
    const before = sw.logs.filter((x) => x.msg === 'config reloaded').length
    sw.child.kill('SIGHUP')
    await waitFor(() => sw.logs.filter((x) => x.msg === 'config reloaded').length > before, 10_000)
    expect(sw.logs.filter((x) => x.msg === 'config reloaded').at(-1)).toMatchObject({ trigger: 'SIGHUP', changed: ['s/a'] })
    l.take()
    await sleep(1500)
    const back = shareOfA(l.take())
    expect(back).toBeGreaterThan(0.35)
    expect(back).toBeLessThan(0.65)
    expect(await pick(sw.port, '/v2/x')).not.toBe('c')

    for (let i = 0; i < 4; i++) { // back and forth, fast
      fs.writeFileSync(sw.file, config(h, { a: 2 + i, b: 1, v2Route: i % 2 === 0 }))
      if (i % 2 === 0) expect((await ctl('-c', sw.file, 'reload')).code).toBe(0)
      else sw.child.kill('SIGHUP')
      await sleep(200)
    }
    const all = await l.stop()
    expect(failures(all)).toEqual([])
    expect([...all.values()].reduce((x, y) => x + y, 0)).toBeGreaterThan(100)
    expect(await metrics(h)).toMatch(/baton_config_reloads_total\{result="ok"\} [4-9]/)
    await waitFor(() => fdsOf(sw.child.pid!) <= fds, 10_000) // every client and admin connection closed again
  })

  it('refuses a broken file under load: nothing changes, every issue is reported', async () => {
    fs.writeFileSync(sw.file, config(h, { a: 1, b: 1 }))
    expect((await ctl('-c', sw.file, 'reload')).code).toBe(0)
    const l = load(sw.port)
    fs.writeFileSync(sw.file, config(h, { a: 1, b: 1, broken: true }))
    const r = await ctl('-c', sw.file, 'reload')
    expect(r.code).toBe(1)
    const lines = r.stderr.split('\n')
    expect(lines).toHaveLength(4)
    expect(lines[0]).toMatch(/:7:\d+: services\.0\.servers\.0\.weight: must be an integer 0\.\.65535, got "heavy"$/)
    expect(lines[1]).toMatch(/:12:\d+: routes\.0\.service: no service named "nope"$/)
    expect(lines.slice(2)).toEqual(['baton ctl: reload refused (BATON_ERR_CONFIG_INVALID): nothing changed', ''])
    expect(lines[0]!.startsWith(`${sw.file}:`)).toBe(true)
    const errors = (): number => sw.logs.filter((x) => x.code === 'BATON_ERR_CONFIG_INVALID').length
    const seen = errors()
    sw.child.kill('SIGHUP')
    await waitFor(() => errors() > seen, 10_000)
    const line = sw.logs.filter((x) => x.code === 'BATON_ERR_CONFIG_INVALID').at(-1)!
    expect(line).toMatchObject({ level: 'error', trigger: 'SIGHUP' })
    expect(line.issues).toHaveLength(2)
    l.take()
    await sleep(1500)
    const share = shareOfA(l.take())
    expect(share).toBeGreaterThan(0.35)
    expect(share).toBeLessThan(0.65)
    expect((await list(sw.file)).map((x) => x.configWeight)).toEqual([1, 1, 1])
    expect(failures(await l.stop())).toEqual([])
    expect(await metrics(h)).toMatch(/baton_config_reloads_total\{result="invalid"\} [2-9]/)
  })

  it('keeps the counters of surviving servers across a reload', async () => {
    fs.writeFileSync(sw.file, config(h, { a: 1, b: 1 }))
    expect((await ctl('-c', sw.file, 'reload')).code).toBe(0)
    const conns = await Promise.all([1, 2, 3].map(() => keepAlive(sw.port)))
    for (const k of conns) expect(await k.get('/t/1')).toBe('c')
    const c = async (): Promise<number> => (await list(sw.file)).find((x) => x.id === 'c')!.inactive
    for (let i = 0; i < 100 && await c() !== 3; i++) await sleep(100)
    expect(await c()).toBe(3)
    fs.writeFileSync(sw.file, config(h, { a: 2, b: 1, c: 2 }))
    expect(await ctl('-c', sw.file, 'reload')).toMatchObject({ code: 0, stdout: 'reloaded: changed s/a, t/c\n' })
    expect((await list(sw.file)).find((x) => x.id === 'c')).toMatchObject({ configWeight: 2, inactive: 3, active: 0 })
    for (const k of conns) expect(await k.get('/t/2')).toBe('c') // still answered by their back end
    for (const k of conns) k.close()
    for (let i = 0; i < 100 && await c() !== 0; i++) await sleep(100)
    expect(await c()).toBe(0)
  })

  it('reloads by itself with watch: true, and ignores a broken save', async () => {
    fs.writeFileSync(sw.file, config(h, { a: 1, b: 1, watch: true }))
    expect((await ctl('-c', sw.file, 'reload')).code).toBe(0)
    await waitFor(() => sw.logs.some((x) => x.msg === 'config watch: reloading when the file changes'), 10_000)
    const weightOfA = async (): Promise<number> => (await list(sw.file)).find((x) => x.id === 'a')!.configWeight
    fs.writeFileSync(sw.file, config(h, { a: 5, b: 1, watch: true }))
    for (let i = 0; i < 100 && await weightOfA() !== 5; i++) await sleep(100)
    expect(await weightOfA()).toBe(5)
    expect(sw.logs.filter((x) => x.msg === 'config reloaded').at(-1)).toMatchObject({ trigger: 'watch' })

    const seen = sw.logs.filter((x) => x.code === 'BATON_ERR_CONFIG_INVALID').length
    const tmp = `${sw.file}.tmp`
    fs.writeFileSync(tmp, config(h, { a: 7, b: 1, watch: true, broken: true }))
    fs.renameSync(tmp, sw.file) // as editors save: a new file renamed over the old one
    await waitFor(() => sw.logs.filter((x) => x.code === 'BATON_ERR_CONFIG_INVALID').length > seen, 10_000)
    expect(sw.logs.filter((x) => x.code === 'BATON_ERR_CONFIG_INVALID').at(-1)).toMatchObject({ trigger: 'watch' })
    expect(await weightOfA()).toBe(5)

    fs.writeFileSync(tmp, config(h, { a: 1, b: 1, watch: true }))
    fs.renameSync(tmp, sw.file)
    for (let i = 0; i < 100 && await weightOfA() !== 1; i++) await sleep(100)
    expect(await weightOfA()).toBe(1)
  })
})
