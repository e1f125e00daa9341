// `baton ctl` against a running `baton start` (both real processes): list, drain and state, weight, add
// and remove show in the next picks; refusals print the server's code; nothing listening is a clear
// one-line error.
import fs from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { ctl, keepAlive, killSwitches, list, pick, sleep, startSwitch, type Switch } from '../helpers/operating'

async function picks (port: number, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(await pick(port))
  return out
}

describe.runIf(process.platform === 'linux' && native.available)('operating: baton ctl', () => {
  let h: Harness
  let sw: Switch
  beforeAll(async () => {
    h = harness()
    await Promise.all(['a', 'b', 'c'].map((n) => h.backend(n)))
    sw = await startSwitch(path.join(h.dir, 'baton.yaml'), [
      'listen: 127.0.0.1:0',
      'admin: { socket: ./admin.sock }',
      'services:',
      '  - name: s',
      '    scheduler: rr',
      `    servers: [ { name: a, handoff: ${h.sock('a')} }, { name: b, handoff: ${h.sock('b')} } ]`,
      '',
    ].join('\n'))
    await waitFor(() => sw.logs.filter((l) => l.msg === 'real server up').length >= 2, 10_000)
  })
  afterAll(async () => {
    await killSwitches()
    await h.close()
  })

  it('lists servers as a table for people and as JSON for scripts', async () => {
    const r = await ctl('-c', sw.file, 'list')
    expect(r.code).toBe(0)
    expect(r.stdout.split('\n')).toEqual([
      'SERVICE  SERVER  METHOD   STATE  WEIGHT  ACTIVE  INACTIVE',
      's        a       handoff  up     1/1          0         0',
      's        b       handoff  up     1/1          0         0',
      '',
    ])
    expect(await list(sw.file)).toMatchObject([{ service: 's', id: 'a', state: 'up', weight: 1, configWeight: 1 }, { id: 'b' }])
  })

  it('drain stops new connections to a server while its kept-alive connection goes on', async () => {
    const k = await keepAlive(sw.port)
    const mine = await k.get('/1')
    const other = mine === 'a' ? 'b' : 'a'
    const r = await ctl('-c', sw.file, 'drain', 's', mine)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^s/${mine}: state drain, weight 0/1, active [01], inactive [01]\n$`))
    expect(new Set(await picks(sw.port, 10))).toEqual(new Set([other]))
    // Still answered: by its back end, or by the other once rebalancing moved it (keepAlive: reroute).
    expect([mine, other]).toContain(await k.get('/2'))
    expect([mine, other]).toContain(await k.get('/3'))
    expect((await ctl('-c', sw.file, 'state', 's', mine, 'up')).code).toBe(0)
    expect(new Set(await picks(sw.port, 10))).toEqual(new Set(['a', 'b']))
    k.close()
  })

  it('maint takes a server out; weight 0 quiesces it; both come back', async () => {
    expect((await ctl('-c', sw.file, 'state', 's', 'a', 'maint')).stdout).toBe('s/a: state maint, weight 1/1, active 0, inactive 0\n') // down, weight kept
    expect(new Set(await picks(sw.port, 6))).toEqual(new Set(['b']))
    expect((await ctl('-c', sw.file, 'state', 's', 'a', 'up')).code).toBe(0)
    expect((await ctl('-c', sw.file, 'weight', 's', 'b', '0')).stdout).toBe('s/b: state up, weight 0/0, active 0, inactive 0\n')
    expect(new Set(await picks(sw.port, 6))).toEqual(new Set(['a']))
    expect((await ctl('-c', sw.file, 'weight', 's', 'b', '1')).code).toBe(0)
    expect(new Set(await picks(sw.port, 6))).toEqual(new Set(['a', 'b']))
  })

  it('add and remove show in the next picks', async () => {
    const r = await ctl('-c', sw.file, 'add', 's', 'c', '--handoff', h.sock('c'), '--weight', '1')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^added s\/c: state (up|down), weight [01]\/1/)
    for (let i = 0; i < 50 && (await list(sw.file)).find((x) => x.id === 'c')?.state !== 'up'; i++) await sleep(100)
    expect(new Set(await picks(sw.port, 9))).toEqual(new Set(['a', 'b', 'c']))
    expect(sw.logs.some((l) => l.level === 'warn' && String(l.msg).includes('s/c added at run time'))).toBe(true)

    expect(await ctl('-c', sw.file, 'remove', 's', 'c')).toMatchObject({ code: 0, stdout: 'removed s/c\n' })
    expect(new Set(await picks(sw.port, 9))).toEqual(new Set(['a', 'b']))
    expect((await list(sw.file)).map((x) => x.id)).toEqual(['a', 'b'])
  })

  it('prints the server\'s error code when it refuses, and exits 1', async () => {
    const unknown = await ctl('-c', sw.file, 'weight', 's', 'nope', '2')
    expect(unknown).toMatchObject({ code: 1, stdout: '', stderr: 'baton ctl: weight refused: BATON_ERR_CLUSTER_VERB: service s has no server nope (404)\n' })
    const taken = await ctl('-c', sw.file, 'add', 's', 'a', '--address', '127.0.0.1:9')
    expect(taken.stderr).toBe('baton ctl: add refused: BATON_ERR_CLUSTER_VERB: service s already has a server a (409)\n')
    const bad = await ctl('-c', sw.file, 'add', 's', 'z', '--address', 'nowhere')
    expect(bad.code).toBe(1)
    expect(bad.stderr).toMatch(/^baton ctl: add refused: BATON_ERR_CONFIG_INVALID: address: must be "host:port".*, got "nowhere" \(400\)\n$/)
    expect((await ctl('-c', sw.file, 'weight', 's', 'a', '70000')).stderr).toContain('BATON_ERR_CLUSTER_VERB: weight must be an integer 0..65535, got 70000 (400)')
  })

  it('exits 2 on usage errors, before any request', async () => {
    for (const args of [['frob'], ['weight', 's', 'a'], ['weight', 's', 'a', 'x'], ['state', 's', 'a', 'off'], ['add', 's', 'z'], ['list', 'x']]) {
      const r = await ctl('-c', sw.file, ...args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(/^baton ctl: .+\n\nRun baton ctl --help/)
    }
    expect((await ctl('--help')).stdout).toContain('Usage: baton ctl <command>')
  })

  it('says clearly when nothing listens or no admin API is configured', async () => {
    const refused = await ctl('--admin', '127.0.0.1:1', 'list')
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/^baton ctl: cannot reach the admin API at 127\.0\.0\.1:1 \(ECONNREFUSED\): .*\n$/)
    const missing = await ctl('--admin', path.join(h.dir, 'none.sock'), 'reload')
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/^baton ctl: cannot reach the admin API at .*none\.sock \(ENOENT\)/)
    const noFile = await ctl('-c', path.join(h.dir, 'missing.yaml'), 'list')
    expect(noFile.code).toBe(1)
    expect(noFile.stderr).toMatch(/missing\.yaml:1:1: cannot read the configuration \(ENOENT.*pass --admin ADDR or -c FILE\n$/)
    const plain = path.join(h.dir, 'plain.yaml')
    fs.writeFileSync(plain, 'listen: 127.0.0.1:0\n')
    expect((await ctl('-c', plain, 'list')).stderr).toBe(`baton ctl: ${plain} has no admin: section (the admin API is off); pass --admin ADDR\n`)
  })
})
