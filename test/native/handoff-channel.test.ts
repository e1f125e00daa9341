// HandoffChannel on real SEQPACKET sockets and the real addon: the peer (a back end) is a listener made with
// native.seqpacketListen. Covers up/send, FIFO queueing on EAGAIN and its drain, feedback, goodbye, EOF with
// queued clients returned and reconnect with backoff, protocol errors, close(), and the fd count; and liveness
// (channelTimeoutMs 200): a peer that answers PINGs stays up, one that stops reading goes down within the
// bound without the channel closing and comes back when it answers, queued clients come back unsent.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { BatonError } from '../../src/errors'
import { HandoffChannel, type HandoffChannelHooks } from '../../src/forward/handoff-channel'
import { silentLogger } from '../../src/log'
import { native } from '../../src/native/binding'
import type { PollerHandle } from '../../src/native/types'
import {
  decodeHandoff, encodeFeedback, encodeHandoff, encodePong, HEARTBEAT_BYTES, type HandoffMeta, MAX_MESSAGE_BYTES,
  MSG_GOODBYE, MSG_PING,
} from '../../src/protocol/handoff'

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const isOpen = (fd: number): boolean => { try { fs.fstatSync(fd); return true } catch { return false } }

async function waitFor (cond: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
  const end = performance.now() + timeoutMs
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(5)
  }
}

/** Spies on setInterval/clearInterval: the set holds the intervals made and not cleared yet. */
function liveIntervals (): Set<unknown> {
  const live = new Set<unknown>()
  const set = globalThis.setInterval
  const clear = globalThis.clearInterval
  vi.spyOn(globalThis, 'setInterval').mockImplementation(((fn: () => void, ms: number) => {
    const t = set(fn, ms)
    live.add(t)
    return t
  }) as never)
  vi.spyOn(globalThis, 'clearInterval').mockImplementation(((t: NodeJS.Timeout | undefined) => {
    live.delete(t)
    clear(t)
  }) as never)
  return live
}

interface Item { readonly id: number; readonly fd: number }

