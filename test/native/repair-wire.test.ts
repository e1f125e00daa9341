// native.repairRestoreWire (native/src/repair_restore.cc, the decoder in repair_state.cc): the agent's restore
// straight from a MIGRATE's wire state. Its decoder must refuse exactly what decodeMigrateState
// (src/protocol/migrate-state.ts, the layout's definition) refuses, with the same reason: checked here on
// valid states and on many broken copies of them, with a VIP that no state has, so that a state the decoder
// accepts is refused for its VIP before any system call (no privileges needed). Then real connections:
// restored from encodeMigrateState of a repairDump on loopback, and from moveOut's frame with a never-sent
// tail (network namespace, nft), each still carrying its bytes.
import fs from 'node:fs'
import net from 'node:net'
import { describe, expect, it } from 'vitest'

import { BatonNativeError } from '../../src/errors'
import { FREEZE_MARK } from '../../src/forward/migrate-flows'
import { native } from '../../src/native/binding'
import type { TcpRepairState } from '../../src/native/types'
import { encodeMigratePrefix } from '../../src/protocol/migrate-control'
import { decodeMigrateState, encodeMigrateState, MAX_QUEUE_BYTES } from '../../src/protocol/migrate-state'
import { fdCount, inNetns, netnsAdd, netnsDel, nftIn, skipReason, sleep, until } from './netns'
import { requestPair } from './tcp-pair'

const LINUX = process.platform === 'linux'
const NOWHERE = { host: '192.0.2.99', port: 1 } // TEST-NET-1: no state below is for it

const SAMPLE: TcpRepairState = {
  family: 4, localAddress: '10.99.0.100', localPort: 80, peerAddress: '10.99.0.10', peerPort: 40312,
  options: 7, sndWscale: 7, rcvWscale: 9, mssClamp: 1460, timestamp: 0xfffffffe, sndWl1: 1, sndWnd: 65535,
  maxWindow: 65535, rcvWnd: 65483, rcvWup: 0x80000000, rcvNxt: 0xffffffff, writeSeq: 12345,
  recvQueue: Buffer.from('GET / HTTP/1.1\r\n\r\n'), sendQueue: Buffer.from('sent-unacked|unsent'), unsentBytes: 6,
}
const STATES: Array<[string, TcpRepairState]> = [
  ['v4, both queues, unsent > 0', SAMPLE],
  ['v4, empty queues', { ...SAMPLE, recvQueue: Buffer.alloc(0), sendQueue: Buffer.alloc(0), unsentBytes: 0 }],
  ['v4, only a receive queue', { ...SAMPLE, sendQueue: Buffer.alloc(0), unsentBytes: 0 }],
  ['v4, all of the send queue unsent', { ...SAMPLE, recvQueue: Buffer.alloc(0), unsentBytes: SAMPLE.sendQueue.length }],
  ['v6', { ...SAMPLE, family: 6, localAddress: '2001:db8::1', peerAddress: '2001:db8:0:1::2' }],
]

/** What the native decoder says of buf[offset..]: 'ok' (it got as far as the VIP check) or its refusal. */
function nativeVerdict (buf: Buffer, offset: number): string {
  try {
    const flow = native.repairRestoreWire(buf, offset, NOWHERE)
    native.close(flow.fd)
    throw new Error('restored a flow for a VIP it does not have')
  } catch (err) {
    const e = err as Error & { code?: string }
    expect(e).not.toBeInstanceOf(BatonNativeError) // refused before any system call
    if (e.message.startsWith('flow is for ')) {
      expect(e.code).toBe('EADDRNOTAVAIL')
      return 'ok'
    }
    expect(e.message).toMatch(/^bad state: /)
    expect(e.code).toBe('EINVAL')
    return e.message
  }
}

function tsVerdict (state: Buffer): string {
  const r = decodeMigrateState(state)
  return r.ok ? 'ok' : `bad state: ${r.reason}`
}

