// NftSetHandle.moveOut / FlowTable.moveOut (native/src/migrate_out.cc): freeze, dump, close in repair mode and
// steer in one addon call, which returns the MIGRATE frame with the dumped state written into it by C++
// (repair_state.cc), against the real kernel in a fresh network namespace. The state's wire form is defined in
// TypeScript (protocol/migrate-state.ts): one test holds the two encoders to the same bytes on a real dump. The map sits in a
// prerouting chain as on a dispatcher (a marked flow's packets are dropped here: frozen, or "steered away"),
// the client is a net.Socket of this process and the server side a raw fd Node never reads, as in
// repair.test.ts. `nft -j list map` is the judge of what the kernel holds.
import fs from 'node:fs'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { FLOW_TIMEOUT_MS, FlowTable, FREEZE_MARK } from '../../src/forward/migrate-flows'
import { silentLogger } from '../../src/log'
import { native } from '../../src/native/binding'
import { unsentOf } from '../../src/native/repair'
import type { FlowEnds, MoveOutOptions, MoveOutResult, NftSetHandle, TcpRepairState } from '../../src/native/types'
import { decodeMigrate, encodeMigrateOf, encodeMigratePrefix, type MigrateHead, MSG_MIGRATE } from '../../src/protocol/migrate-control'
import { decodeMigrateState } from '../../src/protocol/migrate-state'
import { fdCount, inNetns, netnsAdd, netnsDel, nftIn, skipReason, sleep, until } from './netns'
import { openPair, queued, requestPair } from './tcp-pair'

const TABLE = `table ip baton_t {
  map flows { type ipv4_addr . inet_service : mark; flags timeout; }
  map small { type ipv4_addr . inet_service : mark; flags timeout; size 1; }
  chain steer {
    type filter hook prerouting priority mangle;
    tcp flags & (syn|ack) != syn meta mark set ip saddr . tcp sport map @flows
    meta mark != 0 drop
  }
}
`
const REQ = Buffer.from('GET /moved HTTP/1.1\r\nHost: vip\r\n\r\n')
const ANSWER = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nmoved'
const OPTS: MoveOutOptions = { freezeMark: FREEZE_MARK, freezeTimeoutMs: 5000, steerMark: 3, steerTimeoutMs: 60_000 }
const HEAD: MigrateHead = { id: 77, sentAt: 1234.5, deadline: 1734.5, service: 'web', route: 'route-0' }
const PREFIX = encodeMigratePrefix(HEAD)

/** The pair's two ends as the dispatcher knows them (the accepted client, the listener). */
const endsOf = (client: net.Socket, port: number): FlowEnds =>
  ({ clientAddress: '127.0.0.1', clientPort: client.localPort ?? 0, localAddress: '127.0.0.1', localPort: port })

/** The state of a moveOut's frame, checking the frame around it: its length, type, head. */
function stateOf (moved: MoveOutResult): TcpRepairState {
  const { frame, stateAt } = moved
  expect(stateAt).toBe(PREFIX.length)
  expect(frame.subarray(4, stateAt)).toEqual(PREFIX.subarray(4))
  expect(frame.readUInt32BE(0)).toBe(frame.length - 4)
  expect(frame[4]).toBe(MSG_MIGRATE)
  const m = decodeMigrate(frame.subarray(5))
  expect(m).toMatchObject(HEAD)
  const d = decodeMigrateState(frame.subarray(stateAt))
  if (!d.ok) throw new Error(d.reason)
  return d.state
}

/** What `nft -j list map` shows: "addr . port" -> mark and timeout (seconds). */
function listed (ns: string, map = 'flows'): Map<string, { mark: number; timeoutS?: number }> {
  const out = JSON.parse(nftIn(ns, ['-j', 'list', 'map', 'ip', 'baton_t', map])) as { nftables: Array<Record<string, any>> }
  const set = out.nftables.find((o) => o.map !== undefined)?.map as { elem?: any[] }
  const m = new Map<string, { mark: number; timeoutS?: number }>()
  for (const [k, mark] of set.elem ?? []) {
    const concat = (k.elem?.val ?? k).concat as [string, number]
    m.set(`${concat[0]} . ${concat[1]}`, { mark, ...(k.elem?.timeout !== undefined ? { timeoutS: k.elem.timeout } : {}) })
  }
  return m
}

