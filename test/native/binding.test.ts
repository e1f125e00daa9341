// binding.ts: argument checks, error names, sockaddrs, BATON_NO_NATIVE, the acceptor's EMFILE back-off.
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { describe, expect, it, vi } from 'vitest'

import { native } from '../../src/native/binding'
import { errnoName } from '../../src/native/errno'

describe('native binding without the addon', () => {
  it('BATON_NO_NATIVE=1 makes every call throw BATON_ERR_NATIVE_UNAVAILABLE', async () => {
    vi.resetModules()
    process.env.BATON_NO_NATIVE = '1'
    try {
      const mod = await import('../../src/native/binding')
      const errors = await import('../../src/errors') // the fresh module graph's classes
      expect(mod.native.available).toBe(false)
      expect(mod.native.loadError?.message).toMatch(/BATON_NO_NATIVE/)
      expect(mod.native.constants.EAGAIN).toBe(11)
      expect(mod.native.errnoName(104)).toBe('ECONNRESET')
      const err = (() => { try { mod.native.peek(0, Buffer.alloc(1)) } catch (e) { return e } })()
      expect(err).toBeInstanceOf(errors.BatonError)
      expect(err).toMatchObject({ code: 'BATON_ERR_NATIVE_UNAVAILABLE' })
      expect(() => mod.native.listenTcp('127.0.0.1', 0, 1, 0)).toThrow(/unavailable/)
      expect(() => mod.native.sockaddr('127.0.0.1', 80)).toThrow(/unavailable/)
      expect(() => mod.native.createRelay({ pipeSize: 65536, connectTimeoutMs: 1, idleTimeoutMs: 0, pipePoolMax: 0 },
        { established () {}, failed () {}, closed () {} })).toThrow(/unavailable/)
    } finally {
      delete process.env.BATON_NO_NATIVE
      vi.resetModules()
    }
  })
})

