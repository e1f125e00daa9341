// forward/migrate-flows.ts FlowTable, over a recording fake of the nft map (its moveOut does the map's part of
// the addon call: freeze, then steer; the dump is test/native/migrate-out.test.ts's): moveOut/unfreeze, deletes
// graceMs after CLOSED, a client port reused by a newer connection keeps its element, forgotten owners are
// no longer refreshed, the refresh renews every live flow. Fake timers; no kernel.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { FLOW_TIMEOUT_MS, FlowTable, FREEZE_MARK, REFRESH_MS } from '../../../src/forward/migrate-flows'
import { silentLogger } from '../../../src/log'
import { BatonNativeError } from '../../../src/errors'
import type { NftElement, NftSetHandle } from '../../../src/native/types'

/** A map in memory that answers like the kernel: EEXIST on add of a present key, ENOENT on delete/replace of a missing one. */
function fakeMap (): NftSetHandle & { elems: Map<string, NftElement>; ops: string[] } {
  const elems = new Map<string, NftElement>()
  const ops: string[] = []
  const key = (e: NftElement): string => `${e.address} . ${e.port}`
  const fail = (op: string, e: NftElement, code: string, errno: number): never => { throw new BatonNativeError(`nft ${op} ${key(e)}`, errno, code) }
  return {
    family: 'ip', table: 'baton', set: 'flows', isMap: true, hasTimeout: true, elems, ops,
    add (es) { for (const e of es) if (elems.has(key(e))) fail('add', e, 'EEXIST', 17); for (const e of es) { elems.set(key(e), e); ops.push(`add ${key(e)} ${e.mark}`) } },
    replace (es) { for (const e of es) if (!elems.has(key(e))) fail('replace', e, 'ENOENT', 2); for (const e of es) { elems.set(key(e), e); ops.push(`replace ${key(e)} ${e.mark}`) } },
    delete (es) { for (const e of es) if (!elems.has(key(e))) fail('delete', e, 'ENOENT', 2); for (const e of es) { elems.delete(key(e)); ops.push(`delete ${key(e)}`) } },
    close () { ops.push('close') },
    moveOut (_fd, ends, prefix, o) {
      const e = { address: ends.clientAddress, port: ends.clientPort, mark: o.freezeMark, timeoutMs: o.freezeTimeoutMs }
      if (elems.has(key(e))) ops.push(`take over ${key(e)}`)
      elems.set(key(e), e)
      elems.set(key(e), { ...e, mark: o.steerMark, timeoutMs: o.steerTimeoutMs })
      ops.push(`steer ${key(e)} ${o.steerMark}`)
      return { frame: prefix, stateAt: prefix.length, steerError: undefined }
    },
  }
}

const PREFIX = Buffer.alloc(5)
const move = (t: FlowTable<string>, port: number, mark: number): void => {
  t.moveOut(3, { clientAddress: '10.0.0.10', clientPort: port, localAddress: '10.0.0.1', localPort: 80 }, PREFIX, mark)
}

