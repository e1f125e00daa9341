// `baton ctl list --stats` and `--rate` (ipvsadm -L -n --stats / --rate) against a running `baton start`
// (real processes, real sockets): connections made through the switch show in each server's count, bytes
// relayed in both directions show for a relayed server (none for a handoff one: they never cross the
// dispatcher), and the estimated rates are above 0 while the load runs; a table for people, JSON for scripts.
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { harness, waitFor, type Harness } from '../helpers/cluster'
import { ctl, failures, freePort, killSwitches, load, pick, sleep, startSwitch, type Switch } from '../helpers/operating'

interface StatsRow {
  service: string, id: string, method: string, connections: number, inBytes: number, outBytes: number
  cps: number, inBps: number, outBps: number
}

async function stats (sw: Switch, ...flags: string[]): Promise<StatsRow[]> {
  const r = await ctl('-c', sw.file, 'list', ...flags, '--json')
  if (r.code !== 0) throw new Error(`ctl list: ${r.stderr}`)
  return JSON.parse(r.stdout) as StatsRow[]
}

describe.runIf(process.platform === 'linux' && native.available)('operating: baton ctl list --stats --rate', () => {
  let h: Harness
  let sw: Switch
  beforeAll(async () => {
    h = harness()
    const relayPort = await freePort()
    await Promise.all([h.backend('a'), h.backend('r', { listen: `127.0.0.1:${relayPort}` })])
    sw = await startSwitch(path.join(h.dir, 'baton.yaml'), [
      'listen: 127.0.0.1:0',
      'admin: { socket: ./admin.sock }',
      'services:',
      '  - name: s',
      '    scheduler: rr',
      `    servers: [ { name: a, handoff: ${h.sock('a')} }, { name: r, address: 127.0.0.1:${relayPort}, forward: pipe } ]`,
      '',
    ].join('\n'))
    await waitFor(() => sw.logs.some((l) => l.msg === 'real server up' && l.backend === 'a'), 10_000) // r, relayed, is up from the start
  })
  afterAll(async () => {
    await killSwitches()
    await h.close()
  })

  it('counts every connection made through the switch on the server that took it, and the bytes relayed', async () => {
    const before = await stats(sw, '--stats')
    expect(before.map((s) => [s.id, s.connections, s.inBytes, s.outBytes])).toEqual([['a', 0, 0, 0], ['r', 0, 0, 0]])
    const answered = new Map<string, number>()
    for (let i = 0; i < 20; i++) {
      const who = await pick(sw.port, `/stats-${i}`)
      answered.set(who, (answered.get(who) ?? 0) + 1)
    }
    expect([...answered.keys()].sort()).toEqual(['a', 'r'])
    // A relayed connection's bytes are added when it closes, just after the client saw the answer.
    let after: StatsRow[] = []
    for (let tries = 0; tries < 50; tries++) {
      after = await stats(sw, '--stats')
      if (after.find((s) => s.id === 'r')!.outBytes > 0 && after.every((s) => s.connections === answered.get(s.id))) break
      await sleep(100)
    }
    expect(after.map((s) => [s.id, s.connections])).toEqual([['a', answered.get('a')], ['r', answered.get('r')]])
    const a = after.find((s) => s.id === 'a')!
    const r = after.find((s) => s.id === 'r')!
    expect([a.inBytes, a.outBytes]).toEqual([0, 0]) // handed off: the bytes never cross the dispatcher
    // Every request head (at least "GET /stats-N HTTP/1.1") went up, every answer (at least its status line) came down.
    expect(r.inBytes).toBeGreaterThanOrEqual(answered.get('r')! * 'GET /stats-0 HTTP/1.1\r\n'.length)
    expect(r.outBytes).toBeGreaterThanOrEqual(answered.get('r')! * 'HTTP/1.1 200 OK\r\n'.length)

    const table = await ctl('-c', sw.file, 'list', '--stats')
    expect(table.code).toBe(0)
    const lines = table.stdout.trimEnd().split('\n').map((l) => l.split(/\s+/))
    expect(lines[0]).toEqual(['SERVICE', 'SERVER', 'METHOD', 'STATE', 'WEIGHT', 'ACTIVE', 'INACTIVE', 'CONNS', 'INBYTES', 'OUTBYTES'])
    expect(lines[1]).toEqual(['s', '*', '0', '0', String(a.connections + r.connections), String(r.inBytes), String(r.outBytes)])
    expect(lines[2]).toEqual(['s', 'a', 'handoff', 'up', '1/1', '0', '0', String(a.connections), '0', '0'])
    expect(lines[3]).toEqual(['s', 'r', 'pipe', 'up', '1/1', '0', '0', String(r.connections), String(r.inBytes), String(r.outBytes)])
  }, 60_000)

  it('estimates connections and bytes per second while a load runs (ipvsadm --rate)', async () => {
    const l = load(sw.port, 2)
    try {
      // The estimator samples every 2 s and moves a quarter of the way to each new rate: after one sample
      // with the load running, every rate of a server that took connections is above 0.
      let rows: StatsRow[] = []
      for (let tries = 0; tries < 100; tries++) {
        rows = await stats(sw, '--rate')
        if (rows.every((s) => s.cps > 0) && rows.find((s) => s.id === 'r')!.outBps > 0) break
        await sleep(100)
      }
      const a = rows.find((s) => s.id === 'a')!
      const r = rows.find((s) => s.id === 'r')!
      expect(a.cps).toBeGreaterThan(0)
      expect(r.cps).toBeGreaterThan(0)
      expect(r.inBps).toBeGreaterThan(0)
      expect(r.outBps).toBeGreaterThan(0)
      expect([a.inBps, a.outBps]).toEqual([0, 0])
      const table = await ctl('-c', sw.file, 'list', '--rate')
      expect(table.code).toBe(0)
      const lines = table.stdout.trimEnd().split('\n').map((line) => line.split(/\s+/))
      expect(lines[0]).toEqual(['SERVICE', 'SERVER', 'METHOD', 'STATE', 'WEIGHT', 'ACTIVE', 'INACTIVE', 'CPS', 'INBPS', 'OUTBPS'])
      expect(lines.map((c) => c[1])).toEqual(['SERVER', '*', 'a', 'r'])
      expect(Number(lines[2]![7])).toBeGreaterThan(0)
    } finally {
      const counts = await l.stop()
      expect(failures(counts)).toEqual([])
    }
  }, 60_000)
})
