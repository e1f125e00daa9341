// headerValueAsNode against the running Node: the same raw request, with every field repeated, goes to a
// plain http.createServer, and req.headers[name] must equal our value for every first-wins name, the
// joined ones (cookie, set-cookie, the rest) and a few odd cases; once on Node's own rawHeaders, once on
// the header list sniffHead (http-parser-js) hands to the router.
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FIRST_WINS, headerValueAsNode } from '../../src/request/headers'
import { sniffHead } from '../../src/request/sniff'

interface Seen { headers: Record<string, unknown>; rawHeaders: string[] }

/** Not repeatable in a valid request (llhttp refuses two Content-Length, sniff two Host): sent once. */
const ONCE = new Set(['content-length', 'host'])
/**
 * Written out, not taken from FIRST_WINS, so that a name missing from the table fails too: the well-known
 * request and response fields, some names that only differ in length or case, prototype names.
 */
const CANDIDATES = ['age', 'authorization', 'content-type', 'etag', 'expires', 'from', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer',
  'retry-after', 'server', 'user-agent', 'cookie', 'accept', 'accept-charset', 'accept-encoding',
  'accept-language', 'cache-control', 'connection-x', 'content-encoding', 'content-language', 'content-range',
  'date', 'dnt', 'expect-ct', 'forwarded', 'if-match', 'if-none-match', 'if-range', 'origin', 'pragma', 'range',
  'referrer', 'sec-fetch-mode', 'te-x', 'upgrade-insecure-requests', 'vary', 'via', 'warning', 'www-authenticate',
  'x-canary', 'x-forwarded-for', 'x-request-id', 'agent', 'servers', 'user-agents', 'constructor',
  'hasownproperty', 'tostring']
const NAMES = [...new Set([...[...FIRST_WINS].filter((n) => !ONCE.has(n)), ...CANDIDATES])]
const REPEATABLE_FIRST_WINS = NAMES.filter((n) => FIRST_WINS.has(n))

/** The second field of each name in another case; odd values: empty, inner and trailing whitespace. */
function requestWithRepeats (): string {
  const lines = ['GET /x HTTP/1.1', 'Host: h.example', 'Content-Length: 0']
  for (const n of NAMES) lines.push(`${n}: first-${n}`)
  for (const n of NAMES) lines.push(`${n.toUpperCase()}: second-${n}  `)
  lines.push('X-Empty:', 'x-empty: b', 'X-EMPTY:', 'X-Ws:   a  b\t ')
  lines.push('Cookie:', 'Set-Cookie: s=1', 'set-cookie: s=2', '__proto__: p')
  return lines.join('\r\n') + '\r\n\r\n'
}

function send (port: number, raw: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(raw))
    s.on('data', () => s.destroy())
    s.on('close', () => resolve())
    s.on('error', reject)
  })
}

describe('headerValueAsNode agrees with Node http', () => {
  let server: http.Server
  let seen: Seen | undefined
  const raw = requestWithRepeats()

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen = { headers: { ...req.headers, __proto__field: req.headers.__proto__ }, rawHeaders: req.rawHeaders }
      res.end('ok')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    await send((server.address() as net.AddressInfo).port, raw)
  })
  afterAll(async () => { await new Promise((resolve) => server.close(resolve)) })

  /** What the application reads; for set-cookie (an array) its first element, as documented. */
  const nodeValue = (name: string): unknown => {
    const v = seen!.headers[name]
    return Array.isArray(v) ? v[0] : v
  }

  it.each([...NAMES, 'host', 'content-length', 'x-empty', 'x-ws', 'set-cookie', 'x-absent'])('%s', (name) => {
    expect(seen).toBeDefined()
    expect(headerValueAsNode(seen!.rawHeaders, name)).toBe(nodeValue(name))
    const buf = Buffer.from(raw, 'latin1')
    const r = sniffHead(buf, buf.length, 65536)
    expect(r.kind).toBe('ok')
    if (r.kind === 'ok') expect(headerValueAsNode(r.head.headers, name)).toBe(nodeValue(name))
  })

  it('gives no string for __proto__, as Node does not', () => {
    expect(typeof seen!.headers.__proto__field).not.toBe('string')
    expect(headerValueAsNode(seen!.rawHeaders, '__proto__')).toBeUndefined()
  })

  it('checks every first-wins name both ways: first kept, and the joined form for the others', () => {
    for (const n of REPEATABLE_FIRST_WINS) expect(seen!.headers[n]).toBe(`first-${n}`)
    expect(seen!.headers['x-canary']).toBe('first-x-canary, second-x-canary')
    expect(seen!.headers.cookie).toBe('first-cookie; second-cookie; ')
    expect(seen!.headers['set-cookie']).toEqual(['s=1', 's=2'])
  })
})
