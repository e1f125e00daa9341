// Zero-downtime restart: a new process takes the running one's listening sockets over (SCM_RIGHTS), as
// HAProxy's expose-fd listeners. The running Baton, when its config has admin.socket, listens on a SEQPACKET
// socket `<admin.socket>.takeover` (0600; peers with the same uid or root only). Protocol, one message each:
//   old -> new   one per listening socket: the fd, with JSON {i, n, host, port}
//   new -> old   "GO"  (the new process accepts on every socket now)
//   old -> new   "BYE" (the old one stopped accepting and released the admin socket); then EOF
// Both processes accept on the same sockets between the fds and GO, so no SYN waits for a gap; closing the
// old process's copies of the fds does not close the sockets, which the new process holds.
import fs from 'node:fs'
import { BatonError } from '../errors'
import type { Logger } from '../log'
import { native } from '../native/binding'
import type { PollerHandle } from '../native/types'

export interface HandedSocket { readonly fd: number, readonly host: string, readonly port: number }

export const takeoverPath = (adminSocket: string): string => `${adminSocket}.takeover`

const MSG_MAX = 512
/** How long the running side waits for GO once it sent its sockets. */
const GO_TIMEOUT_MS = 60_000

/** SEQPACKET listener at path; a stale file (nobody listening) is replaced, a live one is an error. */
function listenPath (path: string): number {
  try {
    return native.seqpacketListen(path, 4, 0o600)
  } catch (err) {
    if ((err as { errnoCode?: string }).errnoCode !== 'EADDRINUSE' || path.startsWith('@')) throw err
    let live = false
    try { native.close(native.seqpacketConnect(path)); live = true } catch {}
    if (live) throw err
    fs.rmSync(path, { force: true })
    return native.seqpacketListen(path, 4, 0o600)
  }
}

export interface TakeoverOffer { close (): void }

/**
 * The running side. `sockets()` lists the listening sockets to hand over; `onGo(finish)` runs once a new
 * process accepts on all of them: stop accepting, release the admin socket, then call finish() (sends BYE).
 */
export function offerTakeover (path: string, sockets: () => HandedSocket[], onGo: (finish: () => void) => void,
  log: Logger): TakeoverOffer {
  const lfd = listenPath(path)
  let closed = false
  let busy = false
  const uid = process.getuid?.() ?? 0
  const poller: PollerHandle = native.createPoller(lfd, () => {
    for (;;) {
      const c = native.accept(lfd)
      if (c < 0) return
      if (busy || closed) { native.close(c); continue }
      let cred: { pid: number, uid: number }
      try { cred = native.peerCred(c) } catch { native.close(c); continue }
      if (cred.uid !== uid && cred.uid !== 0) {
        log.warn({ pid: cred.pid, uid: cred.uid }, 'takeover refused: the peer is neither this user nor root')
        native.close(c)
        continue
      }
      serve(c, cred.pid)
    }
  })
  poller.start(native.constants.READABLE)
  poller.unref()

  function serve (c: number, pid: number): void {
    busy = true
    const list = sockets()
    for (const [i, s] of list.entries()) {
      const meta = Buffer.from(JSON.stringify({ i, n: list.length, host: s.host, port: s.port }))
      const rc = native.sendFd(c, s.fd, meta, meta.length)
      if (rc !== 0) {
        log.warn({ pid, err: native.errnoName(rc) }, 'takeover abandoned: sending a listening socket failed')
        native.close(c)
        busy = false
        return
      }
    }
    log.info({ pid, sockets: list.length }, 'takeover: listening sockets sent; waiting for GO')
    const buf = Buffer.alloc(MSG_MAX)
    const out = new Int32Array(2)
    // A new process that never answers must not block the next one: give up on it after a while.
    const timer = setTimeout(() => {
      chan.close()
      native.close(c)
      busy = false
      log.warn({ pid }, 'takeover abandoned: no GO in time; still accepting')
    }, GO_TIMEOUT_MS)
    timer.unref()
    const chan = native.createPoller(c, () => {
      out[0] = -1
      const n = native.recvMsg(c, buf, out)
      if (out[0]! >= 0) native.close(out[0]!)
      if (n === -native.constants.EAGAIN) return
      clearTimeout(timer)
      chan.close()
      if (n > 0 && buf.toString('latin1', 0, n) === 'GO') {
        onGo(() => {
          const bye = Buffer.from('BYE')
          native.sendMsg(c, bye, bye.length)
          native.close(c)
        })
        return
      }
      native.close(c)
      busy = false
      log.warn({ pid }, 'takeover abandoned: the new process left before GO; still accepting')
    })
    chan.start(native.constants.READABLE)
  }

  return {
    close: () => {
      if (closed) return
      closed = true
      poller.close()
      native.close(lfd)
      if (!path.startsWith('@')) fs.rmSync(path, { force: true })
    },
  }
}

