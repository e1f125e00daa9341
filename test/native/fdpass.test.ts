// SEQPACKET channels and SCM_RIGHTS on real sockets: listen/connect/accept, peerCred, moving a live TCP
// connection with its metadata, EAGAIN on a full channel, truncation, EOF, a dead peer, extra fds.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { BatonNativeError } from '../../src/errors'
import { native } from '../../src/native/binding'

const fdCount = (): number => fs.readdirSync('/proc/self/fd').length
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const hasPython = ((): boolean => { try { execFileSync('python3', ['-c', 'import socket; socket.send_fds']); return true } catch { return false } })()
let seq = 0

async function settleFds (expected: number): Promise<number> {
  for (let i = 0; i < 50 && fdCount() !== expected; i++) await sleep(20)
  return fdCount()
}

function thrown (fn: () => unknown): unknown {
  try { fn() } catch (err) { return err }
  return undefined
}

describe.runIf(process.platform === 'linux' && native.available)('native fd passing', () => {
  let before = 0
  const cleanups: Array<() => void> = []
  const closeLater = (fd: number): number => { cleanups.push(() => native.close(fd)); return fd }

  beforeEach(() => { before = fdCount() })
  afterEach(async () => {
    while (cleanups.length > 0) cleanups.pop()?.()
    expect(await settleFds(before)).toBe(before)
  })

  /** An abstract-namespace listener and a connected pair: tx = dispatcher side, rx = back-end side. */
  function channel (closeTx = true): { name: string; lfd: number; tx: number; rx: number } {
    const name = `@baton-test-${process.pid}-${++seq}`
    const lfd = closeLater(native.seqpacketListen(name, 16))
    const tx = native.seqpacketConnect(name)
    if (closeTx) closeLater(tx)
    const rx = native.accept(lfd)
    expect(rx).toBeGreaterThanOrEqual(0)
    return { name, lfd, tx, rx: closeLater(rx) }
  }

  /** A client connected to a native listener; fd = the server side, never read by libuv. */
  async function tcpPair (): Promise<{ client: net.Socket; fd: number }> {
    const { fd: lfd, port } = native.listenTcp('127.0.0.1', 0, 8, 0)
    const client = net.connect({ port, host: '127.0.0.1' })
    client.on('error', () => {})
    cleanups.push(() => client.destroy())
    await new Promise((resolve) => client.once('connect', resolve))
    let fd = -1
    for (let i = 0; i < 100 && fd < 0; i++) { fd = native.accept(lfd); if (fd < 0) await sleep(5) }
    native.close(lfd)
    return { client, fd }
  }

  it('listens on a filesystem path, connects, accepts; never replaces an existing file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-'))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const file = path.join(dir, 'be.sock')
    native.close(native.seqpacketListen(file, 4)) // leaves a stale socket file
    // Telling a stale file from a live one is the back end's policy (backend/socket-path.ts), not the addon's.
    expect(thrown(() => native.seqpacketListen(file, 4))).toMatchObject({ syscall: 'bind', errnoCode: 'EADDRINUSE' })
    fs.rmSync(file)
    const lfd = closeLater(native.seqpacketListen(file, 4))
    expect(native.accept(lfd)).toBe(-native.constants.EAGAIN)
    const tx = closeLater(native.seqpacketConnect(file))
    const rx = closeLater(native.accept(lfd))
    expect(native.sendMsg(tx, Buffer.from('hi'), 2)).toBe(0)
    const out = new Int32Array(2)
    const buf = Buffer.alloc(16)
    expect(native.recvMsg(rx, buf, out)).toBe(2)
    expect(Array.from(out)).toEqual([-1, 0])
    expect(native.recvMsg(rx, buf, out)).toBe(-native.constants.EAGAIN)
    expect(thrown(() => native.seqpacketListen(file, 4))).toMatchObject({ errnoCode: 'EADDRINUSE' }) // a live one

    fs.writeFileSync(path.join(dir, 'plain'), 'not a socket')
    expect(thrown(() => native.seqpacketListen(path.join(dir, 'plain'), 4))).toMatchObject({ errnoCode: 'EADDRINUSE' })
    expect(fs.readFileSync(path.join(dir, 'plain'), 'utf8')).toBe('not a socket')
  })

  it('creates the socket file with its mode already set (fchmod before bind), masked by the umask, never widened', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-'))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const modeOf = (f: string): number => fs.statSync(f).mode & 0o777
    const umask = process.umask(0)
    try {
      closeLater(native.seqpacketListen(path.join(dir, 'default.sock'), 4))
      closeLater(native.seqpacketListen(path.join(dir, 'group.sock'), 4, 0o660))
      closeLater(native.seqpacketListen(path.join(dir, 'none.sock'), 4, 0))
      process.umask(0o027)
      closeLater(native.seqpacketListen(path.join(dir, 'masked.sock'), 4, 0o666))
    } finally {
      process.umask(umask)
    }
    expect(modeOf(path.join(dir, 'default.sock'))).toBe(0o600) // umask 0 and still 0600
    expect(modeOf(path.join(dir, 'group.sock'))).toBe(0o660)
    expect(modeOf(path.join(dir, 'none.sock'))).toBe(0)
    expect(modeOf(path.join(dir, 'masked.sock'))).toBe(0o640)
    expect(() => native.seqpacketListen(path.join(dir, 'x.sock'), 4, 0o1777)).toThrow(/mode must be an int/)
  })

  it('binds an abstract name without creating any file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-'))
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }))
    const name = `@baton-abstract-${process.pid}-${++seq}`
    const cwd = process.cwd()
    process.chdir(dir)
    try {
      closeLater(native.seqpacketListen(name, 4, 0o666))
    } finally {
      process.chdir(cwd)
    }
    expect(fs.readdirSync(dir)).toEqual([])
    expect(fs.readFileSync('/proc/net/unix', 'utf8').split('\n').some((l) => l.endsWith(` ${name}`))).toBe(true)
  })

  it('throws BatonNativeError when connecting to nothing', () => {
    const err = thrown(() => native.seqpacketConnect(`@baton-none-${process.pid}`))
    expect(err).toBeInstanceOf(BatonNativeError)
    expect(err).toMatchObject({ syscall: 'connect', errnoCode: 'ECONNREFUSED', errno: native.constants.ECONNREFUSED })
    expect(thrown(() => native.seqpacketConnect('/nonexistent/baton.sock'))).toMatchObject({ errnoCode: 'ENOENT' })
  })

  it('peerCred returns this process', () => {
    const { tx, rx } = channel()
    expect(native.peerCred(rx)).toEqual({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() })
    expect(native.peerCred(tx).pid).toBe(process.pid)
  })

  it('moves a live TCP connection with its metadata; the receiver talks to the client after the sender closed', async () => {
    const { tx, rx } = channel()
    const { client, fd } = await tcpPair()
    client.write('GET / HTTP/1.1\r\n\r\n')
    await sleep(20)
    const meta = Buffer.from('{"conn":1,"svc":"api"}xxxx')
    expect(native.sendFd(tx, fd, meta, 22)).toBe(0)
    native.close(fd) // the sender's copy; no FIN, the kernel holds the socket in flight

    const buf = Buffer.alloc(256)
    const out = new Int32Array([-7, -7])
    expect(native.recvMsg(rx, buf, out)).toBe(22)
    expect(buf.toString('utf8', 0, 22)).toBe('{"conn":1,"svc":"api"}')
    expect(out[1]).toBe(0)
    const got = out[0]!
    expect(got).toBeGreaterThanOrEqual(0)

    const adopted = new net.Socket({ fd: got, readable: true, writable: true })
    cleanups.push(() => adopted.destroy())
    expect(adopted.remotePort).toBe(client.localPort)
    const head = await new Promise<string>((resolve) => adopted.once('data', (d) => resolve(d.toString())))
    expect(head).toBe('GET / HTTP/1.1\r\n\r\n') // peeked bytes were never consumed
    const reply = new Promise<string>((resolve) => client.once('data', (d) => resolve(d.toString())))
    adopted.write('HTTP/1.1 200 OK\r\n\r\n')
    expect(await reply).toBe('HTTP/1.1 200 OK\r\n\r\n')
  })

  it('returns -EAGAIN on a full channel and the caller still owns the fd', async () => {
    const { tx, rx } = channel()
    const msg = Buffer.alloc(100, 1)
    let sent = 0
    while (native.sendMsg(tx, msg, msg.length) === 0 && sent < 100_000) sent++
    expect(sent).toBeGreaterThan(0)
    expect(sent).toBeLessThan(100_000)
    const { fd } = await tcpPair()
    closeLater(fd)
    expect(native.sendFd(tx, fd, msg, 10)).toBe(-native.constants.EAGAIN)
    expect(fs.fstatSync(fd).isSocket()).toBe(true)
    const out = new Int32Array(2)
    for (let i = 0; i < sent; i++) {
      expect(native.recvMsg(rx, Buffer.alloc(128), out)).toBe(100)
      expect(out[0]).toBe(-1)
    }
    expect(native.recvMsg(rx, Buffer.alloc(128), out)).toBe(-native.constants.EAGAIN)
  })

  it('flags a truncated message, then reads EOF', () => {
    const { tx, rx } = channel(false)
    expect(native.sendMsg(tx, Buffer.alloc(100, 7), 100)).toBe(0)
    const out = new Int32Array(2)
    expect(native.recvMsg(rx, Buffer.alloc(10), out)).toBe(10)
    expect(out[1]).toBe(1)
    native.close(tx)
    expect(native.recvMsg(rx, Buffer.alloc(10), out)).toBe(0)
    expect(Array.from(out)).toEqual([-1, 0])
  })

  it('returns a negative errno, not a crash, when the receiver died', async () => {
    const name = `@baton-test-${process.pid}-${++seq}`
    const lfd = native.seqpacketListen(name, 4)
    const tx = closeLater(native.seqpacketConnect(name))
    native.close(native.accept(lfd))
    native.close(lfd)
    const { fd } = await tcpPair()
    closeLater(fd)
    const rc = native.sendFd(tx, fd, Buffer.from('m'), 1)
    expect([-native.constants.ECONNRESET, -native.constants.EPIPE]).toContain(rc)
    expect(fs.fstatSync(fd).isSocket()).toBe(true)
  })

  it.runIf(hasPython)('keeps the first of several fds, closes the others, and flags MSG_CTRUNC', () => {
    const name = `@baton-test-${process.pid}-${++seq}`
    const lfd = closeLater(native.seqpacketListen(name, 4))
    execFileSync('python3', ['-c', `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect('\\0' + sys.argv[1][1:])
socket.send_fds(s, [b'three'], [os.open('/dev/null', os.O_RDONLY) for _ in range(3)])
socket.send_fds(s, [b'twenty'], [os.open('/dev/null', os.O_RDONLY) for _ in range(20)])
`, name])
    const rx = closeLater(native.accept(lfd))
    const base = fdCount()
    const out = new Int32Array(2)
    const buf = Buffer.alloc(64)
    expect(native.recvMsg(rx, buf, out)).toBe(5)
    expect(out[1]).toBe(0)
    expect(fs.readlinkSync(`/proc/self/fd/${out[0]}`)).toBe('/dev/null')
    native.close(out[0]!)
    expect(fdCount()).toBe(base)
    expect(native.recvMsg(rx, buf, out)).toBe(6)
    expect(out[1]).toBe(1) // 20 fds do not fit the control buffer
    expect(out[0]).toBeGreaterThanOrEqual(0)
    native.close(out[0]!)
    expect(fdCount()).toBe(base)
    expect(native.recvMsg(rx, buf, out)).toBe(0)
  })
})