/** Broken (and some still valid) copies of a wire state: every way the decoders must agree on. */
function mutations (good: Buffer): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [['as is', good]]
  const edit = (what: string, f: (b: Buffer) => void): void => { const b = Buffer.from(good); f(b); out.push([what, b]) }
  for (let n = 0; n < good.length; n++) out.push([`first ${n} bytes`, good.subarray(0, n)])
  for (const extra of [1, 2, 3, 100]) out.push([`${extra} trailing bytes`, Buffer.concat([good, Buffer.alloc(extra, 0xaa)])])
  const addrEnd = 60 + 2 * (good[3] === 4 ? 4 : 16)
  for (let i = 0; i < addrEnd; i++) {
    for (const x of [0x01, 0x02, 0x04, 0x0f, 0x80, 0xff]) edit(`byte ${i} ^ ${x}`, (b) => { b[i] = b[i]! ^ x })
    edit(`byte ${i} = 0`, (b) => { b[i] = 0 })
  }
  edit('family 6 on a v4 state', (b) => { b[3] = 6 })
  edit('window scales 14', (b) => { b[5] = 14; b[6] = 14 })
  edit('window scale 15', (b) => { b[6] = 15 })
  const sq = good.readUInt32BE(56)
  for (const [at, v] of [[52, MAX_QUEUE_BYTES], [52, MAX_QUEUE_BYTES + 1], [56, MAX_QUEUE_BYTES], [56, MAX_QUEUE_BYTES + 1],
    [52, 0xffffffff], [56, 0xffffffff], [48, 0xffffffff], [48, sq], [48, sq + 1], [48, 0], [52, 0], [56, 0],
    [52, good.readUInt32BE(52) + 1], [56, sq + 1], [56, sq - 1]] as Array<[number, number]>) {
    edit(`u32 at ${at} = ${v}`, (b) => { b.writeUInt32BE(v >>> 0, at) })
  }
  edit('both ports 65535', (b) => { b.writeUInt16BE(65535, 10); b.writeUInt16BE(65535, 12) })
  edit('peer port 0', (b) => { b.writeUInt16BE(0, 12) })
  edit('reserved u16 1', (b) => { b.writeUInt16BE(1, 14) })
  return out
}

describe.runIf(native.available)('repairRestoreWire: the native decoder and decodeMigrateState agree', () => {
  it.each(STATES)('%s, and every broken copy of it, at offset 0 and inside a frame', (_, state) => {
    const before = fdCount()
    const good = encodeMigrateState(state)
    const prefix = Buffer.alloc(37, 0x5a)
    let accepted = 0
    let refused = 0
    for (const [what, buf] of mutations(good)) {
      const want = tsVerdict(buf)
      if (want === 'ok') accepted++; else refused++
      expect(`${what}: ${nativeVerdict(buf, 0)}`).toBe(`${what}: ${want}`)
      // The same state at the end of a larger buffer (a MIGRATE frame): offset is where it starts.
      expect(`${what} at 37: ${nativeVerdict(Buffer.concat([prefix, buf]), prefix.length)}`).toBe(`${what} at 37: ${want}`)
    }
    expect(accepted).toBeGreaterThan(100) // flips of sequence numbers, addresses... decode fine
    expect(refused).toBeGreaterThan(100)
    expect(fdCount()).toBe(before)
  })

  it('names both ends when the flow is not for the VIP, and converts a new VIP', () => {
    const v4 = encodeMigrateState(SAMPLE)
    const refusal = (buf: Buffer, vip: { host: string; port: number }): unknown => {
      try { native.repairRestoreWire(buf, 0, vip) } catch (err) { return err }
      return undefined
    }
    expect(refusal(v4, NOWHERE)).toMatchObject({ message: 'flow is for 10.99.0.100:80, this agent\'s VIP is 192.0.2.99:1', code: 'EADDRNOTAVAIL' })
    expect(refusal(v4, { host: '10.99.0.100', port: 81 })).toMatchObject({ message: 'flow is for 10.99.0.100:80, this agent\'s VIP is 10.99.0.100:81' })
    expect(refusal(v4, { host: '10.99.0.101', port: 80 })).toMatchObject({ message: 'flow is for 10.99.0.100:80, this agent\'s VIP is 10.99.0.101:80' })
    expect(refusal(v4, { host: '255.255.255.255', port: 65535 })).toMatchObject({ message: 'flow is for 10.99.0.100:80, this agent\'s VIP is 255.255.255.255:65535' })
    const v6 = encodeMigrateState({ ...SAMPLE, family: 6, localAddress: '2001:db8::1', peerAddress: '::2' })
    expect(refusal(v6, NOWHERE)).toMatchObject({ message: 'flow is for [2001:db8::1]:80, this agent\'s VIP is 192.0.2.99:1' })
  })

  it('refuses bad arguments before the addon is called', () => {
    const buf = encodeMigrateState(SAMPLE)
    const call = (b: unknown, offset: unknown, vip: unknown, slack?: unknown) => () =>
      native.repairRestoreWire(b as Buffer, offset as number, vip as { host: string; port: number }, slack as number)
    expect(call('nope', 0, NOWHERE)).toThrow(/buf must be a Buffer/)
    expect(call(buf, -1, NOWHERE)).toThrow(/offset must be/)
    expect(call(buf, buf.length + 1, NOWHERE)).toThrow(/offset must be/)
    expect(call(buf, 0.5, NOWHERE)).toThrow(/offset must be/)
    expect(call(buf, 0, null)).toThrow(/vip must be/)
    expect(call(buf, 0, { host: '192.0.2.99', port: 0 })).toThrow(/vip.port must be/)
    expect(call(buf, 0, { host: '::1', port: 80 })).toThrow(/vip.host must be a numeric IPv4 address/)
    expect(call(buf, 0, { host: undefined, port: 80 })).toThrow(/vip.host must be a numeric IPv4 address/)
    expect(call(buf, 0, NOWHERE, 1001)).toThrow(/timestampSlackMs must be/)
    // The whole buffer after offset is the state: an offset at its end is an empty (truncated) state.
    expect(call(buf, buf.length, NOWHERE)).toThrow(/^bad state: truncated: no header$/)
  })
})

