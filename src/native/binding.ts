// The only file that loads Baton's native addon (one target, "baton"). It wraps each call in argument
// checks (asserts.ts; node:assert: a bad argument is a bug, not a response) and maps thrown native errors
// to BatonNativeError. Hot-path calls return -errno numbers and never throw for socket conditions.
// The C side uses the same names (baton_fd_send, baton_poller_start, ...): one grep covers both. The
// splice relay's wrapper (splice-relay.ts) gets the module from here, through native.createRelay().
// If the addon cannot load, or BATON_NO_NATIVE=1, `native.available` is false and every call throws
// BATON_ERR_NATIVE_UNAVAILABLE; Baton then relays in JavaScript.
import assert from 'node:assert'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { BatonError, BatonNativeError } from '../errors'
import { assertBuffer, assertFd, assertInt, assertPath } from './asserts'
import { errnoName } from './errno'
import { NftSet } from './nft'
import { makeRepairApi } from './repair'
import { NativeRelay } from './splice-relay'
import type { RelayHandler, RelayOptions } from './splice-relay'
import type { AcceptCallback, AcceptorHandle, NativeApi, NativeConstants, NftSetHandle, PollerHandle } from './types'

/** The package root (the directory whose package.json is named "baton"), from src/native or dist/src/native. */
function findPackageRoot (start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown }
      if (pkg.name === 'baton') return dir
    } catch {}
    if (path.dirname(dir) === dir) throw new Error(`no package.json named "baton" above ${start}`)
  }
}

function loadOrThrow (): any {
  if (process.env.BATON_NO_NATIVE === '1') throw new Error('disabled by BATON_NO_NATIVE=1')
  const dir = path.join(findPackageRoot(__dirname), 'native')
  // node-gyp-build takes build/Release, then build/Debug, then prebuilds/. Check that it is the whole addon
  // (a stale build from before the relay joined the target would lack baton_relay_create).
  const mod = require('node-gyp-build')(dir)
  if (typeof mod?.baton_fd_send !== 'function' || typeof mod.baton_relay_create !== 'function') {
    throw new Error(`${dir}: the loaded addon is not this version of "baton" (rebuild it)`)
  }
  return mod
}

/** Maps an Error{errno, code, syscall} thrown by the addon to BatonNativeError; anything else as is. */
function toBatonError (err: unknown): unknown {
  const e = err as { errno?: unknown; code?: unknown; syscall?: unknown } | null
  if (e instanceof Error && typeof e.errno === 'number' && typeof e.syscall === 'string') {
    return new BatonNativeError(e.syscall, e.errno, String(e.code))
  }
  return err
}

function mapErrors<T> (fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw toBatonError(err)
  }
}

const MAX_EVENTS = 7 // READABLE | WRITABLE | DISCONNECT

class Poller implements PollerHandle {
  readonly #raw: any
  readonly #h: object
  #closed = false

  constructor (raw: any, fd: number, cb: (status: number, events: number) => void) {
    this.#raw = raw
    this.#h = mapErrors(() => raw.baton_poller_create(fd, cb))
  }

