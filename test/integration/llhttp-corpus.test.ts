// Agreement between sniffHead and the back end's parser: every llhttp corpus request (and a few extra heads)
// goes to sniffHead and, over a real socket, to a real Node http.Server. Rule: sniff rejects, or Node parses
// the first request with the same method, target and Host. Sniff may refuse what Node takes, never the reverse.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sniffHead } from '../../src/request/sniff'
import { readCorpus } from '../helpers/llhttp-corpus'

interface NodeView { readonly method: string; readonly url: string; readonly host: string }
interface Outcome { first: NodeView | null; clientError: string | null; response: string }

const MAX_HEADER_BYTES = 16 * 1024
const PARALLEL = 8
const CASE_TIMEOUT_MS = 2000

// Heads the corpus does not cover, checked the same way.
const EXTRA: ReadonlyArray<readonly [string, string]> = [
  ['curl GET', 'GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n'],
  ['query with browser-raw chars', 'GET /a?q={x}|^`"<>[]\\ HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['path with raw pipe', 'GET /a|b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['fragment', 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['two Host', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
  ['Host with trailing tab', 'GET / HTTP/1.1\r\nHost: a.com\t \r\n\r\n'],
  ['Host obs-text', 'GET / HTTP/1.1\r\nHost: a\xe9.com\r\n\r\n'],
  ['obs-text value', 'GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xe9\r\n\r\n'],
  ['absolute-form', 'GET http://A.com:81/x?y HTTP/1.1\r\nHost: a.COM:81\r\n\r\n'],
  ['absolute-form mismatch', 'GET http://a.com/ HTTP/1.1\r\nHost: b.com\r\n\r\n'],
  ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['GET *', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n'],
  ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n'],
  ['HTTP/0.9', 'GET / HTTP/0.9\r\nHost: a\r\n\r\n'],
  ['HTTP/1.0 no Host', 'GET /x HTTP/1.0\r\n\r\n'],
  ['HTTP/1.0 TE', 'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['double space', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['leading CRLF', '\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['IPv6 Host', 'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n'],
  ['dot segment', 'GET /a/%2e%2E/b HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['lower-case method', 'get / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['QUERY method', 'QUERY / HTTP/1.1\r\nHost: a\r\n\r\n'],
  ['duplicate equal Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx'],
  ['TE with tabs', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\t\r\n\r\n0\r\n\r\n'],
  ['Host with tabs', 'GET / HTTP/1.1\r\nHost:\ta\t\r\n\r\n'],
  ['CL with spaces', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  1  \r\n\r\nx'],
  ['TE gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'],
]

/**
 * Most corpus requests are HTTP/1.1 without Host, which both sides refuse before any other rule. A copy with
 * `Host: corpus.test` after the request line lets the rest of each case reach both parsers.
 */
function withHost (bytes: Buffer): Buffer | null {
  const eol = bytes.indexOf('\r\n')
  if (eol < 0 || /\r\nhost[ \t]*:/i.test(bytes.toString('latin1'))) return null
  return Buffer.concat([bytes.subarray(0, eol + 2), Buffer.from('Host: corpus.test\r\n'), bytes.subarray(eol + 2)])
}

const corpus = readCorpus()
const cases = [
  ...corpus.map((c) => ({ name: `${c.file}:${c.line} ${c.title}`, bytes: c.bytes })),
  ...corpus.flatMap((c) => {
    const b = withHost(c.bytes)
    return b === null ? [] : [{ name: `${c.file}:${c.line} ${c.title} (+Host)`, bytes: b }]
  }),
  ...EXTRA.map(([name, s]) => ({ name: `extra: ${name}`, bytes: Buffer.from(s, 'latin1') })),
]

/** Host as sniff reports it: lower-case, port removed, brackets kept. Written apart from path.ts on purpose. */
function hostOf (h: string | undefined): string {
  if (h === undefined) return ''
  const v = h.toLowerCase()
  if (v.startsWith('[')) return v.slice(0, v.indexOf(']') + 1)
  const colon = v.lastIndexOf(':')
  return colon < 0 ? v : v.slice(0, colon)
}

describe('sniffHead agrees with Node http.Server on the llhttp corpus', () => {
  let server: Server
  let port = 0
  const outcomes = new Map<number, Outcome>() // by client port

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const o = outcomes.get(req.socket.remotePort ?? -1)
      if (o !== undefined && o.first === null && o.clientError === null) {
        o.first = { method: req.method ?? '', url: req.url ?? '', host: hostOf(req.headers.host) }
      }
      res.setHeader('connection', 'close')
      res.end('ok')
    })
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const o = outcomes.get(socket.remotePort ?? -1)
      if (o !== undefined && o.first === null && o.clientError === null) o.clientError = err.code ?? err.message
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      else socket.destroy()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const addr = server.address()
    port = typeof addr === 'object' && addr !== null ? addr.port : 0
  })

  afterAll(async () => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  })

  async function sendToNode (bytes: Buffer): Promise<Outcome> {
    const sock = connect(port, '127.0.0.1')
    await once(sock, 'connect')
    const o: Outcome = { first: null, clientError: null, response: '' }
    outcomes.set(sock.localPort ?? -1, o)
    sock.setEncoding('latin1')
    sock.on('data', (d: string) => { o.response += d })
    sock.on('error', () => { /* reset by the server after a 400: the outcome is already recorded */ })
    const closed = once(sock, 'close')
    const timer = setTimeout(() => sock.destroy(), CASE_TIMEOUT_MS)
    sock.end(bytes)
    await closed
    clearTimeout(timer)
    outcomes.delete(sock.localPort ?? -1)
    return o
  }

  it(`every case: sniff rejects or Node reads the same (method, target, Host) (${cases.length} cases)`, async () => {
    const tally = { ok: 0, reject: 0, incomplete: 0, nodeAccepted: 0 }
    const problems: string[] = []
    const stricter: string[] = [] // Node parsed it, sniff refused: allowed, listed with BATON_CORPUS_VERBOSE=1
    let next = 0
    async function worker (): Promise<void> {
      for (let i = next++; i < cases.length; i = next++) {
        const c = cases[i]!
        const r = sniffHead(c.bytes, c.bytes.length, MAX_HEADER_BYTES)
        const node = await sendToNode(c.bytes)
        tally[r.kind]++
        if (node.first !== null) tally.nodeAccepted++
        if (r.kind !== 'ok') {
          if (node.first !== null) stricter.push(`${c.name}: ${r.kind === 'reject' ? `${r.status} ${r.reason}` : r.kind}`)
          continue
        }
        const want = { method: r.head.method, url: r.head.target, host: r.head.host }
        if (node.first === null) {
          problems.push(`${c.name}: sniff accepted, Node rejected (${node.clientError ?? node.response.slice(0, 40)})`)
        } else if (JSON.stringify(node.first) !== JSON.stringify(want)) {
          problems.push(`${c.name}: sniff ${JSON.stringify(want)} vs Node ${JSON.stringify(node.first)}`)
        }
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker))
    console.log(`llhttp corpus agreement: ${cases.length} cases; sniff ok ${tally.ok}, reject ${tally.reject}, ` +
      `incomplete ${tally.incomplete}; Node parsed a first request in ${tally.nodeAccepted}, ` +
      `of which sniff refused ${stricter.length}`)
    if (process.env.BATON_CORPUS_VERBOSE === '1') console.log(stricter.sort().join('\n'))
    expect(problems).toEqual([])
  })
})