describe.runIf(process.platform === 'linux' && native.available)('native binding', () => {
  it('names errors the same way in C (thrown setup errors) and in errno.ts', () => {
    const err = (() => { try { native.listenTcp('256.1.1.1', 0, 1, 0) } catch (e) { return e } })()
    expect(err).toMatchObject({ syscall: 'inet_pton', errno: 22, errnoCode: errnoName(22) })
  })

  it('builds sockaddrs in the addon (one home for TCP and AF_UNIX)', () => {
    const v4 = native.sockaddr('127.0.0.1', 8080)
    expect(v4.length).toBe(16)
    expect(v4.readUInt16LE(0)).toBe(2) // AF_INET
    expect(v4.readUInt16BE(2)).toBe(8080)
    expect([...v4.subarray(4, 8)]).toEqual([127, 0, 0, 1])
    const v6 = native.sockaddr('::1', 443)
    expect(v6.length).toBe(28)
    expect(v6.readUInt16LE(0)).toBe(10) // AF_INET6
    expect(v6.readUInt16BE(2)).toBe(443)
    expect(v6[23]).toBe(1)
    const un = native.sockaddrUnix('/run/x.sock')
    expect(un.length).toBe(2 + 11 + 1) // trailing NUL counted
    expect(un.subarray(2, 13).toString()).toBe('/run/x.sock')
    const abs = native.sockaddrUnix('@baton-x')
    expect(abs.length).toBe(2 + 8) // abstract: exact length, leading NUL
    expect(abs[2]).toBe(0)
    expect(abs.subarray(3).toString()).toBe('baton-x')
    expect(() => native.sockaddr('localhost', 80)).toThrow(/numeric IP/)
    expect(() => native.sockaddr('127.0.0.1', 0)).toThrow(/port/)
    expect(() => native.sockaddrUnix('/' + 'x'.repeat(200))).toThrow(/too long/)
  })

  it('dup and close: one close for every fd', () => {
    const fd = native.seqpacketListen('@baton-dup-test', 1)
    const copy = native.dup(fd)
    expect(copy).toBeGreaterThan(fd)
    native.close(copy)
    native.close(fd)
  })

  it('write: bytes written, and -EAGAIN once the socket buffers are full', async () => {
    const { createServer, connect } = await import('node:net')
    const got: Buffer[] = []
    const server = createServer((s) => { s.pause(); got.push(Buffer.alloc(0)); server.emit('peer', s) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const peer = new Promise<import('node:net').Socket>((resolve) => server.once('peer', resolve))
    const client = connect((server.address() as { port: number }).port, '127.0.0.1')
    await new Promise((resolve) => client.once('connect', resolve))
    const fd = (client as unknown as { _handle: { fd: number } })._handle.fd
    const p = await peer
    expect(native.write(fd, Buffer.from('hello'))).toBe(5)
    const chunk = Buffer.alloc(1 << 20)
    let n = 0
    let rc = 0
    for (let i = 0; i < 1000 && (rc = native.write(fd, chunk)) > 0; i++) n += rc
    expect(rc).toBe(-native.constants.EAGAIN) // the peer reads nothing: the buffers filled
    expect(n).toBeGreaterThan(0)
    const first = await new Promise<Buffer>((resolve) => { p.once('data', resolve); p.resume() })
    expect(first.subarray(0, 5).toString()).toBe('hello')
    client.on('error', () => {})
    p.destroy()
    client.destroy()
    server.close()
  })

  it('asserts its arguments (programmer errors, not BatonErrors)', () => {
    expect(() => native.write(-1, Buffer.alloc(1))).toThrow(/fd must be an int/)
    expect(() => native.peek(-1, Buffer.alloc(1))).toThrow(/fd must be an int/)
    expect(() => native.peek(1.5, Buffer.alloc(1))).toThrow(/fd must be an int/)
    expect(() => native.peek(0, Buffer.alloc(0))).toThrow(/non-empty Buffer/)
    expect(() => native.sendFd(0, 0, Buffer.alloc(4), 5)).toThrow(/metaLen/)
    expect(() => native.sendFd(0, 0, Buffer.alloc(4), 0)).toThrow(/metaLen/)
    expect(() => native.recvMsg(0, Buffer.alloc(4), new Int32Array(1))).toThrow(/Int32Array/)
    expect(() => native.seqpacketListen('a\0b', 1)).toThrow(/NUL/)
    expect(() => native.createPoller(0, 'x' as never)).toThrow(/function/)
    expect(native.errnoName(-104)).toBe('ECONNRESET')
    expect(native.errnoName(native.constants.EMFILE)).toBe('EMFILE')
  })

  it('pauses the acceptor on EMFILE instead of spinning, then resumes', () => {
    const addon = path.resolve(__dirname, '../../native/build/Release/baton.node')
    const script = `
      const m = require(${JSON.stringify(addon)}); const fs = require('fs'); const net = require('net')
      const { fd, port } = m.baton_tcp_listen('127.0.0.1', 0, 16, 0)
      let accepted = 0
      const a = m.baton_acceptor_create(fd, Buffer.alloc(64), (cfd) => { accepted++; m.baton_fd_close(cfd) })
      const client = net.connect(port, '127.0.0.1', () => {
        const hog = []
        try { for (;;) hog.push(fs.openSync('/dev/null', 'r')) } catch {}
        m.baton_acceptor_start(a)
        const cpu0 = process.cpuUsage()
        setTimeout(() => {
          const cpu = process.cpuUsage(cpu0)
          const during = accepted
          hog.forEach((h) => fs.closeSync(h))
          setTimeout(() => {
            console.log(JSON.stringify({ during, after: accepted, cpuMs: Math.round((cpu.user + cpu.system) / 1000) }))
            client.destroy(); m.baton_acceptor_close(a); m.baton_fd_close(fd)
          }, 300)
        }, 400)
      })
    `
    const out = execFileSync('/bin/sh', ['-c', 'ulimit -n 64 && exec "$0" -e "$1"', process.execPath, script],
      { encoding: 'utf8', timeout: 10_000 })
    const r = JSON.parse(out) as { during: number; after: number; cpuMs: number }
    expect(r.during).toBe(0)
    expect(r.after).toBe(1)
    expect(r.cpuMs).toBeLessThan(200) // a spinning level-triggered poll would burn the whole 400 ms
  })
})
