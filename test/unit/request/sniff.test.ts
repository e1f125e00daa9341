import { HTTPParser } from 'http-parser-js'
import { describe, expect, it } from 'vitest'
import { MAX_HEADER_LINES, REJECT, sniffHead } from '../../../src/request/sniff'
import type { RequestHead, SniffResult } from '../../../src/request/types'

const MAX = 16 * 1024

function sniff (text: string, max = MAX): SniffResult {
  const buf = Buffer.from(text, 'latin1')
  return sniffHead(buf, buf.length, max)
}

function ok (text: string): RequestHead {
  const r = sniff(text)
  if (r.kind !== 'ok') throw new Error(`expected ok, got ${JSON.stringify(r)}`)
  return r.head
}

const H = 'Host: a.example\r\n'

describe('sniffHead accepts', () => {
  it('a plain GET and reports every field', () => {
    const text = 'GET /a/b?x=1 HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nAccept: */*\r\n\r\n'
    expect(ok(text)).toEqual({
      method: 'GET',
      target: '/a/b?x=1',
      path: '/a/b',
      query: '?x=1',
      host: 'www.example.com',
      versionMajor: 1,
      versionMinor: 1,
      headers: ['Host', 'WWW.Example.com:8080', 'Accept', '*/*'],
      headBytes: text.length,
    })
  })

  it('HTTP/1.0 without Host (host is empty)', () => {
    expect(ok('GET / HTTP/1.0\r\n\r\n')).toMatchObject({ host: '', versionMinor: 0 })
  })

  it('an IPv6 Host keeps its brackets and loses its port', () => {
    expect(ok('GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n').host).toBe('[::1]')
  })

  it('absolute-form whose authority equals Host (any case), routed on its path', () => {
    const h = ok('GET HTTP://A.example:81/x/%7Ey?q HTTP/1.1\r\nHost: a.EXAMPLE:81\r\n\r\n')
    expect(h).toMatchObject({ target: 'HTTP://A.example:81/x/%7Ey?q', path: '/x/~y', query: '?q', host: 'a.example' })
    expect(ok(`GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n`).path).toBe('/')
  })

  it('OPTIONS * (path "*")', () => {
    expect(ok(`OPTIONS * HTTP/1.1\r\n${H}\r\n`)).toMatchObject({ method: 'OPTIONS', path: '*', query: '' })
  })

  it('equal-value OWS (spaces) around Content-Length, and a chunked request', () => {
    const head = `POST / HTTP/1.1\r\n${H}Content-Length:  5  \r\n\r\n`
    expect(ok(`${head}hello`).headBytes).toBe(head.length)
    expect(ok(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n`).method).toBe('POST')
  })

  it('obs-text in a value as latin1, like Node, and leaves http-parser-js encoding as it was', () => {
    const before = HTTPParser.encoding
    expect(ok(`GET / HTTP/1.1\r\n${H}X-Name: caf\xe9\r\n\r\n`).headers[3]).toBe('café')
    expect(HTTPParser.encoding).toBe(before)
  })

  it('ignores what follows the head: body, pipelined requests, garbage', () => {
    const head = `GET / HTTP/1.1\r\n${H}\r\n`
    for (const tail of ['', 'GET /2 HTTP/1.1\r\n\r\n', '\x00\n\r junk', 'x'.repeat(MAX)]) {
      expect(ok(head + tail).headBytes).toBe(head.length)
    }
  })

  it('reuses its parser: a rejection does not leak into the next call', () => {
    expect(sniff('GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n').kind).toBe('reject')
    expect(ok(`GET /next HTTP/1.1\r\n${H}\r\n`).path).toBe('/next')
  })
})

describe('sniffHead rejects, one test per rule', () => {
  const cases: ReadonlyArray<readonly [string, string, SniffResult]> = [
    ['bare LF ends a line', `GET / HTTP/1.1\n${H}\r\n`, REJECT.bareLf],
    ['bare LF inside a value', `GET / HTTP/1.1\r\n${H}X: a\nTransfer-Encoding: chunked\r\n\r\n`, REJECT.bareLf],
    ['bare CR', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, REJECT.bareCr],
    ['NUL in a value', `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`, REJECT.ctl],
    ['other CTL in a value', `GET / HTTP/1.1\r\n${H}X: a\x01b\r\n\r\n`, REJECT.ctl],
    ['DEL in a value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, REJECT.ctl],
    ['CTL in the target', `GET /a\x0bb HTTP/1.1\r\n${H}\r\n`, REJECT.ctl],
    ['empty line before the request line', `\r\nGET / HTTP/1.1\r\n${H}\r\n`, REJECT.leadingEmptyLine],
    ['obs-fold with SP', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, REJECT.obsFold],
    ['obs-fold with HTAB', `GET / HTTP/1.1\r\n${H}X: a\r\n\tb\r\n\r\n`, REJECT.obsFold],
    ['whitespace right after the request line', `GET / HTTP/1.1\r\n ${H}\r\n`, REJECT.obsFold],
    ['space before the colon', `GET / HTTP/1.1\r\nHost : a\r\n\r\n`, REJECT.spaceBeforeColon],
    ['tab before the colon', `GET / HTTP/1.1\r\n${H}Content-Length\t: 0\r\n\r\n`, REJECT.spaceBeforeColon],
    ['invalid token char in a name', `GET / HTTP/1.1\r\n${H}X(y): a\r\n\r\n`, REJECT.headerName],
    ['obs-text in a name', `GET / HTTP/1.1\r\n${H}X\xe9: a\r\n\r\n`, REJECT.headerName],
    ['empty name', `GET / HTTP/1.1\r\n${H}: a\r\n\r\n`, REJECT.headerName],
    ['line without colon', `GET / HTTP/1.1\r\n${H}Foo\r\n\r\n`, REJECT.headerName],
    ['invalid token char in the method', `G(T / HTTP/1.1\r\n${H}\r\n`, REJECT.requestLine],
    ['lower-case method', `get / HTTP/1.1\r\n${H}\r\n`, REJECT.method],
    ['unknown method', `FOO / HTTP/1.1\r\n${H}\r\n`, REJECT.method],
    ['QUERY (llhttp knows it, http-parser-js does not)', `QUERY / HTTP/1.1\r\n${H}\r\n`, REJECT.method],
    ['CONNECT', `CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n`, REJECT.connect],
    ['two spaces in the request line', `GET  / HTTP/1.1\r\n${H}\r\n`, REJECT.requestLine],
    ['space inside the target', `GET /a b HTTP/1.1\r\n${H}\r\n`, REJECT.requestLine],
    ['HTAB as separator', `GET\t/ HTTP/1.1\r\n${H}\r\n`, REJECT.requestLine],
    ['obs-text in the target', `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, REJECT.requestLine],
    ['no version', `GET /\r\n${H}\r\n`, REJECT.requestLine],
    ['lower-case protocol', `GET / http/1.1\r\n${H}\r\n`, REJECT.requestLine],
    ['RTSP protocol', `OPTIONS / RTSP/1.0\r\n${H}\r\n`, REJECT.requestLine],
    ['trailing space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`, REJECT.requestLine],
    ['HTTP/2.0 (h2c prior knowledge preface)', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', REJECT.version],
    ['HTTP/0.9', `GET / HTTP/0.9\r\n${H}\r\n`, REJECT.version],
    ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, REJECT.version],
    ['missing Host on HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', REJECT.hostMissing],
    ['two Host headers (1.1)', `GET / HTTP/1.1\r\n${H}${H}\r\n`, REJECT.hostDuplicate],
    ['two Host headers (1.0)', `GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n`, REJECT.hostDuplicate],
    ['empty Host', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', REJECT.hostInvalid],
    ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', REJECT.hostInvalid],
    ['Host with a bad port', 'GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n', REJECT.hostInvalid],
    ['Host with obs-text', 'GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n', REJECT.hostInvalid],
    ['absolute-form authority differs from Host', `GET http://b.example/ HTTP/1.1\r\n${H}\r\n`, REJECT.hostMismatch],
    ['absolute-form port differs from Host', `GET http://a.example:81/ HTTP/1.1\r\n${H}\r\n`, REJECT.hostMismatch],
    ['absolute-form without Host (1.0)', 'GET http://a.example/ HTTP/1.0\r\n\r\n', REJECT.hostMissing],
    ['two Content-Length, different', `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 2\r\n\r\n`,
      REJECT.contentLengthDuplicate],
    ['two Content-Length, equal (llhttp: "Duplicate Content-Length")',
      `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nContent-Length: 1\r\n\r\n`, REJECT.contentLengthDuplicate],
    ['Content-Length list', `POST / HTTP/1.1\r\n${H}Content-Length: 1, 1\r\n\r\n`, REJECT.contentLength],
    ['Content-Length with a sign', `POST / HTTP/1.1\r\n${H}Content-Length: +1\r\n\r\n`, REJECT.contentLength],
    ['Content-Length with inner space', `POST / HTTP/1.1\r\n${H}Content-Length: 4 2\r\n\r\n`, REJECT.contentLength],
    ['empty Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, REJECT.contentLength],
    ['Content-Length overflow', `POST / HTTP/1.1\r\n${H}Content-Length: 1000000000000000000000\r\n\r\n`,
      REJECT.contentLength],
    ['HTAB around Content-Length (Node 20 refuses)', `POST / HTTP/1.1\r\n${H}Content-Length:\t1\r\n\r\n`,
      REJECT.framingTab],
    ['Content-Length and Transfer-Encoding',
      `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`, REJECT.contentLengthWithTe],
    ['Transfer-Encoding not ending in chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`,
      REJECT.teNotChunked],
    ['Transfer-Encoding chunked, then gzip', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`,
      REJECT.teNotChunked],
    ['Transfer-Encoding as a list ending in chunked (stricter than llhttp)',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, REJECT.teNotChunked],
    ['two Transfer-Encoding headers',
      `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`, REJECT.teNotChunked],
    ['Transfer-Encoding chunkedchunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunkedchunked\r\n\r\n`,
      REJECT.teNotChunked],
    ['Transfer-Encoding in HTTP/1.0', `POST / HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, REJECT.teHttp10],
    ['asterisk-form on GET', `GET * HTTP/1.1\r\n${H}\r\n`, REJECT.asterisk],
  ]
  for (const [name, text, want] of cases) {
    it(`${name} -> ${want.kind === 'reject' ? want.status : want.kind}`, () => {
      expect(sniff(text)).toBe(want)
    })
  }

  const targets: ReadonlyArray<readonly [string, string]> = [
    ['authority-form on GET', 'a.example:80'],
    ['relative target', 'a/b'],
    ['non-http scheme', 'ftp://a.example/'],
    ['userinfo in absolute-form', 'http://u:p@a.example/'],
    ['dot segment', '/a/../b'],
    ['encoded dot segment', '/a/%2E%2e/b'],
    ['encoded slash', '/a%2Fb'],
    ['encoded backslash', '/a%5cb'],
    ['raw backslash', '/a\\b'],
    ['encoded NUL', '/a%00b'],
    ['truncated escape', '/a%4'],
    ['non-hex escape', '/a%zz'],
    ['bad escape in the query', '/a?q=100%'],
    ['fragment', '/a#b'],
    ['raw quote in the path', '/"a"'],
  ]
  for (const [name, target] of targets) {
    it(`request-target: ${name} -> 400`, () => {
      const r = sniff(`GET ${target} HTTP/1.1\r\n${H}\r\n`)
      expect(r).toMatchObject({ kind: 'reject', status: 400 })
    })
  }

  it(`more than ${MAX_HEADER_LINES} header lines -> 431`, () => {
    expect(sniff(`GET / HTTP/1.1\r\n${H}${'X: y\r\n'.repeat(MAX_HEADER_LINES)}\r\n`)).toBe(REJECT.tooManyHeaders)
    expect(sniff(`GET / HTTP/1.1\r\n${H}${'X: y\r\n'.repeat(MAX_HEADER_LINES - 1)}\r\n`).kind).toBe('ok')
  })
})

describe('sniffHead on a head still arriving', () => {
  const heads = [
    `GET /a?b HTTP/1.1\r\n${H}Accept: */*\r\n\r\n`,
    `POST /p HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\n`,
    'GET / HTTP/1.0\r\n\r\n',
  ]
  for (const text of heads) {
    it(`stays incomplete until the last byte: ${JSON.stringify(text.slice(0, 20))}`, () => {
      const buf = Buffer.alloc(MAX, 0x41) // stale bytes past len must not count
      buf.write(text, 'latin1')
      for (let n = 1; n < text.length; n++) expect(sniffHead(buf, n, MAX)).toEqual({ kind: 'incomplete' })
      expect(sniffHead(buf, text.length, MAX).kind).toBe('ok')
    })
  }

  it('is refused early once a complete line is bad', () => {
    expect(sniff('GET / HTTP/5.6\r\nHo')).toBe(REJECT.version)
    expect(sniff('GET / HTTP/1.1\r\n Host: a')).toBe(REJECT.obsFold)
    expect(sniff('\x16\x03\x01\x02\x00')).toBe(REJECT.ctl) // a TLS ClientHello
    expect(sniff('GET / HTTP/1.1\nHo')).toBe(REJECT.bareLf)
  })
})

describe('sniffHead and maxHeaderBytes', () => {
  const max = 256
  /** A valid head of exactly n bytes. */
  function headOf (n: number): string {
    const base = `GET / HTTP/1.1\r\n${H}X: \r\n\r\n`
    return base.replace('X: ', `X: ${'v'.repeat(n - base.length)}`)
  }

  it('a head of exactly maxHeaderBytes is accepted; one byte more is 431', () => {
    expect(headOf(max).length).toBe(max)
    expect(sniff(headOf(max), max).kind).toBe('ok')
    expect(sniff(headOf(max + 1), max)).toBe(REJECT.tooLarge)
  })

  it('no end yet: incomplete below maxHeaderBytes, 431 at it', () => {
    const partial = headOf(max + 10)
    expect(sniff(partial.slice(0, max - 1), max)).toEqual({ kind: 'incomplete' })
    expect(sniff(partial.slice(0, max), max)).toBe(REJECT.tooLarge)
  })

  it('bytes after a head that fits do not count against the limit', () => {
    expect(sniff(headOf(max) + 'x'.repeat(max), max).kind).toBe('ok')
  })
})