  start (events: number): void {
    assert(!this.#closed, 'poller is closed')
    assertInt(events, 1, MAX_EVENTS, 'events')
    const rc: number = this.#raw.baton_poller_start(this.#h, events)
    if (rc < 0) throw new BatonNativeError('uv_poll_start', -rc, errnoName(rc))
  }

  stop (): void { this.#raw.baton_poller_stop(this.#h) }
  close (): void { this.#closed = true; this.#raw.baton_poller_close(this.#h) }
  ref (): void { this.#raw.baton_poller_ref(this.#h, true) }
  unref (): void { this.#raw.baton_poller_ref(this.#h, false) }
}

class Acceptor implements AcceptorHandle {
  readonly #raw: any
  readonly #h: object
  #closed = false

  constructor (raw: any, listenFd: number, peekBuf: Buffer, onConn: AcceptCallback) {
    this.#raw = raw
    this.#h = mapErrors(() => raw.baton_acceptor_create(listenFd, peekBuf, onConn))
  }

  start (): void {
    assert(!this.#closed, 'acceptor is closed')
    mapErrors(() => this.#raw.baton_acceptor_start(this.#h))
  }

  stop (): void { this.#raw.baton_acceptor_stop(this.#h) }
  close (): void { this.#closed = true; this.#raw.baton_acceptor_close(this.#h) }
}

function makeApi (raw: any): NativeApi {
  return {
    ...makeRepairApi(raw, mapErrors),

    nftOpen (spec: { family?: 'ip' | 'inet'; table: string; set: string }): NftSetHandle {
      return new NftSet(raw, mapErrors, spec)
    },
    netnsEnter (p: string): number { assertPath(p); return mapErrors(() => raw.baton_netns_enter(p)) },
    netnsReturn (fd: number): void { assertFd(fd); mapErrors(() => raw.baton_netns_return(fd)) },

    available: true,
    loadError: undefined,
    constants: raw.constants as NativeConstants,

    errnoName,

    listenTcp (host: string, port: number, backlog: number, deferAcceptS: number): { fd: number; port: number } {
      assert(typeof host === 'string' && host.length > 0, 'host must be a non-empty string')
      assertInt(port, 0, 65535, 'port')
      assertInt(backlog, 0, 65535, 'backlog')
      assertInt(deferAcceptS, 0, 3600, 'deferAcceptS')
      const literal = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
      return mapErrors(() => raw.baton_tcp_listen(literal, port, backlog, deferAcceptS))
    },

    createAcceptor (listenFd: number, peekBuf: Buffer, onConn: AcceptCallback): AcceptorHandle {
      assertFd(listenFd, 'listenFd')
      assertBuffer(peekBuf, 'peekBuf')
      assert(typeof onConn === 'function', 'onConn must be a function')
      return new Acceptor(raw, listenFd, peekBuf, onConn)
    },

    peek (fd: number, buf: Buffer): number {
      assertFd(fd)
      assertBuffer(buf, 'buf')
      return raw.baton_fd_peek(fd, buf)
    },

    write (fd: number, buf: Buffer): number {
      assertFd(fd)
      assertBuffer(buf, 'buf')
      return raw.baton_fd_write(fd, buf)
    },

    setRcvLowat (fd: number, bytes: number): void {
      assertFd(fd)
      assertInt(bytes, 1, 0x7fffffff, 'bytes')
      mapErrors(() => raw.baton_fd_set_rcvlowat(fd, bytes))
    },

    createPoller (fd: number, cb: (status: number, events: number) => void): PollerHandle {
      assertFd(fd)
      assert(typeof cb === 'function', 'cb must be a function')
      return new Poller(raw, fd, cb)
    },

    close (fd: number): void {
      assertFd(fd)
      const rc: number = raw.baton_fd_close(fd)
      if (rc < 0) throw new BatonNativeError('close', -rc, errnoName(rc))
    },

    dup (fd: number): number {
      assertFd(fd)
      return raw.baton_fd_dup(fd)
    },

    seqpacketListen (p: string, backlog: number, mode = 0o600): number {
      assertPath(p)
      assertInt(backlog, 0, 65535, 'backlog')
      assertInt(mode, 0, 0o777, 'mode')
      return mapErrors(() => raw.baton_seqpacket_listen(p, backlog, mode))
    },

    seqpacketConnect (p: string): number {
      assertPath(p)
      return mapErrors(() => raw.baton_seqpacket_connect(p))
    },

    accept (listenFd: number): number {
      assertFd(listenFd, 'listenFd')
      return raw.baton_fd_accept(listenFd)
    },

    peerCred (fd: number): { pid: number; uid: number; gid: number } {
      assertFd(fd)
      return mapErrors(() => raw.baton_fd_peercred(fd))
    },

    sendFd (chanFd: number, fd: number, meta: Buffer, metaLen: number): number {
      assertFd(chanFd, 'chanFd')
      assertFd(fd)
      assertBuffer(meta, 'meta')
      // >= 1: a zero-length SEQPACKET message is indistinguishable from EOF at the receiver.
      assertInt(metaLen, 1, meta.length, 'metaLen')
      return raw.baton_fd_send(chanFd, fd, meta, metaLen)
    },

    sendMsg (chanFd: number, buf: Buffer, len: number): number {
      assertFd(chanFd, 'chanFd')
      assertBuffer(buf, 'buf')
      assertInt(len, 1, buf.length, 'len')
      return raw.baton_msg_send(chanFd, buf, len)
    },

    recvMsg (chanFd: number, buf: Buffer, out: Int32Array): number {
      assertFd(chanFd, 'chanFd')
      assertBuffer(buf, 'buf')
      assert(out instanceof Int32Array && out.length >= 2, 'out must be an Int32Array of length >= 2')
      return raw.baton_msg_recv(chanFd, buf, out)
    },

    createRelay (opts: RelayOptions, handler: RelayHandler): NativeRelay {
      return mapErrors(() => new NativeRelay(raw, opts, handler))
    },

    sockaddr (host: string, port: number): Buffer {
      assert(net.isIP(host) !== 0, `host must be a numeric IP address, got ${host}`)
      assertInt(port, 1, 65535, 'port')
      const addr: unknown = raw.baton_sockaddr_inet(host, port)
      assert(Buffer.isBuffer(addr), `baton_sockaddr_inet(${host}) failed`)
      return addr
    },

    sockaddrUnix (p: string): Buffer {
      assertPath(p)
      const addr: unknown = raw.baton_sockaddr_unix(p)
      assert(Buffer.isBuffer(addr), `unix socket path too long: ${p}`)
      return addr
    },
  }
}

/** Same values as the addon's, so code can still compare errnos when the addon is missing. */
const FALLBACK_CONSTANTS: NativeConstants = Object.freeze({
  READABLE: 1,
  WRITABLE: 2,
  DISCONNECT: 4,
  EAGAIN: os.constants.errno.EAGAIN,
  EINTR: os.constants.errno.EINTR,
  ECONNRESET: os.constants.errno.ECONNRESET,
  EPIPE: os.constants.errno.EPIPE,
  ENOENT: os.constants.errno.ENOENT,
  ECONNREFUSED: os.constants.errno.ECONNREFUSED,
  EMFILE: os.constants.errno.EMFILE,
})

function makeUnavailableApi (loadError: Error): NativeApi {
  const unavailable = (): never => {
    throw new BatonError('BATON_ERR_NATIVE_UNAVAILABLE', `native addon unavailable: ${loadError.message}`,
      { cause: loadError })
  }
  return {
    available: false,
    loadError,
    constants: FALLBACK_CONSTANTS,
    errnoName,
    listenTcp: unavailable,
    createAcceptor: unavailable,
    peek: unavailable,
    write: unavailable,
    setRcvLowat: unavailable,
    createPoller: unavailable,
    close: unavailable,
    dup: unavailable,
    seqpacketListen: unavailable,
    seqpacketConnect: unavailable,
    accept: unavailable,
    peerCred: unavailable,
    sendFd: unavailable,
    sendMsg: unavailable,
    recvMsg: unavailable,
    createRelay: unavailable,
    sockaddr: unavailable,
    sockaddrUnix: unavailable,
    repairDump: unavailable,
    repairClose: unavailable,
    repairOff: unavailable,
    repairRestore: unavailable,
    repairRestoreWire: unavailable,
    repairGo: unavailable,
    tcpInfo: unavailable,
    nftOpen: unavailable,
    netnsEnter: unavailable,
    netnsReturn: unavailable,
  }
}

function loadNative (): NativeApi {
  try {
    return makeApi(loadOrThrow())
  } catch (err) {
    return makeUnavailableApi(err instanceof Error ? err : new Error(String(err)))
  }
}

export const native: NativeApi = loadNative()