describe('FlowTable', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('moves a flow out (frozen with the table\'s timeout, then steered), and deletes it graceMs after the close', () => {
    const nft = fakeMap()
    const t = new FlowTable<string>(nft, silentLogger(), 3000, 5000)
    const asked: unknown[] = []
    const moveOut = nft.moveOut.bind(nft)
    nft.moveOut = (fd, ends, prefix, o) => { asked.push(o); return moveOut(fd, ends, prefix, o) }
    move(t, 40001, 3)
    expect(asked).toEqual([{ freezeMark: FREEZE_MARK, freezeTimeoutMs: 5000, steerMark: 3, steerTimeoutMs: FLOW_TIMEOUT_MS }])
    expect(nft.elems.get('10.0.0.10 . 40001')).toEqual({ address: '10.0.0.10', port: 40001, mark: 3, timeoutMs: FLOW_TIMEOUT_MS })
    t.track('agent-a', 7, { address: '10.0.0.10', port: 40001, mark: 3 })
    expect(t.size).toBe(1)
    expect(t.closed('agent-a', [7, 99])).toBe(1) // 99: unknown, ignored
    vi.advanceTimersByTime(2999)
    expect(nft.elems.size).toBe(1)
    vi.advanceTimersByTime(1)
    expect(nft.elems.size).toBe(0)
    t.unfreeze('10.0.0.10', 40001) // gone already: fine
    t.close()
  })

  it('steering first asks the addon for the steer as the first element, which it then does not repeat', () => {
    const nft = fakeMap()
    const t = new FlowTable<string>(nft, silentLogger(), 3000, 5000)
    const asked: unknown[] = []
    const moveOut = nft.moveOut.bind(nft)
    nft.moveOut = (fd, ends, prefix, o) => { asked.push(o); return moveOut(fd, ends, prefix, o) }
    t.moveOut(3, { clientAddress: '10.0.0.10', clientPort: 40009, localAddress: '10.0.0.100', localPort: 80 }, Buffer.alloc(5), 4, true)
    expect(asked).toEqual([{ freezeMark: 4, freezeTimeoutMs: FLOW_TIMEOUT_MS, steerMark: 4, steerTimeoutMs: FLOW_TIMEOUT_MS, keepOpen: true }])
    expect(nft.elems.get('10.0.0.10 . 40009')?.mark).toBe(4)
    t.close()
  })

  it('deletes every flow of a lost owner after graceMs, and only its flows', () => {
    const nft = fakeMap()
    const t = new FlowTable<string>(nft, silentLogger(), 3000, 5000)
    for (const [owner, id, port] of [['agent-a', 1, 40001], ['agent-a', 2, 40002], ['agent-b', 3, 40003]] as const) {
      move(t, port, owner === 'agent-a' ? 1 : 2)
      t.track(owner, id, { address: '10.0.0.10', port, mark: owner === 'agent-a' ? 1 : 2 })
    }
    expect(t.lost('agent-a')).toBe(2)
    expect(t.count('agent-a')).toBe(0)
    vi.advanceTimersByTime(3000)
    expect([...nft.elems.keys()]).toEqual(['10.0.0.10 . 40003'])
    t.close()
  })

  it('lets a newer connection on the same client port keep the element', () => {
    const nft = fakeMap()
    const t = new FlowTable<string>(nft, silentLogger(), 1000, 5000)
    move(t, 40001, 1); t.track('a', 1, { address: '10.0.0.10', port: 40001, mark: 1 })
    expect(t.closed('a', [1])).toBe(1)
    move(t, 40001, 2) // within the old one's grace: taken over
    t.track('b', 5, { address: '10.0.0.10', port: 40001, mark: 2 })
    vi.advanceTimersByTime(1000)
    expect(nft.elems.get('10.0.0.10 . 40001')?.mark).toBe(2) // the old grace did not delete the new flow
    t.track('b', 6, { address: '10.0.0.10', port: 40001, mark: 2 }) // and again, without a CLOSED in between
    expect(t.closed('b', [5])).toBe(0)
    expect(t.closed('b', [6])).toBe(1)
    vi.advanceTimersByTime(1000)
    expect(nft.elems.size).toBe(0)
    t.close()
  })

  it('refreshes live flows, re-adds vanished ones, and stops for a forgotten owner', () => {
    const nft = fakeMap()
    const t = new FlowTable<string>(nft, silentLogger(), 1000, 5000)
    for (const [owner, id, port] of [['a', 1, 1001], ['a', 2, 1002], ['b', 3, 1003]] as const) {
      move(t, port, 1); t.track(owner, id, { address: '10.0.0.10', port, mark: 1 })
    }
    nft.elems.delete('10.0.0.10 . 1002') // expired in the kernel meanwhile
    expect(t.forget('b')).toBe(1)
    nft.ops.length = 0
    vi.advanceTimersByTime(REFRESH_MS)
    expect(nft.ops.sort()).toEqual(['add 10.0.0.10 . 1002 1', 'replace 10.0.0.10 . 1001 1'])
    expect(t.count('a')).toBe(2)
    expect(t.count('b')).toBe(0)
    t.close()
  })
})