function received (sock: net.Socket): () => Buffer {
  const chunks: Buffer[] = []
  sock.on('data', (d: Buffer) => chunks.push(d))
  return () => Buffer.concat(chunks)
}

const REQ = Buffer.from('GET /wire HTTP/1.1\r\nHost: vip\r\n\r\n')
const ANSWER = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwire')

const repairSkip = LINUX ? skipReason({}) : 'Linux only'
if (repairSkip !== null) describe('repairRestoreWire on loopback', () => { it.skip(`skipped: ${repairSkip}`, () => {}) })
describe.runIf(repairSkip === null)('repairRestoreWire on loopback', () => {
  it('restores a dumped connection from its wire form: the request, the answer, the client end, the timestamp slack', async () => {
    const before = fdCount()
    const { listenFd, port, client, fd, ended } = await requestPair(REQ)
    const got = received(client)
    const dumped = native.repairDump(fd)
    native.repairClose(fd)
    const frame = Buffer.concat([Buffer.alloc(11), encodeMigrateState(dumped)])

    const flow = native.repairRestoreWire(frame, 11, { host: '127.0.0.1', port }, 500)
    expect(flow).toMatchObject({ peerAddress: '127.0.0.1', peerPort: client.localPort })
    expect(flow.unsent.length).toBe(0)
    // Read back in repair mode: the timestamp went forward by the slack (and the little time since the dump).
    const again = native.repairDump(flow.fd)
    const unit = (dumped.timestamp & 1) === 1 ? 1000 : 1
    const moved = (again.timestamp - dumped.timestamp) >>> 0
    expect(moved).toBeGreaterThanOrEqual(500 * unit)
    expect(moved).toBeLessThan(1500 * unit)
    expect(again).toMatchObject({ localPort: port, peerPort: client.localPort, rcvNxt: dumped.rcvNxt, writeSeq: dumped.writeSeq })
    expect(again.recvQueue).toEqual(REQ)
    expect(native.repairGo(flow.fd, flow.unsent, false, false)).toBe(0)

    const sock = new net.Socket({ fd: flow.fd })
    const seen = received(sock)
    await until('the migrated request', () => seen().equals(REQ), 10_000)
    sock.write(ANSWER)
    await until('the answer', () => got().equals(ANSWER), 10_000)
    expect(ended()).toBe(false)
    client.destroy()
    sock.destroy()
    native.close(listenFd)
    await until('fds closed', () => fdCount() === before)
  })

  it('a failed step throws BatonNativeError naming it, with no fd left open', () => {
    const before = fdCount()
    // A flow for an address this host does not have: decoded and for the VIP, then bind refuses it.
    const state = encodeMigrateState({ ...SAMPLE, localAddress: '192.0.2.1' })
    expect(() => native.repairRestoreWire(state, 0, { host: '192.0.2.1', port: 80 })).toThrow(expect.objectContaining({
      name: 'BatonNativeError', syscall: 'bind', errnoCode: 'EADDRNOTAVAIL', message: 'bind failed: EADDRNOTAVAIL' }))
    expect(fdCount()).toBe(before)
  })
})

