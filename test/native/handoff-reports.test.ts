// The back end's reports on a real SEQPACKET channel: the dispatcher PINGs as it connects (not a heartbeat
// tick later), so HELLO (where the back end's http.Server answers) and REPORT (its state and weight) arrive
// before any active check or connection needs them; the hooks get them decoded, and `answered` tells the
// checks when the back end has had its say.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { HandoffChannel, type HandoffChannelHooks } from '../../src/forward/handoff-channel'
import { silentLogger } from '../../src/log'
import { native } from '../../src/native/binding'
import {
  encodeHello, encodePong, encodeReport, HEARTBEAT_BYTES, MAX_MESSAGE_BYTES, MSG_PING, type CheckAddress,
} from '../../src/protocol/handoff'

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length

describe.runIf(process.platform === 'linux' && native.available)('HandoffChannel: back-end reports', () => {
  const fds: number[] = []
  const channels: Array<HandoffChannel<number>> = []
  let dir = ''
  afterEach(() => {
    for (const ch of channels.splice(0)) ch.close()
    for (const fd of fds.splice(0)) native.close(fd)
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('pings at connect; HELLO and REPORT reach the hooks; nothing leaks', async () => {
    const before = fdCount()
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-hr-'))
    const sock = path.join(dir, 'be.sock')
    const lfd = native.seqpacketListen(sock, 4)
    fds.push(lfd)
    const ev = { hello: [] as CheckAddress[], report: [] as unknown[][] }
    const hooks: HandoffChannelHooks<number> = {
      up: () => {}, down: () => {}, feedback: () => {}, sent: () => {}, unsent: () => {},
      hello: (addr) => ev.hello.push(addr),
      report: (state, percent) => ev.report.push([state, percent]),
    }
    const ch = new HandoffChannel<number>(sock, hooks, silentLogger(), new Set([0, process.getuid!()]), 60_000)
    channels.push(ch)
    ch.open()
    const rx = native.accept(lfd)
    fds.push(rx)

    const buf = Buffer.alloc(MAX_MESSAGE_BYTES)
    const n = native.recvMsg(rx, buf, new Int32Array(2)) // at once: the heartbeat's first tick is 15 s away
    expect([n, buf[0]]).toEqual([HEARTBEAT_BYTES, MSG_PING])
    expect(ch.answered).toBe(false) // health checks wait ('pending') rather than fail
    const out = Buffer.alloc(MAX_MESSAGE_BYTES) // as baton/backend answers: HELLO and REPORT, then the PONG
    expect(native.sendMsg(rx, out, encodeHello(out, { host: '127.0.0.1', port: 8081 }))).toBe(0)
    expect(native.sendMsg(rx, out, encodeReport(out, 'drain', undefined))).toBe(0)
    expect(native.sendMsg(rx, out, encodeReport(out, undefined, 50))).toBe(0)
    expect(native.sendMsg(rx, out, encodePong(out, buf, n))).toBe(0)
    for (let i = 0; i < 200 && !ch.answered; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(ev.hello).toEqual([{ host: '127.0.0.1', port: 8081 }])
    expect(ev.report).toEqual([['drain', undefined], [undefined, 50]])
    expect(ch.ready).toBe(true)

    ch.close()
    channels.length = 0
    for (const fd of fds.splice(0)) native.close(fd)
    expect(fdCount()).toBe(before)
  })
})
