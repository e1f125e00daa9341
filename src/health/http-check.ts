// The HTTP check of one server (keepalived's HTTP_GET, HAProxy's http-check): the configured method on the
// health path, judged by its status and, if asked, a substring of its body. The connection stays open between
// checks (Envoy's reuse_connection, its default): a fresh TCP connection per check costs a handshake and a
// teardown, which for a thousand servers checked every second is most of the checker's CPU (bench/health.ts).
// A connection that failed a check in any way, or that the server asked to close, is reset (RST: no
// TIME_WAIT left on either side) and the next check connects anew, so a back end that stopped accepting is
// found out as soon as something fails. A kept connection that closes before any byte of its answer came
// (the server's keep-alive timeout raced the request) is retried once on a fresh one. Responses are framed
// by http-parser-js; at most MAX_BODY_BYTES of a body are kept for the substring test.
import net from 'node:net'
import { HTTPParser } from 'http-parser-js'
import type { CheckAddress } from '../protocol/handoff'

export interface HttpCheck {
  readonly method: string
  readonly path: string
  /** Host header; default the server's address. */
  readonly host: string | undefined
  /** Accepted statuses; undefined = any 2xx or 3xx. */
  readonly expect: readonly number[] | undefined
  /** The body must contain this. */
  readonly body: string | undefined
}

const MAX_BODY_BYTES = 64 * 1024

/** 'host:port' or the socket path: a changed address (a handoff back end's new HELLO) means a new connection. */
function keyOf (addr: CheckAddress): string {
  return addr.path ?? `${addr.host!.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`
}

function requestBytes (addr: CheckAddress, http: HttpCheck): Buffer {
  const host = http.host ?? (addr.path !== undefined ? 'localhost' : keyOf(addr))
  return Buffer.from(`${http.method} ${http.path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: baton-check\r\nAccept: */*\r\n\r\n`, 'latin1')
}

/** One server's check connection; one check at a time (the checker's timer chain guarantees it). */
export class HttpCheckConnection {
  readonly #parser = new HTTPParser(HTTPParser.RESPONSE)
  #socket: net.Socket | undefined
  #key = ''
  #unix = false
  #request: Buffer | undefined
  #requestFor: HttpCheck | undefined
  #http: HttpCheck | undefined
  /** The check in progress: resolves with '' (passed) or why it failed. */
  #done: ((why: string) => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #mayRetry = false
  #answered = false
  #status = 0
  #keepAlive = false
  #body: Buffer[] = []
  #bodyBytes = 0
  #errCode: string | undefined

  constructor () {
    const p = this.#parser
    p[HTTPParser.kOnHeadersComplete] = ((info: { statusCode: number; shouldKeepAlive: boolean } | number, ...rest: unknown[]) => {
      // Positional arguments only if something in the process read HTTPParser.kOnExecute (http-parser-js compat).
      this.#status = typeof info === 'object' ? info.statusCode : rest[4] as number
      this.#keepAlive = typeof info === 'object' ? info.shouldKeepAlive : rest[7] as boolean
      return this.#http?.method === 'HEAD' ? 1 : 0
    }) as never
    p[HTTPParser.kOnBody] = (chunk: Buffer, offset: number, length: number) => {
      if (this.#http?.body === undefined || this.#bodyBytes >= MAX_BODY_BYTES) return
      this.#body.push(chunk.subarray(offset, offset + length))
      this.#bodyBytes += length
    }
    p[HTTPParser.kOnMessageComplete] = () => { this.#judge() }
  }

  /** One check: '' when it passed, else why it failed. Never rejects. */
  check (addr: CheckAddress, http: HttpCheck, timeoutMs: number): Promise<string> {
    return new Promise((resolve) => {
      this.#done = resolve
      this.#timer = setTimeout(() => { this.#finish(`no answer within ${timeoutMs} ms`, false) }, timeoutMs)
      this.#http = http
      this.#send(addr, true)
    })
  }

  /** Closes the connection; a check in progress fails. */
  close (): void {
    this.#finish('check stopped', false)
    this.#reset()
  }

  #send (addr: CheckAddress, mayRetry: boolean): void {
    const key = keyOf(addr)
    if (this.#socket !== undefined && key !== this.#key) this.#reset()
    this.#mayRetry = mayRetry && this.#socket !== undefined
    if (this.#socket === undefined) this.#connect(addr, key)
    if (this.#requestFor !== this.#http || this.#request === undefined) {
      this.#request = requestBytes(addr, this.#http!)
      this.#requestFor = this.#http
    }
    this.#parser.initialize(HTTPParser.RESPONSE)
    this.#answered = false
    this.#status = 0
    this.#body = []
    this.#bodyBytes = 0
    this.#errCode = undefined
    this.#socket!.write(this.#request)
  }

  #connect (addr: CheckAddress, key: string): void {
    const s = addr.path !== undefined ? net.connect({ path: addr.path }) : net.connect({ host: addr.host!, port: addr.port! })
    this.#socket = s
    this.#key = key
    this.#unix = addr.path !== undefined
    this.#request = undefined
    s.setNoDelay(true)
    s.on('data', (chunk: Buffer) => { if (s === this.#socket) this.#onData(chunk) })
    s.on('end', () => { if (s === this.#socket) this.#onEnd() })
    s.on('error', (err: NodeJS.ErrnoException) => { if (s === this.#socket) this.#errCode = err.code ?? err.message })
    s.on('close', () => { if (s === this.#socket) this.#onClose(addr) })
  }

  #onData (chunk: Buffer): void {
    if (this.#done === undefined) { this.#reset(); return } // nothing was asked: not a server to keep talking to
    this.#answered = true
    const ret = this.#parser.execute(chunk)
    if (ret instanceof Error) this.#finish(`bad HTTP response: ${ret.message}`, false)
  }

  /** The server closed its side: a response framed by the close ends here. */
  #onEnd (): void {
    if (this.#done === undefined || !this.#answered) return
    const ret = this.#parser.finish()
    if (ret instanceof Error) this.#finish('connection closed in the middle of the response', false)
  }

  #onClose (addr: CheckAddress): void {
    this.#socket = undefined
    if (this.#done === undefined) return
    if (!this.#answered && this.#mayRetry) { this.#send(addr, false); return } // a kept connection that just timed out
    const code = this.#errCode
    this.#finish(this.#answered ? 'connection closed in the middle of the response'
      : code !== undefined ? `connect failed: ${code}` : 'connection closed without an answer', false)
  }

  #judge (): void {
    const http = this.#http!
    const s = this.#status
    const ok = http.expect === undefined ? s >= 200 && s < 400 : http.expect.includes(s)
    if (!ok) { this.#finish(`status ${s}, expected ${http.expect?.join('/') ?? '2xx or 3xx'}`, false); return }
    if (http.body !== undefined && !Buffer.concat(this.#body).toString('utf8').includes(http.body)) {
      this.#finish(`body does not contain ${JSON.stringify(http.body)}`, false)
      return
    }
    this.#finish('', this.#keepAlive)
  }

  #finish (why: string, keep: boolean): void {
    const done = this.#done
    if (done === undefined) return
    this.#done = undefined
    clearTimeout(this.#timer)
    this.#body = []
    if (!keep) this.#reset()
    done(why)
  }

  /** RST once connected (no TIME_WAIT); a connect still in progress, or a Unix socket, is just closed. */
  #reset (): void {
    const s = this.#socket
    if (s === undefined) return
    this.#socket = undefined
    if (s.connecting || s.destroyed || this.#unix) s.destroy()
    else s.resetAndDestroy()
  }
}
