// PROXY protocol encoders and decoder: exact bytes from haproxy doc/proxy-protocol.txt, round trips,
// incomplete input (null) and malformed input (BATON_ERR_BAD_REQUEST).
import { describe, expect, it } from 'vitest'

import { encodeProxyV1, encodeProxyV2, parseProxyHeader } from '../../../src/protocol/proxy'

const v4 = { clientAddress: '192.0.2.10', clientPort: 51234, localAddress: '198.51.100.1', localPort: 80 }
const v6 = { clientAddress: '2001:db8::1', clientPort: 4000, localAddress: '2001:db8:0:0:1:0:0:2', localPort: 443 }
const SIG = '0d0a0d0a000d0a515549540a'

describe('encodeProxyV1', () => {
  it('writes TCP4, TCP6 and UNKNOWN lines', () => {
    expect(encodeProxyV1(v4).toString()).toBe('PROXY TCP4 192.0.2.10 198.51.100.1 51234 80\r\n')
    expect(encodeProxyV1(v6).toString()).toBe('PROXY TCP6 2001:db8::1 2001:db8:0:0:1:0:0:2 4000 443\r\n')
    expect(encodeProxyV1({ ...v4, clientAddress: '' }).toString()).toBe('PROXY UNKNOWN\r\n')
  })

  it('unmaps v4-mapped addresses and maps a v4 peer of a v6 address', () => {
    expect(encodeProxyV1({ ...v4, clientAddress: '::ffff:192.0.2.10', localAddress: '::ffff:127.0.0.1' }).toString())
      .toBe('PROXY TCP4 192.0.2.10 127.0.0.1 51234 80\r\n')
    expect(encodeProxyV1({ ...v6, localAddress: '127.0.0.1' }).toString())
      .toBe('PROXY TCP6 2001:db8::1 ::ffff:127.0.0.1 4000 443\r\n')
  })
})

describe('encodeProxyV2', () => {
  it('writes the exact TCP4 bytes', () => {
    expect(encodeProxyV2(v4).toString('hex')).toBe(`${SIG}2111000c` + 'c000020a' + 'c6336401' + 'c822' + '0050')
  })

  it('writes the exact TCP6 bytes', () => {
    expect(encodeProxyV2(v6).toString('hex')).toBe(`${SIG}21210024` +
      '20010db8000000000000000000000001' + '20010db8000000000001000000000002' + '0fa0' + '01bb')
  })

  it('writes AF_UNSPEC with no addresses for non-IP endpoints', () => {
    expect(encodeProxyV2({ ...v4, localAddress: '/run/x.sock' }).toString('hex')).toBe(`${SIG}21000000`)
  })

  it('handles :: forms and a dotted IPv4 tail', () => {
    const h = parseProxyHeader(encodeProxyV2({ ...v6, clientAddress: '::', localAddress: '64:ff9b::192.0.2.33' }))
    expect(h).toMatchObject({ family: 'TCP6', sourceAddress: '::', destAddress: '64:ff9b::c000:221' })
  })
})

describe('parseProxyHeader', () => {
  it('round-trips both versions and both families', () => {
    for (const c of [v4, v6]) {
      for (const [version, enc] of [[1, encodeProxyV1], [2, encodeProxyV2]] as const) {
        const buf = Buffer.concat([enc(c), Buffer.from('GET / HTTP/1.1\r\n')])
        const h = parseProxyHeader(buf)
        expect(h).toMatchObject({
          version, command: 'PROXY', sourcePort: c.clientPort, destPort: c.localPort,
          sourceAddress: c.clientAddress, destAddress: version === 2 && c === v6 ? '2001:db8::1:0:0:2' : c.localAddress,
        })
        expect(buf.subarray(h?.length).toString()).toBe('GET / HTTP/1.1\r\n')
      }
    }
  })

  it('returns null for every incomplete prefix', () => {
    for (const full of [encodeProxyV1(v4), encodeProxyV2(v6)]) {
      for (let i = 0; i < full.length; i++) expect(parseProxyHeader(full.subarray(0, i))).toBeNull()
    }
  })

  it('reads v2 LOCAL and skips TLVs', () => {
    const local = Buffer.from(`${SIG}20000000`, 'hex')
    expect(parseProxyHeader(local)).toMatchObject({ version: 2, command: 'LOCAL', family: 'UNKNOWN', length: 16 })
    const withTlv = encodeProxyV2(v4)
    withTlv.writeUInt16BE(12 + 4, 14)
    const h = parseProxyHeader(Buffer.concat([withTlv, Buffer.from([0x04, 0x00, 0x01, 0x00])]))
    expect(h).toMatchObject({ family: 'TCP4', sourceAddress: '192.0.2.10', length: 32 })
  })

  it.each([
    ['not a header', 'GET / HTTP/1.1\r\n'],
    ['v1 bad family', 'PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n'],
    ['v1 bad address', 'PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n'],
    ['v1 family mismatch', 'PROXY TCP4 ::1 1.2.3.4 1 2\r\n'],
    ['v1 bad port', 'PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n'],
    ['v1 leading zero port', 'PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n'],
    ['v1 too long', `PROXY ${'x'.repeat(120)}`],
  ])('rejects %s', (_name, text) => {
    expect(() => parseProxyHeader(Buffer.from(text, 'latin1'))).toThrow(expect.objectContaining({ code: 'BATON_ERR_BAD_REQUEST' }))
  })

  it('rejects bad v2 version, command and short address blocks', () => {
    for (const hex of [`${SIG}1111000c`, `${SIG}2211000c`, `${SIG}21110004`]) {
      const buf = Buffer.concat([Buffer.from(hex, 'hex'), Buffer.alloc(12)])
      expect(() => parseProxyHeader(buf)).toThrow(expect.objectContaining({ code: 'BATON_ERR_BAD_REQUEST' }))
    }
  })
})