export interface TakenSockets {
  readonly sockets: HandedSocket[]
  /** Sends GO; resolves once the old process answered BYE or closed (it released the admin socket). */
  go (timeoutMs: number): Promise<void>
}

/** Waits until `chan` is readable (or DISCONNECT), then calls recv; rejects after timeoutMs. */
function readable (fd: number, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { p.close(); reject(new BatonError('BATON_ERR_NATIVE_CALL', `takeover: timed out waiting for ${what}`)) }, timeoutMs)
    const p = native.createPoller(fd, () => { clearTimeout(timer); p.close(); resolve() })
    p.start(native.constants.READABLE)
  })
}

/** The new side: connects to `path` and receives every listening socket. */
export async function takeSockets (path: string, timeoutMs: number): Promise<TakenSockets> {
  let chan: number
  try {
    chan = native.seqpacketConnect(path)
  } catch (err) {
    throw new BatonError('BATON_ERR_NATIVE_CALL',
      `takeover: no running Baton answers on ${path}: ${(err as Error).message}`, { cause: err })
  }
  const sockets: HandedSocket[] = []
  const buf = Buffer.alloc(MSG_MAX)
  const out = new Int32Array(2)
  const fail = (msg: string): never => {
    for (const s of sockets) native.close(s.fd)
    native.close(chan)
    throw new BatonError('BATON_ERR_NATIVE_CALL', `takeover: ${msg}`)
  }
  const until = Date.now() + timeoutMs
  let n = -1
  while (n < 0 || sockets.length < n) {
    out[0] = -1
    const rc = native.recvMsg(chan, buf, out)
    if (rc === -native.constants.EAGAIN) {
      try { await readable(chan, Math.max(1, until - Date.now()), 'the listening sockets') } catch (err) { fail((err as Error).message) }
      continue
    }
    if (rc <= 0) fail(rc === 0 ? 'the running Baton closed the channel (refused?)' : `recv: ${native.errnoName(rc)}`)
    const fd = out[0]!
    let meta: { i: number, n: number, host: string, port: number }
    try { meta = JSON.parse(buf.toString('utf8', 0, rc)) } catch { if (fd >= 0) native.close(fd); fail('bad message') }
    if (fd < 0) fail('a message came without its socket')
    n = meta!.n
    sockets.push({ fd, host: meta!.host, port: meta!.port })
  }
  return {
    sockets,
    go: async (goTimeoutMs) => {
      const go = Buffer.from('GO')
      const rc = native.sendMsg(chan, go, go.length)
      if (rc !== 0) { native.close(chan); throw new BatonError('BATON_ERR_NATIVE_CALL', `takeover: sending GO: ${native.errnoName(rc)}`) }
      const deadline = Date.now() + goTimeoutMs
      try {
        for (;;) {
          out[0] = -1
          const r = native.recvMsg(chan, buf, out)
          if (out[0]! >= 0) native.close(out[0]!)
          if (r !== -native.constants.EAGAIN) break // BYE, EOF or an error: the old process is done with it
          await readable(chan, Math.max(1, deadline - Date.now()), 'the old process to stop accepting')
        }
      } finally {
        native.close(chan)
      }
    },
  }
}