const TABLE = `table ip baton_t {
  map flows { type ipv4_addr . inet_service : mark; flags timeout; }
  chain steer {
    type filter hook prerouting priority mangle;
    tcp flags & (syn|ack) != syn meta mark set ip saddr . tcp sport map @flows
    meta mark != 0 drop
  }
}
`
const netnsSkip = LINUX ? skipReason({ netns: true, nft: true }) : 'Linux only'
if (netnsSkip !== null) describe('repairRestoreWire from moveOut', () => { it.skip(`skipped: ${netnsSkip}`, () => {}) })
describe.runIf(netnsSkip === null)('repairRestoreWire from moveOut\'s frame (network namespace)', () => {
  it('restores the frame\'s state in place: the request, the sent and the never-sent bytes reach their ends', async () => {
    const before = fdCount()
    const ns = netnsAdd('baton-wire')
    try {
      nftIn(ns, ['-f', '-'], TABLE)
      await inNetns(ns, async () => {
        const flows = native.nftOpen({ table: 'baton_t', set: 'flows' })
        const { listenFd, port, client, fd, ended } = await requestPair(REQ)
        const got = received(client)
        const clientPort = client.localPort ?? 0
        // Frozen first: the client's ACKs are dropped, so what the window let out stays unacknowledged and the
        // rest of the 256 KiB is never sent (migrate-out.test.ts does the same).
        flows.add([{ address: '127.0.0.1', port: clientPort, mark: FREEZE_MARK, timeoutMs: 30_000 }])
        const sent = Buffer.alloc(256 << 10)
        for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff
        expect(fs.writeSync(fd, sent)).toBe(sent.length)
        await sleep(20)

        const prefix = encodeMigratePrefix({ id: 9, sentAt: 1, deadline: 2, service: 'web', route: 'route-0' })
        const ends = { clientAddress: '127.0.0.1', clientPort, localAddress: '127.0.0.1', localPort: port }
        const moved = flows.moveOut(fd, ends, prefix, { freezeMark: FREEZE_MARK, freezeTimeoutMs: 5000, steerMark: 3, steerTimeoutMs: 60_000 })
        expect(moved.steerError).toBeUndefined()
        const decoded = decodeMigrateState(moved.frame.subarray(moved.stateAt))
        if (!decoded.ok) throw new Error(decoded.reason)
        expect(decoded.state.unsentBytes).toBeGreaterThan(0)
        expect(decoded.state.unsentBytes).toBeLessThan(sent.length)
        flows.delete([{ address: '127.0.0.1', port: clientPort }])

        const flow = native.repairRestoreWire(moved.frame, moved.stateAt, { host: '127.0.0.1', port })
        expect(flow).toMatchObject({ peerAddress: '127.0.0.1', peerPort: clientPort })
        expect(flow.unsent.equals(sent.subarray(sent.length - decoded.state.unsentBytes))).toBe(true)
        expect(flow.unsent.buffer).toBe(moved.frame.buffer) // a view into the frame, not a copy
        const went = native.repairGo(flow.fd, flow.unsent, false, false)
        const sock = new net.Socket({ fd: flow.fd })
        sock.write(flow.unsent.subarray(went)) // what did not fit the restored socket's buffer
        const seen = received(sock)
        await until('the migrated request', () => seen().equals(REQ), 10_000)
        await until('every byte written before the move', () => got().length >= sent.length, 10_000)
        expect(got().equals(sent)).toBe(true)
        expect(ended()).toBe(false)
        client.destroy()
        sock.destroy()
        native.close(listenFd)
        flows.close()
      })
    } finally {
      netnsDel(ns)
    }
    await until('fds closed', () => fdCount() === before)
  })
})
