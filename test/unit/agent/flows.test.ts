// agent/flows.ts socketsOn: which client ends /proc/net/tcp shows on the VIP:port, with their state.
import { describe, expect, it } from 'vitest'
import { socketsOn } from '../../../src/agent/flows'

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
