// The only file that loads Baton's native addons. It wraps each call of the core addon ("baton") in
// argument checks (node:assert: a bad argument is a bug, not a response) and maps thrown native errors
// to BatonNativeError. Hot-path calls return -errno numbers and never throw for socket conditions.
// The C side uses the same names (baton_fd_send, baton_poller_start, ...): one grep covers both.
// If the addon cannot load, or BATON_NO_NATIVE=1, `native.available` is false and every call throws
// BATON_ERR_NATIVE_UNAVAILABLE; Baton then relays in JavaScript.
import assert from 'node:assert'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { BatonError, BatonNativeError } from '../errors'
import type { AcceptCallback, AcceptorHandle, NativeApi, NativeConstants, PollerHandle } from './types'

type NativeModuleName = 'baton' | 'baton_relay'

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

function loadOrThrow (name: NativeModuleName): any {
  if (process.env.BATON_NO_NATIVE === '1') throw new Error('disabled by BATON_NO_NATIVE=1')
  const dir = path.join(findPackageRoot(__dirname), 'native')
  if (name === 'baton') {
    // node-gyp-build takes the first .node in build/Release (baton.node sorts before baton_relay.node),
    // then prebuilds/. Check that it is really the core addon.
    const mod = require('node-gyp-build')(dir)
    if (typeof mod?.baton_fd_send !== 'function') throw new Error(`${dir}: the loaded addon is not "baton"`)
    return mod
  }
  for (const build of ['Release', 'Debug']) {
    const file = path.join(dir, 'build', build, `${name}.node`)
    if (fs.existsSync(file)) return require(file)
  }
  throw new Error(`${name}.node not found under ${path.join(dir, 'build')}`)
}

/** The raw addon module (for src/native/relay.ts), or undefined if it cannot be loaded. */
export function loadNativeModule (name: NativeModuleName): any {
  try {
    return loadOrThrow(name)
  } catch {
    return undefined
  }
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

function assertFd (fd: unknown, what = 'fd'): asserts fd is number {
  assert(Number.isInteger(fd) && (fd as number) >= 0, `${what} must be an int >= 0, got ${String(fd)}`)
}

function assertInt (n: unknown, min: number, max: number, what: string): asserts n is number {
  assert(Number.isInteger(n) && (n as number) >= min && (n as number) <= max,
    `${what} must be an int in [${min}, ${max}], got ${String(n)}`)
}

function assertBuffer (buf: unknown, what: string): asserts buf is Buffer {
  assert(Buffer.isBuffer(buf) && buf.length > 0, `${what} must be a non-empty Buffer`)
}

function assertPath (p: unknown): asserts p is string {
  assert(typeof p === 'string' && p.length > 0 && !p.includes('\0'), 'path must be a non-empty string without NUL')
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
    if (rc < 0) throw new BatonNativeError('uv_poll_start', -rc, this.#raw.baton_errno_name(-rc))
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
    available: true,
    loadError: undefined,
    constants: raw.constants as NativeConstants,

    errnoName (errno: number): string {
      assert(Number.isInteger(errno), 'errno must be an int')
      return raw.baton_errno_name(errno)
    },

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
      if (rc < 0) throw new BatonNativeError('close', -rc, raw.baton_errno_name(-rc))
    },

    seqpacketListen (p: string, backlog: number): number {
      assertPath(p)
      assertInt(backlog, 0, 65535, 'backlog')
      return mapErrors(() => raw.baton_seqpacket_listen(p, backlog))
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
  const errnoNames = new Map(Object.entries(os.constants.errno).map(([k, v]) => [v, k]))
  return {
    available: false,
    loadError,
    constants: FALLBACK_CONSTANTS,
    errnoName: (errno: number) => errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`,
    listenTcp: unavailable,
    createAcceptor: unavailable,
    peek: unavailable,
    setRcvLowat: unavailable,
    createPoller: unavailable,
    close: unavailable,
    seqpacketListen: unavailable,
    seqpacketConnect: unavailable,
    accept: unavailable,
    peerCred: unavailable,
    sendFd: unavailable,
    sendMsg: unavailable,
    recvMsg: unavailable,
  }
}

function loadNative (): NativeApi {
  try {
    return makeApi(loadOrThrow('baton'))
  } catch (err) {
    return makeUnavailableApi(err instanceof Error ? err : new Error(String(err)))
  }
}

export const native: NativeApi = loadNative()
