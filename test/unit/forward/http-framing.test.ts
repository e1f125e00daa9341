// The relays' HTTP framer (src/forward/http-framing.ts): message boundaries are the same however the bytes
// are split, requests queue their kinds for the responses, and what it cannot follow is an error.
import { describe, expect, it } from 'vitest'

import { FramingError, MessageFramer, REQ_CONNECT, REQ_HEAD, REQ_UPGRADE } from '../../../src/forward/http-framing'

/** Offsets where messages end, feeding `text` in pieces of `step` bytes. */
function boundaries (framer: MessageFramer, text: string, step: number): number[] {
  const buf = Buffer.from(text, 'latin1')
  const out: number[] = []
  for (let base = 0; base < buf.length; base += step) {
    const end = Math.min(buf.length, base + step)
    let off = base
    while (off < end) {
      off = framer.feed(buf, off, end)
      if (framer.ended) out.push(off)
    }
  }
  return out
}

const requests = [
  'GET /a HTTP/1.1\r\nHost: t\r\n\r\n',
  'POST /b HTTP/1.1\r\nHost: t\r\ncontent-LENGTH: 5\r\n\r\nhello',
  'POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x="y"\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: 1\r\nU: 2\r\n\r\n',
  'HEAD /d HTTP/1.1\r\nHost: t\r\n\r\n',
  'GET /e HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n',
]

describe('MessageFramer', () => {
  it.each([1, 2, 7, 1000])('finds request boundaries fed %i bytes at a time, and queues their kinds', (step) => {
    const pending: number[] = []
    const f = new MessageFramer(true, pending)
    let at = 0
    const want = requests.map((r) => (at += r.length))
    expect(boundaries(f, requests.join(''), step)).toEqual(want)
    expect(pending).toEqual([0, 0, 0, REQ_HEAD, REQ_UPGRADE])
    expect(f.atBoundary).toBe(true)
  })

  it.each([1, 3, 1000])('frames responses by their request (HEAD), status (1xx, 204, 304) and headers, %i bytes at a time', (step) => {
    const pending = [REQ_HEAD, 0, 0, 0, 0, 0]
    const f = new MessageFramer(false, pending)
    const responses = [
      'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', // HEAD: no body
      'HTTP/1.1 100 Continue\r\n\r\n', // informational: not final
      'HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n',
      'HTTP/1.1 304 Not Modified\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\n\r\nuntil close',
    ]
    let at = 0
    const want = responses.slice(0, 6).map((r) => (at += r.length))
    expect(boundaries(f, responses.join(''), step)).toEqual(want)
    expect(f.untilClose).toBe(true)
    expect(pending).toEqual([])
  })

  it('a 101, and a 2xx to CONNECT, end HTTP on the connection', () => {
    const f = new MessageFramer(false, [REQ_UPGRADE])
    expect(boundaries(f, 'HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\nraw bytes', 1000)).toEqual([38])
    expect(f.tunnel).toBe(true)
    const g = new MessageFramer(false, [REQ_CONNECT])
    boundaries(g, 'HTTP/1.1 200 OK\r\n\r\nraw', 1000)
    expect(g.tunnel).toBe(true)
  })

  it.each([
    ['a chunk size that is not hex', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['chunk data longer than its size', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n'],
    ['a bare LF after a chunk size', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n'],
    ['a chunk size over 15 hex digits', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n'],
    ['a bad Content-Length', 'POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n'],
    ['conflicting Content-Lengths', 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'],
    ['a bare LF in a head', 'GET / HTTP/1.1\nHost: t\r\n\r\n'],
  ])('%s is an error', (_name, text) => {
    const f = new MessageFramer(true, [])
    expect(() => boundaries(f, text, 1000)).toThrow(FramingError)
  })

  it('a response without a status is an error', () => {
    expect(() => boundaries(new MessageFramer(false, []), 'HTTP/1.1 2x0 OK\r\n\r\n', 1000)).toThrow(FramingError)
  })
})
