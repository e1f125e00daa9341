// agent/flows.ts: which client ends /proc/net/tcp shows on the VIP:port, with their state, and which tracked
// flows a sweep reports ended.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { FlowTracker, socketsOn } from '../../../src/agent/flows'

const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 6400630A:0050 0A00630A:9C41 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 6400630A:0050 0A00630A:9C42 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
   3: 0B00630A:0050 0A00630A:9C43 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   4: 6400630A:1F90 0A00630A:9C44 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
`

describe('agent flow tracking', () => {
  it('finds the sockets on VIP:port by client end and state', () => {
    expect([...socketsOn(TABLE, '10.99.0.100', 80)]).toEqual([['10.99.0.10:40001', 1], ['10.99.0.10:40002', 6]])
    expect([...socketsOn(TABLE, '127.0.0.1', 8080)]).toEqual([['0.0.0.0:0', 10]])
    expect(socketsOn('', '10.99.0.100', 80).size).toBe(0)
    expect(socketsOn('garbage\n\n  x y\n', '10.99.0.100', 80).size).toBe(0)
  })
})

describe('FlowTracker.sweep', () => {
  const line = (port: number, st: string): string =>
    `   1: 6400630A:0050 0A00630A:${port.toString(16).toUpperCase()} ${st} 00000000:00000000 00:00000000 00000000     0        0 2 1 0\n`
  const head = '  sl  local_address rem_address   st\n'

  it('reports a flow whose socket is in TIME_WAIT at once, and one absent only after two sweeps in a row', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-flows-'))
    const file = path.join(dir, 'tcp')
    try {
      const t = new FlowTracker('10.99.0.100', 80, file)
      t.add('10.99.0.10:40001', { id: 1 })
      t.add('10.99.0.10:40002', { id: 2 })
      fs.writeFileSync(file, head + line(40001, '01') + line(40002, '06'))
      expect(await t.sweep()).toEqual([{ id: 2 }])
      fs.writeFileSync(file, head) // 40001 missing once: a page of the table may have skipped it
      expect(await t.sweep()).toEqual([])
      fs.writeFileSync(file, head + line(40001, '01')) // seen again: the count starts over
      expect(await t.sweep()).toEqual([])
      fs.writeFileSync(file, head)
      expect(await t.sweep()).toEqual([])
      expect(await t.sweep()).toEqual([{ id: 1 }])
      expect(t.size).toBe(0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('does not judge a flow added while the table was being read', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-flows-'))
    const file = path.join(dir, 'tcp')
    try {
      const t = new FlowTracker('10.99.0.100', 80, file)
      t.add('10.99.0.10:40001', { id: 1 })
      fs.writeFileSync(file, head + line(40001, '01'))
      const sweeping = t.sweep()
      t.add('10.99.0.10:40003', { id: 3 }) // not in the file being read
      expect(await sweeping).toEqual([])
      expect(t.size).toBe(2)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
