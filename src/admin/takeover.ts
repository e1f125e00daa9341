// Zero-downtime restart: a new process takes the running one's listening sockets over (SCM_RIGHTS), as
// HAProxy's expose-fd listeners. The running Baton, when its config has admin.socket, listens on a SEQPACKET
// socket `<admin.socket>.takeover` (0600; peers with the same uid or root only). Protocol, one message each:
//   old -> new   one per listening socket: the fd, with JSON {i, n, host, port}
//   new -> old   "GO"  (sent once the new process is ready to the last object; it starts accepting as it
//                sends, and the old one stops as it reads it)
//   old -> new   "BYE" (the old one stopped accepting and released the admin socket); then EOF
// Both processes accept on the same sockets for the instant between GO sent and GO read, so no SYN waits
// for a gap; closing the old process's copies of the fds does not close the sockets, which the new
// process holds. Every wait has a limit (`baton start --takeover-timeout`, each process its own):
// the old one waits that long for GO and then keeps its sockets and goes on accepting; the new one waits
// that long for the sockets and then exits, or, after GO, for BYE and then warns and serves meanwhile
// (its admin API comes up once the old one lets the socket go).
import fs from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { BatonError } from '../errors'
import { flushLog, type Logger } from '../log'
import { native } from '../native/binding'
import type { PollerHandle } from '../native/types'

export interface HandedSocket { readonly fd: number, readonly host: string, readonly port: number }

export const takeoverPath = (adminSocket: string): string => `${adminSocket}.takeover`

const MSG_MAX = 512

const takeoverError = (msg: string, cause?: unknown): BatonError =>
  new BatonError('BATON_ERR_TAKEOVER', `takeover: ${msg}`, cause === undefined ? {} : { cause })

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
 * A new process that sends no GO within goTimeoutMs is given up on (this one never stopped accepting).
 */
export function offerTakeover (path: string, sockets: () => HandedSocket[], onGo: (finish: () => void) => void,
  goTimeoutMs: number, log: Logger): TakeoverOffer {
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
        log.warn({ code: 'BATON_ERR_TAKEOVER', pid, err: native.errnoName(rc) }, 'takeover abandoned: sending a listening socket failed; still accepting')
        flushLog(log) // rare, and what an operator watches for
        native.close(c)
        busy = false
        return
      }
    }
    log.info({ pid, sockets: list.length }, 'takeover: listening sockets sent; waiting for GO')
    flushLog(log)
    const buf = Buffer.alloc(MSG_MAX)
    const out = new Int32Array(2)
    // A new process that never answers must not block the next one: give up on it after a while.
    const timer = setTimeout(() => {
      chan.close()
      native.close(c)
      busy = false
      log.warn({ code: 'BATON_ERR_TAKEOVER', pid, goTimeoutMs }, 'takeover abandoned: no GO in time; still accepting')
      flushLog(log) // rare, and what an operator watches for
    }, goTimeoutMs)
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
      log.warn({ code: 'BATON_ERR_TAKEOVER', pid }, 'takeover abandoned: the new process left before GO; still accepting')
      flushLog(log) // rare, and what an operator watches for
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

/**
 * A full garbage collection, for the new process just before GO. A freshly started process's young
 * generation is full of start-up objects that survive, and the first scavenge copies them all: on the
 * 2-core bench machine it came 0.7 ms after GO nearly every time and took 4-10 ms, just as the old process
 * stopped accepting. Collected while the old one still accepts, it is out of the handover. V8 gives gc()
 * only with --expose-gc: the flag is set at run time and gc taken from a new context (as Jest's leak
 * detector does); the main context's globals do not change.
 */
export function collectGarbage (): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

export interface TakenSockets {
  readonly sockets: HandedSocket[]
  /**
   * Sends GO: from here on the sockets are this process's, and the running one stops accepting as it reads
   * it. Throws BATON_ERR_TAKEOVER (and closes the channel) when the running process is gone or gave up
   * waiting: it still accepts, and the fds are the caller's to close.
   */
  go (): void
  /**
   * After go(): resolves once the old process answered BYE or closed the channel (it released the admin
   * socket). Calls late() once if that takes more than lateMs, and goes on waiting.
   */
  released (lateMs: number, late: () => void): Promise<void>
  /** Closes the channel (before GO: the running process goes on accepting); the fds stay the caller's. */
  abandon (): void
}

/** Waits until fd is readable (or DISCONNECT): true, or false after timeoutMs. */
function readable (fd: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { p.close(); resolve(false) }, timeoutMs)
    const p = native.createPoller(fd, () => { clearTimeout(timer); p.close(); resolve(true) })
    p.start(native.constants.READABLE)
  })
}

/**
 * The new side: connects to `path` and receives every listening socket, waiting at most timeoutMs for them.
 * Throws BATON_ERR_TAKEOVER (nothing answers there, it closed the channel, or it took too long); nothing
 * is left open then.
 */
export async function takeSockets (path: string, timeoutMs: number): Promise<TakenSockets> {
  let chan: number
  try {
    chan = native.seqpacketConnect(path)
  } catch (err) {
    throw takeoverError(`no running Baton answers on ${path}: ${(err as Error).message}`, err)
  }
  const sockets: HandedSocket[] = []
  const buf = Buffer.alloc(MSG_MAX)
  const out = new Int32Array(2)
  const fail = (msg: string): never => {
    for (const s of sockets) native.close(s.fd)
    native.close(chan)
    throw takeoverError(msg)
  }
  const until = Date.now() + timeoutMs
  let n = -1
  while (n < 0 || sockets.length < n) {
    out[0] = -1
    const rc = native.recvMsg(chan, buf, out)
    if (rc === -native.constants.EAGAIN) {
      if (!await readable(chan, Math.max(1, until - Date.now()))) {
        fail(`the running Baton did not send its listening sockets within ${timeoutMs} ms (--takeover-timeout); it goes on as it was`)
      }
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
  let open = true
  let waiting: PollerHandle | undefined
  const abandon = (): void => {
    waiting?.close()
    waiting = undefined
    if (open) native.close(chan)
    open = false
  }
  return {
    sockets,
    abandon,
    go: () => {
      const go = Buffer.from('GO')
      const rc = native.sendMsg(chan, go, go.length)
      if (rc === 0) return
      abandon()
      throw takeoverError(`the running Baton is gone or gave up waiting (sending GO: ${native.errnoName(rc)}); it goes on as it was`)
    },
    released: (lateMs, late) => new Promise<void>((resolve) => {
      const timer = setTimeout(late, lateMs)
      timer.unref()
      const done = (): void => { clearTimeout(timer); abandon(); resolve() }
      const tryRecv = (): boolean => {
        out[0] = -1
        const r = native.recvMsg(chan, buf, out)
        if (out[0]! >= 0) native.close(out[0]!)
        return r !== -native.constants.EAGAIN // BYE, EOF or an error: the old process is done with it
      }
      if (tryRecv()) { done(); return }
      waiting = native.createPoller(chan, () => { if (tryRecv()) done() })
      waiting.start(native.constants.READABLE)
      waiting.unref()
    }),
  }
}
