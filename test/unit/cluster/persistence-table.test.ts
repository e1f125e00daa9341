import { describe, expect, it } from 'vitest'
import { PersistenceTable } from '../../../src/cluster/persistence'
import { RealServerState } from '../../../src/cluster/real-server'
import { ctx, serverConfig } from '../schedulers/helpers'

describe('PersistenceTable', () => {
  it('is capped in size', () => {
    const t = new PersistenceTable({ timeoutS: 300, netmask: 32 }, 100)
    const s = new RealServerState(serverConfig('a'), 0, 'svc')
    const c = ctx()
    for (let i = 0; i < 10_000; i++) { c.clientAddress = `10.0.${i >> 8}.${i & 255}`; t.record(c, s) }
    expect(t.size).toBe(100)
  })
  it('keys IPv4 by the masked address and IPv6 by the full address', () => {
    const t = new PersistenceTable({ timeoutS: 300, netmask: 16 })
    expect(t.keyOf('10.1.2.3')).toBe(t.keyOf('10.1.200.200'))
    expect(t.keyOf('::ffff:10.1.9.9')).toBe(t.keyOf('10.1.2.3'))
    expect(t.keyOf('2001:db8::1')).toBe('2001:db8::1')
    expect(new PersistenceTable({ timeoutS: 1, netmask: 0 }).keyOf('1.2.3.4')).toBe(0)
  })
})
