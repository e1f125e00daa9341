// The nf_tables netlink client (native/src/nft.cc, src/native/nft.ts) against the real kernel, in a fresh
// network namespace: the table is made with `nft -f`, the elements with the addon's netlink batches, and
// `nft -j list` is the judge of what the kernel holds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { native } from '../../src/native/binding'
import type { NftElement, NftSetHandle } from '../../src/native/types'
import { fdCount, inNetns, netnsAdd, netnsDel, nftIn, skipReason } from './netns'

const TABLE = `table ip baton_t {
  map flows { type ipv4_addr . inet_service : mark; flags timeout; }
  set seen { type ipv4_addr . inet_service; flags timeout; }
  map plain { type ipv4_addr . inet_service : mark; }
  set wrongkey { type ipv4_addr; }
}
`

interface Listed { key: string; mark?: number; timeoutS?: number }

/** What `nft -j list map|set` shows, as "addr . port" keys with their mark and timeout (seconds). */
function listed (ns: string, kind: 'map' | 'set', name: string): Listed[] {
  const out = JSON.parse(nftIn(ns, ['-j', 'list', kind, 'ip', 'baton_t', name])) as { nftables: Array<Record<string, any>> }
  const set = out.nftables.find((o) => o[kind] !== undefined)?.[kind] as { elem?: unknown[] }
  const one = (e: any): Omit<Listed, 'mark'> => {
    const concat = (e.elem?.val ?? e).concat as [string, number]
    return { key: `${concat[0]} . ${concat[1]}`, ...(e.elem?.timeout !== undefined ? { timeoutS: e.elem.timeout } : {}) }
  }
  return (set.elem ?? []).map((e: any) => kind === 'map' ? { ...one(e[0]), mark: e[1] as number } : one(e))
    .sort((a, b) => a.key.localeCompare(b.key))
}

const skip = process.platform === 'linux' ? skipReason({ netns: true, nft: true }) : 'Linux only'
if (skip !== null) describe('nf_tables netlink client', () => { it.skip(`skipped: ${skip}`, () => {}) })