describe.runIf(process.platform === 'linux' && native.available)('HandoffChannel on real sockets', () => {
  let before = 0
  let dir = ''
  let sock = ''
  /** Every fd this test owns (peer sockets, clients not yet handed over); closed at the end. */
  const owned = new Set<number>()
  const channels: Array<HandoffChannel<Item>> = []
  /** Peers' pollers (answer()); closed before their fds. */
  const pollers: PollerHandle[] = []
  const own = (fd: number): number => { expect(fd).toBeGreaterThanOrEqual(0); owned.add(fd); return fd }
  const drop = (fd: number): void => { owned.delete(fd); native.close(fd) }

  /** Intervals (heartbeats) made during the test and not cleared: none may outlive close(). */
  let intervals = new Set<unknown>()

  beforeEach(() => {
    intervals = liveIntervals()
    before = fdCount()
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-hc-'))
    sock = path.join(dir, 'be.sock')
  })
  afterEach(async () => {
    for (const ch of channels.splice(0)) ch.close()
    for (const p of pollers.splice(0)) p.close()
    expect(intervals.size).toBe(0)
    vi.restoreAllMocks()
    for (const fd of [...owned]) drop(fd)
    fs.rmSync(dir, { recursive: true, force: true })
    for (let i = 0; i < 50 && fdCount() !== before; i++) await sleep(20)
    expect(fdCount()).toBe(before)
  })

  /**
   * A channel whose hooks record everything; `warns` holds the logger's warn lines with their times. The
   * heartbeat is too slow to matter unless a test passes a small channelTimeoutMs.
   */
  function channel (channelTimeoutMs = 60_000) {
    const ev = {
      up: [] as number[],
      down: [] as Array<{ err: BatonError; lost: boolean; t: number }>,
      feedback: [] as number[][],
      sent: [] as Item[],
      unsent: [] as Array<{ item: Item; err: BatonError; t: number }>,
      warns: [] as Array<{ msg: string; t: number }>,
    }
    const hooks: HandoffChannelHooks<Item> = {
      up: () => ev.up.push(performance.now()),
      down: (err, lost) => ev.down.push({ err, lost, t: performance.now() }),
      feedback: (a, i, c) => ev.feedback.push([a, i, c]),
      sent: (item) => { owned.delete(item.fd); ev.sent.push(item) }, // the channel closed our copy
      unsent: (item, err) => ev.unsent.push({ item, err, t: performance.now() }),
    }
    const log = silentLogger()
    vi.spyOn(log, 'warn').mockImplementation(((_obj: unknown, msg: string) => { ev.warns.push({ msg, t: performance.now() }) }) as never)
    const ch = new HandoffChannel<Item>(sock, hooks, log, new Set([0, process.getuid!()]), channelTimeoutMs)
    channels.push(ch)
    return { ch, ev }
  }

  /** A peer listening on `sock`, and a channel connected to it; rx = the peer's end. */
  function connected (channelTimeoutMs?: number) {
    const lfd = own(native.seqpacketListen(sock, 16))
    const c = channel(channelTimeoutMs)
    c.ch.open()
    const rx = own(native.accept(lfd))
    return { ...c, lfd, rx }
  }

  const meta = Buffer.alloc(MAX_MESSAGE_BYTES)
  let nextId = 0
  /** Hands a fresh /dev/null fd over as connection `id`; the fd stays ours unless the channel took it. */
  function send (ch: HandoffChannel<Item>): { rc: number; item: Item } {
    const item = { id: nextId++, fd: own(fs.openSync('/dev/null', 'r')) }
    const rc = ch.send(item.fd, meta, encodeHandoff(meta, item.id, 'api', `r${item.id}`), item)
    if (rc === 0) owned.delete(item.fd)
    return { rc, item }
  }

  /** Sends until the peer's queue is full and one send is queued, then `extra` more; returns the queued items. */
  function fill (ch: HandoffChannel<Item>, extra = 4): { sentFirst: number; queued: Item[] } {
    let sentFirst = 0
    const queued: Item[] = []
    for (let i = 0; i < 5000 && queued.length === 0; i++) {
      const { rc, item } = send(ch)
      if (rc === 1) queued.push(item)
      else { expect(rc).toBe(0); sentFirst++ }
    }
    expect(queued).toHaveLength(1)
    for (let i = 0; i < extra; i++) {
      const { rc, item } = send(ch)
      expect(rc).toBe(1) // FIFO: nothing overtakes the queue
      queued.push(item)
    }
    expect(ch.queued).toBe(queued.length)
    return { sentFirst, queued }
  }

  /**
   * Reads every message waiting at the peer (up to EAGAIN or EOF): decoded metadata; fds are checked and
   * closed; PINGs are skipped unanswered.
   */
  function readPeer (rx: number): HandoffMeta[] {
    const buf = Buffer.alloc(MAX_MESSAGE_BYTES)
    const out = new Int32Array(2)
    const got: HandoffMeta[] = []
    for (;;) {
      const n = native.recvMsg(rx, buf, out)
      if (n === -native.constants.EAGAIN || n === 0) return got
      expect(n).toBeGreaterThan(0)
      if (out[0]! < 0 && buf[0] === MSG_PING && n === HEARTBEAT_BYTES) continue
      expect(out[0]).toBeGreaterThanOrEqual(0)
      expect(fs.readlinkSync(`/proc/self/fd/${out[0]}`)).toBe('/dev/null')
      native.close(out[0]!)
      got.push(decodeHandoff(buf, n)!)
    }
  }

  it('connects to a listening peer and hands an fd over with its metadata; the sender copy is closed', () => {
    const { ch, ev, rx } = connected()
    expect(ev.up).toHaveLength(1)
    expect(ch.ready).toBe(true)
    expect(ch.path).toBe(sock)

    const { rc, item } = send(ch)
    expect(rc).toBe(0)
    expect(isOpen(item.fd)).toBe(false) // closed by the channel before any fd could reuse its number
    expect(readPeer(rx)).toEqual([{ connId: item.id, service: 'api', route: `r${item.id}` }])
    expect(ev.up).toHaveLength(1)
    expect(ev.down).toHaveLength(0)
  })

  it('queues on EAGAIN in FIFO order and sends every queued client exactly once when the peer reads', async () => {
    const { ch, ev, rx } = connected()
    const first = nextId
    const { sentFirst, queued } = fill(ch)
    expect(sentFirst).toBeGreaterThan(0)
    for (const q of queued) expect(isOpen(q.fd)).toBe(true) // the channel owns them until sent()
    expect(ev.sent).toHaveLength(0)

    const got: HandoffMeta[] = []
    await waitFor(() => { got.push(...readPeer(rx)); return ev.sent.length === queued.length && ch.queued === 0 }, 3000, 'the drain')
    got.push(...readPeer(rx))
    expect(ev.sent).toEqual(queued)
    expect(got.map((m) => m.connId)).toEqual(Array.from({ length: sentFirst + queued.length }, (_, i) => first + i))
    expect(got.every((m) => m.service === 'api' && m.route === `r${m.connId}`)).toBe(true)
    expect(ev.unsent).toHaveLength(0)
    expect(send(ch).rc).toBe(0) // the queue is empty again: straight sends
    expect(readPeer(rx)).toHaveLength(1)
  })

  it('reports FEEDBACK counters', async () => {
    const { ev, rx } = connected()
    const buf = Buffer.alloc(64)
    expect(native.sendMsg(rx, buf, encodeFeedback(buf, 3, 5, -2))).toBe(0)
    expect(native.sendMsg(rx, buf, encodeFeedback(buf, 0, -1, 1))).toBe(0)
    await waitFor(() => ev.feedback.length === 2, 2000, 'feedback')
    expect(ev.feedback).toEqual([[5, -2, 3], [-1, 1, 0]]) // (dActive, dInactive, closed)
    expect(ev.down).toHaveLength(0)
  })

  it('goes down without losing connections on GOODBYE; send then refuses and leaves the fd to the caller', async () => {
    const { ch, ev, rx } = connected()
    expect(native.sendMsg(rx, Buffer.from([MSG_GOODBYE]), 1)).toBe(0)
    await waitFor(() => ev.down.length === 1, 2000, 'down')
    expect(ev.down[0]!.lost).toBe(false)
    expect(ev.down[0]!.err).toMatchObject({ code: 'BATON_ERR_CHANNEL_DOWN' })
    expect(ch.ready).toBe(false)
    const { rc, item } = send(ch)
    expect(rc).toBe(-native.constants.ECONNRESET)
    expect(isOpen(item.fd)).toBe(true)
    expect(readPeer(rx)).toEqual([])
    await sleep(150) // still connected: no reconnect, no second down
    expect(ev.up).toHaveLength(1)
    expect(ev.down).toHaveLength(1)
  })

  it('on EOF returns queued clients open, then reconnects with growing backoff', async () => {
    const { ch, ev, lfd, rx } = connected()
    const { queued } = fill(ch)
    drop(rx)
    drop(lfd) // the socket file stays: connect() gets ECONNREFUSED until a listener is back
    await waitFor(() => ev.down.length === 1, 2000, 'down')
    expect(ev.down[0]!.lost).toBe(true)
    expect(ev.down[0]!.err).toBeInstanceOf(BatonError)
    expect(ch.ready).toBe(false)
    expect(ch.queued).toBe(0)
    expect(ev.unsent.map((u) => u.item)).toEqual(queued)
    expect(ev.unsent.every((u) => u.err === ev.down[0]!.err)).toBe(true)
    for (const q of queued) { expect(isOpen(q.fd)).toBe(true); drop(q.fd) } // ours again
    expect(ev.sent).toHaveLength(0)

    const failed = (): Array<{ t: number }> => ev.warns.filter((w) => w.msg === 'handoff channel not connected')
    await waitFor(() => failed().length === 2, 3000, 'two failed reconnects')
    const restarted = performance.now()
    fs.rmSync(sock) // the dead listener's file: seqpacketListen never replaces one (the back end's policy)
    const lfd2 = own(native.seqpacketListen(sock, 16))
    await waitFor(() => ev.up.length === 2, 1500, 'up again')
    expect(ch.ready).toBe(true)
    own(native.accept(lfd2))

    // down -> attempt 1 -> attempt 2 -> attempt 3 (up): nominally 100, 200, 400 ms. Timers fire late, not early.
    const [f1, f2] = failed()
    const gaps = [f1!.t - ev.down[0]!.t, f2!.t - f1!.t, ev.up[1]! - f2!.t]
    expect(gaps[0]).toBeGreaterThanOrEqual(95)
    expect(gaps[1]).toBeGreaterThanOrEqual(195)
    expect(gaps[2]).toBeGreaterThanOrEqual(395)
    expect(gaps[2]).toBeGreaterThan(gaps[0]!)
    expect(gaps[2]).toBeGreaterThan(gaps[1]!)
    expect(ev.up[1]! - restarted).toBeLessThan(1000)
    expect(ev.down).toHaveLength(1) // failed attempts while down report no further down()
  })

  it.each([
    ['an unknown message type', [9, 9, 9]],
    ['a short FEEDBACK', [2, 0, 0]],
    ['a GOODBYE with a payload', [MSG_GOODBYE, 0]],
  ])('goes down on a protocol error: %s', async (_, bytes) => {
    const { ch, ev, rx } = connected()
    expect(native.sendMsg(rx, Buffer.from(bytes), bytes.length)).toBe(0)
    await waitFor(() => ev.down.length === 1, 2000, 'down')
    expect(ev.down[0]!.lost).toBe(true)
    expect(ev.down[0]!.err.message).toContain('protocol error')
    expect(ch.ready).toBe(false)
    expect(readPeer(rx)).toEqual([]) // the PING sent at connect, skipped...
    expect(native.recvMsg(rx, Buffer.alloc(8), new Int32Array(2))).toBe(0) // ...then EOF: the channel closed its end
    expect(ev.feedback).toHaveLength(0)
  })

  it('close(): queued clients come back open, the channel fd is closed, and it never reconnects', async () => {
    const { ch, ev, lfd, rx } = connected()
    const { sentFirst, queued } = fill(ch, 2)
    const withQueue = fdCount()
    ch.close()
    expect(ch.ready).toBe(false)
    expect(ev.down).toHaveLength(1)
    expect(ev.down[0]!.err).toMatchObject({ code: 'BATON_ERR_CHANNEL_DOWN' })
    expect(ev.unsent.map((u) => u.item)).toEqual(queued)
    for (const q of queued) expect(isOpen(q.fd)).toBe(true)
    expect(fdCount()).toBe(withQueue - 1) // only the channel's own fd went
    expect(readPeer(rx)).toHaveLength(sentFirst) // what was sent before close() still arrives...
    expect(native.recvMsg(rx, Buffer.alloc(8), new Int32Array(2))).toBe(0) // ...then EOF

    const { rc, item } = send(ch)
    expect(rc).toBe(-native.constants.ECONNRESET)
    expect(isOpen(item.fd)).toBe(true)
    ch.open() // a no-op once closed
    ch.close() // idempotent
    await sleep(250) // past the first reconnect delay (100 ms)
    expect(native.accept(lfd)).toBe(-native.constants.EAGAIN)
    expect(ev.up).toHaveLength(1)
    expect(ev.down).toHaveLength(1)
    expect(ev.warns).toHaveLength(0)
  })

  it('stays down and retries when nothing listens, then comes up when the peer appears', async () => {
    const { ch, ev } = channel()
    ch.open() // no socket file yet: ENOENT
    expect(ch.ready).toBe(false)
    expect(ev.warns.map((w) => w.msg)).toEqual(['handoff channel not connected'])
    expect(ev.down).toHaveLength(0) // never up: no down()
    expect(send(ch).rc).toBe(-native.constants.ECONNRESET)
    const lfd = own(native.seqpacketListen(sock, 16))
    await waitFor(() => ev.up.length === 1, 2000, 'up')
    own(native.accept(lfd))
    expect(ch.ready).toBe(true)
  })

  // Liveness. T = channelTimeoutMs; bounds are generous for a slow shared machine (timers fire late, never early).
  const T = 200

  /**
   * Makes the peer at rx a back end that reads its channel: from a poller, as baton/backend does, it answers
   * each PING with a PONG at once and takes (and closes) handed-over fds. stop() = stop reading; start() again.
   */
  function answer (rx: number) {
    const buf = Buffer.alloc(MAX_MESSAGE_BYTES)
    const pong = Buffer.alloc(HEARTBEAT_BYTES)
    const out = new Int32Array(2)
    const peer = { pings: 0, handoffs: [] as HandoffMeta[], odd: 0 }
    const poller = native.createPoller(rx, () => {
      for (;;) {
        const n = native.recvMsg(rx, buf, out)
        if (n <= 0) return
        if (out[0]! >= 0) {
          native.close(out[0]!)
          peer.handoffs.push(decodeHandoff(buf, n)!)
        } else if (encodePong(pong, buf, n) === HEARTBEAT_BYTES) {
          peer.pings++
          native.sendMsg(rx, pong, HEARTBEAT_BYTES)
        } else peer.odd++ // no expect() here: this runs in a native callback
      }
    })
    pollers.push(poller)
    const start = (): void => { poller.start(native.constants.READABLE) }
    start()
    return { peer, stop: () => { poller.stop() }, start }
  }

  it('liveness: a peer that answers every PING keeps the channel up; close() leaves no heartbeat timer', async () => {
    const { ch, ev, rx } = connected(T)
    expect(intervals.size).toBe(1) // one heartbeat per channel
    const p = answer(rx)
    await sleep(4 * T)
    expect(p.peer.pings).toBeGreaterThanOrEqual(4) // every T/4 nominally: 16
    expect(p.peer.odd).toBe(0)
    expect(ev.down).toHaveLength(0)
    expect(ev.warns).toHaveLength(0)
    expect(ch.ready).toBe(true)
    const { rc, item } = send(ch)
    expect(rc).toBe(0)
    await waitFor(() => p.peer.handoffs.length === 1, 2000, 'the handoff')
    expect(p.peer.handoffs[0]!.connId).toBe(item.id)
    ch.close()
    expect(intervals.size).toBe(0)
  })

  it('liveness: a peer that stops reading goes down within the bound, keeps its channel, and is up again when it answers', async () => {
    const { ch, ev, lfd, rx } = connected(T)
    const p = answer(rx)
    await waitFor(() => p.peer.pings >= 2, 5 * T, 'two answered pings')
    const fds = fdCount()
    const stopped = performance.now()
    p.stop()
    await waitFor(() => ev.down.length === 1, 5 * T, 'down')
    const detectMs = ev.down[0]!.t - stopped
    expect(detectMs).toBeGreaterThanOrEqual(T - 10) // silence is counted from the last answer, before the stop
    expect(detectMs).toBeLessThan(5 * T)
    expect(ev.down[0]!.lost).toBe(false) // its connections are not lost: they wait in its socket
    expect(ev.down[0]!.err).toMatchObject({ code: 'BATON_ERR_CHANNEL_DOWN' })
    expect(ev.down[0]!.err.message).toContain(`no answer to a heartbeat in ${T} ms`)
    expect(ch.ready).toBe(false)
    const refused = send(ch)
    expect(refused.rc).toBe(-native.constants.ECONNRESET)
    expect(isOpen(refused.item.fd)).toBe(true)
    drop(refused.item.fd)

    await sleep(2 * T) // still unresponsive: no second down, one log line, no reconnect
    expect(ev.down).toHaveLength(1)
    expect(ev.warns.map((w) => w.msg)).toEqual(['handoff channel unresponsive'])
    expect(native.accept(lfd)).toBe(-native.constants.EAGAIN)
    expect(fdCount()).toBe(fds) // the channel's fd stayed open

    const resumed = performance.now()
    p.start()
    await waitFor(() => ev.up.length === 2, 5 * T, 'up again')
    const recoverMs = ev.up[1]! - resumed
    expect(recoverMs).toBeLessThan(5 * T)
    expect(ch.ready).toBe(true)
    const { rc, item } = send(ch)
    expect(rc).toBe(0)
    await waitFor(() => p.peer.handoffs.some((m) => m.connId === item.id), 2000, 'the handoff')
    expect(ev.down).toHaveLength(1)
    console.log(`handoff channel, channelTimeoutMs ${T}: down ${detectMs.toFixed(0)} ms after the peer stopped reading, up ${recoverMs.toFixed(1)} ms after it read again`)
  })

  it('liveness: queued clients come back unsent once they waited the bound (retryable); the channel stays and recovers', async () => {
    const { ch, ev, lfd, rx } = connected(T) // nothing reads rx: every PING goes unanswered, later ones do not fit
    const queuedAt = performance.now()
    const { sentFirst, queued } = fill(ch)
    await waitFor(() => ev.unsent.length === queued.length, 5 * T, 'queued clients back')
    expect(ev.unsent.map((u) => u.item)).toEqual(queued)
    for (const u of ev.unsent) {
      expect(u.t - queuedAt).toBeGreaterThanOrEqual(T - 10)
      expect(u.t - queuedAt).toBeLessThan(5 * T)
      expect(u.err).toMatchObject({ code: 'BATON_ERR_CHANNEL_DOWN', retryable: true })
      expect(isOpen(u.item.fd)).toBe(true) // the dispatcher's again
      drop(u.item.fd)
    }
    expect(ch.queued).toBe(0)
    expect(ev.sent).toHaveLength(0)
    expect(ev.down).toHaveLength(1)
    expect(ev.down[0]!.lost).toBe(false)
    expect(ev.down[0]!.t).toBeLessThanOrEqual(ev.unsent[0]!.t) // down first: the retries do not pick it again
    expect(ev.down[0]!.err.message).toContain('none ever came') // it never answered: the old-back-end hint
    expect(native.accept(lfd)).toBe(-native.constants.EAGAIN)

    const p = answer(rx) // the peer reads again: what was sent arrives, PINGs are answered
    await waitFor(() => ev.up.length === 2, 5 * T, 'up again')
    expect(p.peer.handoffs).toHaveLength(sentFirst) // the clients handed back were never sent
    expect(ch.ready).toBe(true)
    expect(send(ch).rc).toBe(0)
  })

  it('liveness: FEEDBACK without reading is not an answer (only a PONG is)', async () => {
    const { ch, ev, rx } = connected(T)
    const buf = Buffer.alloc(64)
    const len = encodeFeedback(buf, 0, 0, 0)
    const feeding = setInterval(() => { native.sendMsg(rx, buf, len) }, 10)
    try {
      await waitFor(() => ev.down.length === 1, 5 * T, 'down')
      await sleep(2 * T)
      expect(ev.feedback.length).toBeGreaterThan(10)
      expect(ev.up).toHaveLength(1)
      expect(ch.ready).toBe(false)
    } finally {
      clearInterval(feeding)
    }
  })

  it('liveness: GOODBYE, then silence, then answers: stays down (draining), with no second down()', async () => {
    const { ch, ev, rx } = connected(T)
    expect(native.sendMsg(rx, Buffer.from([MSG_GOODBYE]), 1)).toBe(0)
    await waitFor(() => ev.down.length === 1, 2000, 'down')
    await waitFor(() => ev.warns.some((w) => w.msg === 'handoff channel unresponsive'), 5 * T, 'unresponsive')
    answer(rx)
    await sleep(2 * T)
    expect(ev.up).toHaveLength(1)
    expect(ev.down).toHaveLength(1)
    expect(ch.ready).toBe(false)
  })

})