const isOpen = (fd: number): boolean => {
  try { fs.fstatSync(fd); return true } catch { return false }
}

function received (sock: net.Socket): () => string {
  let got = ''
  sock.on('data', (d: Buffer) => { got += d.toString('latin1') })
  return () => got
}

const skip = process.platform === 'linux' ? skipReason({ netns: true, nft: true }) : 'Linux only'
if (skip !== null) describe('moveOut', () => { it.skip(`skipped: ${skip}`, () => {}) })

describe.runIf(skip === null)('moveOut: freeze, dump, close, steer in one call (network namespace)', () => {
  let ns = ''
  let before = 0
  beforeAll(() => {
    before = fdCount()
    ns = netnsAdd('baton-mvout')
    nftIn(ns, ['-f', '-'], TABLE)
  })
  afterAll(async () => {
    netnsDel(ns)
    await until('fds closed', () => fdCount() === before)
  })

  /** Runs body in the namespace with the `flows` map open; then closes it, and no fd the test opened may outlive it. */
  async function withFlows (body: (flows: NftSetHandle) => Promise<void>): Promise<void> {
    const fds = fdCount()
    await inNetns(ns, async () => {
      const flows = native.nftOpen({ table: 'baton_t', set: 'flows' })
      try { await body(flows) } finally { flows.close() }
    })
    await until('fds closed', () => fdCount() === fds)
  }

  it('leaves the flow steered, the fd closed without a packet, and a state that restores the connection', async () => {
    await withFlows(async (flows) => {
      const { listenFd, port, client, fd, ended } = await requestPair(REQ)
      const got = received(client)

      const moved = flows.moveOut(fd, endsOf(client, port), PREFIX, OPTS)
      expect(isOpen(fd)).toBe(false) // first, before anything else can get the number again
      expect(moved.steerError).toBeUndefined()
      const state = stateOf(moved)
      expect(state).toMatchObject({ family: 4, localAddress: '127.0.0.1', localPort: port, peerAddress: '127.0.0.1',
        peerPort: client.localPort, unsentBytes: 0 })
      expect(state.recvQueue).toEqual(REQ) // the unread request
      expect(state.sendQueue.length).toBe(0)
      expect(listed(ns).get(`127.0.0.1 . ${client.localPort ?? 0}`)).toEqual({ mark: 3, timeoutS: 60 })
      await sleep(50)
      expect(ended()).toBe(false) // no FIN, no RST

      // The agent's half, here: packets come back once the element is gone.
      flows.delete([{ address: '127.0.0.1', port: client.localPort ?? 0 }])
      const restored = native.repairRestore(state)
      native.repairGo(restored, unsentOf(state))
      const sock = new net.Socket({ fd: restored })
      const seen = received(sock)
      await until('the migrated request', () => seen() === REQ.toString('latin1'), 10_000)
      sock.write(ANSWER)
      await until('the answer', () => got() === ANSWER, 10_000)
      expect(ended()).toBe(false)
      client.destroy()
      sock.destroy()
      native.close(listenFd)
    })
  })

  it('steering first: one element, the steer mark at once; keepOpen leaves the fd open in repair mode, and its close sends nothing', async () => {
    await withFlows(async (flows) => {
      const { listenFd, port, client, fd, ended } = await requestPair(REQ)
      const first = { freezeMark: 3, freezeTimeoutMs: 60_000, steerMark: 3, steerTimeoutMs: 60_000 }
      expect(() => flows.moveOut(fd, endsOf(client, port), PREFIX, { ...OPTS, keepOpen: true })).toThrow(/keepOpen only when steering first/)
      const moved = flows.moveOut(fd, endsOf(client, port), PREFIX, { ...first, keepOpen: true })
      expect(moved.steerError).toBeUndefined()
      expect(isOpen(fd)).toBe(true)
      expect(native.tcpInfo(fd).state).toBe(1) // still ESTABLISHED, in repair mode
      expect(stateOf(moved).recvQueue).toEqual(REQ)
      expect(listed(ns).get(`127.0.0.1 . ${client.localPort ?? 0}`)).toEqual({ mark: 3, timeoutS: 60 })
      native.close(fd)
      await sleep(50)
      expect(ended()).toBe(false) // neither the dump nor the close sent a FIN or a RST
      flows.delete([{ address: '127.0.0.1', port: client.localPort ?? 0 }])
      client.destroy()
      native.close(listenFd)
    })
  })

  // The frame's state is written by C++ (repair_state.cc), the layout is TypeScript's (migrate-state.ts). Here
  // the socket is dumped twice, the flow frozen in between: first by repairDump (the TcpRepairState the
  // dump describes, addresses from the socket itself), then by moveOut. Both queues are non-empty: the
  // server's bytes reached the client, whose ACKs the freeze drops, and the rest waits for its window.
  it('writes the state that the dump describes, byte for byte as encodeMigrateOf, and it restores', async () => {
    await withFlows(async (flows) => {
      const { listenFd, port, client, fd, ended } = await requestPair(REQ)
      const got: Buffer[] = []
      client.on('data', (d: Buffer) => got.push(d))
      const clientPort = client.localPort ?? 0
      flows.add([{ address: '127.0.0.1', port: clientPort, mark: FREEZE_MARK, timeoutMs: 30_000 }])
      const sent = Buffer.alloc(256 << 10) // more than the client's window: a tail stays unsent
      for (let i = 0; i < sent.length; i++) sent[i] = (i * 7) & 0xff
      expect(fs.writeSync(fd, sent)).toBe(sent.length)
      await sleep(20) // what the window let out reached the client

      // Nothing slow in between: in repair mode with the send queue selected, a retransmission timer that
      // fires would count the unsent tail as sent.
      const dumped = native.repairDump(fd) // the socket stays in repair mode: nothing moves until moveOut
      const moved = flows.moveOut(fd, endsOf(client, port), PREFIX, OPTS)
      expect(isOpen(fd)).toBe(false)
      expect(moved.steerError).toBeUndefined()
      expect(dumped.sendQueue.equals(sent)).toBe(true) // nothing was ACKed
      expect(dumped.unsentBytes).toBeGreaterThan(0)
      expect(dumped.unsentBytes).toBeLessThan(sent.length)
      expect(dumped.recvQueue).toEqual(REQ)
      const state = stateOf(moved)
      // TCP_TIMESTAMP is the socket's clock (tcp_time_stamp + offset), read twice: it moved by at most a little.
      expect(((state.timestamp - dumped.timestamp) >>> 0)).toBeLessThan(100_000)
      const same = { ...dumped, timestamp: state.timestamp }
      const noQueues = (t: TcpRepairState): object => ({ ...t, recvQueue: t.recvQueue.length, sendQueue: t.sendQueue.length })
      expect(noQueues(state)).toEqual(noQueues(same))
      expect(state.recvQueue.equals(dumped.recvQueue) && state.sendQueue.equals(dumped.sendQueue)).toBe(true)
      // The TypeScript encoder gives the same bytes, from the frame's state and from repairDump's.
      expect(encodeMigrateOf(HEAD, state).equals(moved.frame)).toBe(true)
      expect(encodeMigrateOf(HEAD, same).equals(moved.frame)).toBe(true)

      flows.delete([{ address: '127.0.0.1', port: clientPort }])
      const restored = native.repairRestore(state)
      const unsent = unsentOf(state)
      const went = native.repairGo(restored, unsent)
      const sock = new net.Socket({ fd: restored })
      sock.write(unsent.subarray(went)) // what did not fit in the restored socket's buffer
      const seen = received(sock)
      await until('the migrated request', () => seen() === REQ.toString('latin1'), 10_000)
      await until('every byte written before the move', () => got.reduce((n, b) => n + b.length, 0) >= sent.length, 10_000)
      expect(Buffer.concat(got).equals(sent)).toBe(true)
      expect(ended()).toBe(false)
      client.destroy()
      sock.destroy()
      native.close(listenFd)
    })
  })

  it('a failed dump: throws, deletes the freeze element, and leaves the socket open, out of repair mode', async () => {
    await withFlows(async (flows) => {
      const { listenFd, fd, client } = await openPair()
      const got = received(client)

      // A listening socket: TCP_REPAIR itself is refused.
      const ends = { clientAddress: '127.0.0.1', clientPort: 40001, localAddress: '127.0.0.1', localPort: 80 }
      expect(() => flows.moveOut(listenFd, ends, PREFIX, OPTS)).toThrow(expect.objectContaining({
        name: 'BatonNativeError', syscall: 'setsockopt(TCP_REPAIR)', errnoCode: 'EPERM' }))
      expect(isOpen(listenFd)).toBe(true)
      expect(listed(ns).size).toBe(0)

      // A client that already sent its FIN: the dump refuses a socket that is not ESTABLISHED.
      client.end()
      await until('the FIN', () => native.tcpInfo(fd).state !== 1)
      const port = client.localPort ?? 0
      expect(() => flows.moveOut(fd, { ...ends, clientPort: port }, PREFIX, OPTS)).toThrow(expect.objectContaining({
        name: 'BatonNativeError', syscall: 'tcp_info(state ESTABLISHED)', errnoCode: 'ENOTCONN' }))
      expect(listed(ns).has(`127.0.0.1 . ${port}`)).toBe(false)
      expect(isOpen(fd)).toBe(true)
      fs.writeSync(fd, 'still here') // out of repair mode: a plain write reaches the client
      await until('a byte after the failed dump', () => got() === 'still here')
      client.destroy()
      native.close(fd)
      native.close(listenFd)
    })
  })

  it('a failed freeze: throws naming the element, and the socket is untouched', async () => {
    const fds = fdCount()
    await inNetns(ns, async () => {
      const small = native.nftOpen({ table: 'baton_t', set: 'small' })
      small.add([{ address: '10.9.9.9', port: 9, mark: 1 }]) // size 1: full, the freeze gets ENFILE
      const { listenFd, fd, client, port: listenPort } = await openPair()
      const got = received(client)
      const port = client.localPort ?? 0
      expect(() => small.moveOut(fd, endsOf(client, listenPort), PREFIX, OPTS)).toThrow(expect.objectContaining({
        name: 'BatonNativeError', syscall: `nft add baton_t.small 127.0.0.1 . ${port} (freeze)`, errnoCode: 'ENFILE' }))
      expect(native.tcpInfo(fd).state).toBe(1)
      fs.writeSync(fd, 'untouched')
      await until('a byte after the failed freeze', () => got() === 'untouched')
      small.delete([{ address: '10.9.9.9', port: 9 }])
      client.destroy()
      native.close(fd)
      native.close(listenFd)
      small.close()
    })
    await until('fds closed', () => fdCount() === fds)
  })

  it('FlowTable.moveOut takes over a stale element of the same client port', async () => {
    const fds = fdCount()
    await inNetns(ns, async () => {
      const table = new FlowTable<string>(native.nftOpen({ table: 'baton_t', set: 'flows' }), silentLogger(), 1000, 5000)
      const flows = native.nftOpen({ table: 'baton_t', set: 'flows' })
      for (const staleMark of [7, FREEZE_MARK]) { // another server's (EEXIST, replaced), and a frozen one (kept)
        const { listenFd, fd, client, port: listenPort } = await openPair()
        const port = client.localPort ?? 0
        client.write(REQ)
        await queued(fd, REQ.length)
        flows.add([{ address: '127.0.0.1', port, mark: staleMark, timeoutMs: 30_000 }])
        const moved = table.moveOut(fd, endsOf(client, listenPort), PREFIX, 4)
        expect(isOpen(fd)).toBe(false)
        expect(moved.steerError).toBeUndefined()
        expect(stateOf(moved).recvQueue).toEqual(REQ)
        expect(listed(ns).get(`127.0.0.1 . ${port}`)).toEqual({ mark: 4, timeoutS: FLOW_TIMEOUT_MS / 1000 })
        table.unfreeze('127.0.0.1', port)
        client.destroy()
        native.close(listenFd)
      }
      flows.close()
      table.close()
    })
    await until('fds closed', () => fdCount() === fds)
  })

  // No element value or timeout the kernel refuses sets the steer apart from the freeze, and moveOut runs no
  // JS in between. What fails it for sure: the frozen element expires before the steer's DELSETELEM (ENOENT).
  // Its 1 ms timeout is one jiffy (4 ms at HZ=250), so the dump is made slow with a receive queue of
  // several MB (about 3 ms per MB here); an attempt whose dump still beat the tick is retried.
  it('a failed steer: the state comes back with steerError, the fd is closed', async () => {
    await withFlows(async (flows) => {
      const chunk = Buffer.alloc(1 << 20, 0x61)
      const sink = Buffer.alloc(1 << 20)
      let failed = false
      for (let attempt = 0; attempt < 5 && !failed; attempt++) {
        const { listenFd, fd, client, port: listenPort } = await openPair()
        client.on('error', () => {}) // the RST its next segment meets once the frozen element expired
        const port = client.localPort ?? 0
        // Reading fast lets the receive buffer autotune upwards; then the queue fills to several MB.
        const pump = async (ms: number, read: boolean): Promise<void> => {
          for (const end = Date.now() + ms; Date.now() < end;) {
            if (client.writableLength < 8 * chunk.length) client.write(chunk)
            for (let n = 1; read && n > 0;) {
              try { n = fs.readSync(fd, sink) } catch { n = 0 } // EAGAIN: empty for now
            }
            await sleep(0)
          }
        }
        await pump(300, true)
        await pump(300, false)
        const peek = Buffer.alloc(64 << 20)
        let inq = -1
        for (let last = -2; inq !== last;) { last = inq; await sleep(20); inq = native.peek(fd, peek) } // the window closed
        if (inq < 1536 << 10) { // autotuning kept the queue small on a busy machine: the dump could beat the tick; again
          native.close(fd)
          client.destroy()
          native.close(listenFd)
          continue
        }

        const moved = flows.moveOut(fd, endsOf(client, listenPort), PREFIX, { ...OPTS, freezeTimeoutMs: 1 })
        const { steerError } = moved
        expect(isOpen(fd)).toBe(false)
        const state = stateOf(moved) // the frame is whole either way: what a local restore decodes
        expect(state.recvQueue.length).toBe(inq)
        expect(state.recvQueue.equals(peek.subarray(0, inq))).toBe(true)
        if (steerError !== undefined) {
          failed = true
          expect(steerError).toMatchObject({ name: 'BatonNativeError', errnoCode: 'ENOENT',
            syscall: `nft replace baton_t.flows 127.0.0.1 . ${port} (steer)` })
          expect(listed(ns).has(`127.0.0.1 . ${port}`)).toBe(false)
        } else {
          flows.delete([{ address: '127.0.0.1', port }])
        }
        client.destroy()
        native.close(listenFd)
      }
      expect(failed).toBe(true)
    })
  })

  it('refuses bad arguments before any system call', async () => {
    await inNetns(ns, async () => {
      const flows = native.nftOpen({ table: 'baton_t', set: 'flows' })
      const ends: FlowEnds = { clientAddress: '127.0.0.1', clientPort: 1, localAddress: '127.0.0.1', localPort: 80 }
      expect(() => flows.moveOut(-1, ends, PREFIX, OPTS)).toThrow(/fd must be/)
      expect(() => flows.moveOut(3, { ...ends, clientPort: 70000 }, PREFIX, OPTS)).toThrow(/clientPort must be/)
      expect(() => flows.moveOut(3, { ...ends, localPort: 0 }, PREFIX, OPTS)).toThrow(/localPort must be/)
      expect(() => flows.moveOut(3, { ...ends, clientAddress: '::1' }, PREFIX, OPTS)).toThrow(/clientAddress must be a numeric IPv4/)
      expect(() => flows.moveOut(3, { ...ends, localAddress: '::ffff:127.0.0.1' }, PREFIX, OPTS)).toThrow(/localAddress must be a numeric IPv4/)
      expect(() => flows.moveOut(3, { ...ends, localAddress: '0.0.0.0' }, PREFIX, OPTS)).toThrow(/0\.0\.0\.0/)
      expect(() => flows.moveOut(3, ends, Buffer.alloc(4), OPTS)).toThrow(/prefix must be/)
      expect(() => flows.moveOut(3, ends, PREFIX, { ...OPTS, steerMark: -1 })).toThrow(/steerMark must be/)
      expect(() => flows.moveOut(3, ends, PREFIX, undefined as unknown as MoveOutOptions)).toThrow(/options must be/)
      flows.close()
      expect(() => flows.moveOut(3, ends, PREFIX, OPTS)).toThrow(/closed/)
      expect(listed(ns).size).toBe(0)
    })
  })
})