describe.runIf(skip === null)('nf_tables netlink client (network namespace)', () => {
  let ns = ''
  let before = 0
  const open = async (spec: Parameters<typeof native.nftOpen>[0]): Promise<NftSetHandle> =>
    await inNetns(ns, async () => native.nftOpen(spec)) // the netlink socket belongs to the namespace

  beforeAll(() => {
    before = fdCount()
    ns = netnsAdd('baton-nft')
    nftIn(ns, ['-f', '-'], TABLE)
  })
  afterAll(() => {
    netnsDel(ns)
    expect(fdCount()).toBe(before)
  })

  it('adds, replaces and deletes map elements with their mark and timeout', async () => {
    const flows = await open({ table: 'baton_t', set: 'flows' })
    expect(flows).toMatchObject({ family: 'ip', table: 'baton_t', set: 'flows', isMap: true, hasTimeout: true })
    const elems: NftElement[] = [
      { address: '10.99.0.10', port: 40001, mark: 0xff, timeoutMs: 60_000 },
      { address: '10.99.0.11', port: 80, mark: 1, timeoutMs: 120_000 },
      { address: '192.168.255.254', port: 65535, mark: 0xfffffffe },
    ]
    flows.add(elems)
    expect(listed(ns, 'map', 'flows')).toEqual([
      { key: '10.99.0.10 . 40001', mark: 0xff, timeoutS: 60 },
      { key: '10.99.0.11 . 80', mark: 1, timeoutS: 120 },
      { key: '192.168.255.254 . 65535', mark: 0xfffffffe },
    ])
    flows.add([elems[1] as NftElement]) // the same element again: a no-op, as `nft add element`

    // The steer: frozen (0xff) -> real server 2, atomically.
    flows.replace([{ address: '10.99.0.10', port: 40001, mark: 2, timeoutMs: 30_000 }])
    expect(listed(ns, 'map', 'flows')[0]).toEqual({ key: '10.99.0.10 . 40001', mark: 2, timeoutS: 30 })

    flows.delete(elems)
    expect(listed(ns, 'map', 'flows')).toEqual([])
    flows.close()
    flows.close()
  })

  it('applies a batch all or nothing and names the element that failed', async () => {
    const flows = await open({ table: 'baton_t', set: 'flows' })
    flows.add([{ address: '10.0.0.2', port: 2, mark: 1 }])
    const err = (() => {
      try {
        flows.add([{ address: '10.0.0.1', port: 1, mark: 1 }, { address: '10.0.0.2', port: 2, mark: 9 }])
      } catch (e) { return e }
    })()
    expect(err).toMatchObject({ name: 'BatonNativeError', errnoCode: 'EEXIST' })
    expect((err as Error).message).toBe('nft add baton_t.flows[1] 10.0.0.2 . 2 failed: EEXIST')
    expect(listed(ns, 'map', 'flows').map((e) => e.key)).toEqual(['10.0.0.2 . 2']) // 10.0.0.1 not added
    expect(() => flows.replace([{ address: '10.0.0.3', port: 3, mark: 1 }]))
      .toThrow('nft replace baton_t.flows[0] 10.0.0.3 . 3 failed: ENOENT')
    expect(() => flows.delete([{ address: '10.0.0.2', port: 2 }, { address: '10.0.0.9', port: 9 }]))
      .toThrow('nft delete baton_t.flows[1] 10.0.0.9 . 9 failed: ENOENT')
    expect(listed(ns, 'map', 'flows').map((e) => e.key)).toEqual(['10.0.0.2 . 2'])
    flows.delete([{ address: '10.0.0.2', port: 2 }])
    expect(() => flows.add([{ address: '10.0.0.1', port: 1 }])).toThrow(/mark/) // a map needs its mark
    expect(() => flows.add([{ address: '::1', port: 1, mark: 1 }])).toThrow(/IPv4/)
    flows.close()
    expect(() => flows.add([])).toThrow(/closed/)
  })

  it('handles sets (no value), maps without timeouts, and 1024-element batches', async () => {
    const seen = await open({ table: 'baton_t', set: 'seen' })
    expect(seen).toMatchObject({ isMap: false, hasTimeout: true })
    seen.add([{ address: '10.1.2.3', port: 443, timeoutMs: 5000 }])
    expect(listed(ns, 'set', 'seen')).toEqual([{ key: '10.1.2.3 . 443', timeoutS: 5 }])
    expect(() => seen.add([{ address: '10.1.2.3', port: 1, mark: 1 }])).toThrow(/is a set/)
    seen.close()

    const plain = await open({ table: 'baton_t', set: 'plain' })
    expect(plain).toMatchObject({ isMap: true, hasTimeout: false })
    expect(() => plain.add([{ address: '10.0.0.1', port: 1, mark: 1, timeoutMs: 5 }])).toThrow(/flags timeout/)
    const many = Array.from({ length: 1024 }, (_, i) => ({ address: `10.2.${i >> 8}.${i & 255}`, port: 1000 + i, mark: i }))
    plain.add(many)
    const got = listed(ns, 'map', 'plain')
    expect(got.length).toBe(1024)
    expect(got.find((e) => e.key === '10.2.3.255 . 2023')).toEqual({ key: '10.2.3.255 . 2023', mark: 1023 })
    plain.replace(many.map((e) => ({ ...e, mark: e.mark + 1 })))
    expect(listed(ns, 'map', 'plain').find((e) => e.key === '10.2.0.0 . 1000')?.mark).toBe(1)
    plain.delete(many)
    expect(listed(ns, 'map', 'plain')).toEqual([])
    expect(() => plain.add([...many, many[0] as NftElement])).toThrow(/at most 1024/)
    plain.close()
  })

  it('refuses a missing table or set, or a set of another key type, with a clear error', async () => {
    const fds = fdCount()
    await expect(open({ table: 'nope', set: 'flows' })).rejects.toMatchObject({
      name: 'BatonNativeError', errnoCode: 'ENOENT',
      message: 'nft get set ip nope flows (no such table or set) failed: ENOENT' })
    await expect(open({ table: 'baton_t', set: 'nope' })).rejects.toMatchObject({ errnoCode: 'ENOENT' })
    await expect(open({ family: 'inet', table: 'baton_t', set: 'flows' })).rejects.toMatchObject({ errnoCode: 'ENOENT' })
    await expect(open({ table: 'baton_t', set: 'wrongkey' })).rejects.toThrow(/key is 4 bytes, not ipv4_addr . inet_service/)
    await expect(open({ table: 'bad name', set: 'flows' })).rejects.toThrow(/bad nft table name/)
    // In the root namespace (no such table there, or no right to ask) it fails the same clear way.
    expect(() => native.nftOpen({ table: 'baton_t_absent', set: 'flows' })).toThrow(/nft get set ip baton_t_absent flows/)
    expect(fdCount()).toBe(fds)
  })
})
