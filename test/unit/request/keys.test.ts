import { describe, expect, it } from 'vitest'
import type { RequestHead } from '../../../src/request/types'
import { ConfigError } from '../../../src/errors'
import { parseKeySpec } from '../../../src/config/key'
import { compilePattern, type Pattern } from '../../../src/config/pattern'
import { maskAddress } from '../../../src/net/ip'
import { extractKey } from '../../../src/request/keys'

function head (headers: string[], init: Partial<RequestHead> = {}): RequestHead {
  return { method: 'GET', target: '/a/b?x=1', path: '/a/b', query: '?x=1', host: 'example.com', versionMajor: 1, versionMinor: 1, headers, headBytes: 100, ...init }
}

describe('parseKeySpec', () => {
  it('parses every kind', () => {
    expect(parseKeySpec(undefined, 'k')).toEqual({ kind: 'path' })
    expect(parseKeySpec('path', 'k')).toEqual({ kind: 'path' })
    expect(parseKeySpec('host', 'k')).toEqual({ kind: 'host' })
    expect(parseKeySpec('host+path', 'k')).toEqual({ kind: 'host+path' })
    expect(parseKeySpec('header:X-User', 'k')).toEqual({ kind: 'header', name: 'x-user' })
    expect(parseKeySpec('cookie:sid', 'k')).toEqual({ kind: 'cookie', name: 'sid' })
    expect(parseKeySpec('client-ip', 'k')).toEqual({ kind: 'client-ip' })
    expect(parseKeySpec('client-ip/24', 'k')).toEqual({ kind: 'client-ip', prefixLength: 24 })
    expect(parseKeySpec('capture:2', 'k')).toEqual({ kind: 'capture', group: 2 })
    expect(parseKeySpec('capture:tenant', 'k')).toEqual({ kind: 'capture', group: 'tenant' })
  })
  it.each([['url'], ['header:'], ['cookie:a b'], ['client-ip/33'], ['capture:'], ['capture:1-x'], ['header:Set-Cookie'], [42]])('rejects %j at its path', (raw) => {
    try {
      parseKeySpec(raw, 'services.1.key')
      throw new Error('accepted')
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      expect((err as ConfigError).issues[0]!.path).toBe('services.1.key')
      expect((err as ConfigError).issues[0]!.message).toContain(String(raw).split(':')[0])
    }
  })
})

describe('extractKey', () => {
  const h = head(['Host', 'example.com', 'X-User', 'alice', 'Cookie', 'a=1; sid = "xyz" ;b=2', 'cookie', 'late=3'])
  it('path, host, host+path', () => {
    expect(extractKey({ kind: 'path' }, h, '1.2.3.4', null)).toBe('/a/b')
    expect(extractKey({ kind: 'host' }, h, '1.2.3.4', null)).toBe('example.com')
    expect(extractKey({ kind: 'host' }, head([], { host: '' }), '1.2.3.4', null)).toBeUndefined()
    expect(extractKey({ kind: 'host+path' }, h, '1.2.3.4', null)).toBe('example.com/a/b')
  })
  it('headers, case-insensitively; missing -> undefined', () => {
    expect(extractKey({ kind: 'header', name: 'x-user' }, h, '', null)).toBe('alice')
    expect(extractKey({ kind: 'header', name: 'x-none' }, h, '', null)).toBeUndefined()
  })
  it('a repeated header is keyed as Node gives it: joined, or the first field for first-wins names', () => {
    const r = head(['X-User', 'alice', 'x-user', 'bob', 'User-Agent', 'curl', 'user-agent', 'evil', 'X-E', '', 'x-e', ''])
    expect(extractKey({ kind: 'header', name: 'x-user' }, r, '', null)).toBe('alice, bob')
    expect(extractKey({ kind: 'header', name: 'user-agent' }, r, '', null)).toBe('curl')
    expect(extractKey({ kind: 'header', name: 'x-e' }, r, '', null)).toBe(', ')
  })
  it('cookies with spaces, quotes and several Cookie fields (joined with "; " as Node does); missing -> undefined', () => {
    expect(extractKey({ kind: 'cookie', name: 'a' }, h, '', null)).toBe('1')
    expect(extractKey({ kind: 'cookie', name: 'sid' }, h, '', null)).toBe('xyz')
    expect(extractKey({ kind: 'cookie', name: 'b' }, h, '', null)).toBe('2')
    expect(extractKey({ kind: 'cookie', name: 'late' }, h, '', null)).toBe('3')
    expect(extractKey({ kind: 'cookie', name: 's' }, h, '', null)).toBeUndefined()
    expect(extractKey({ kind: 'cookie', name: 'sid' }, head([]), '', null)).toBeUndefined()
    expect(extractKey({ kind: 'cookie', name: 'x' }, head(['Cookie', 'x=']), '', null)).toBe('')
    expect(extractKey({ kind: 'cookie', name: 'sid' }, head(['Cookie', 'sid=1', 'Cookie', 'sid=2']), '', null)).toBe('1')
    expect(extractKey({ kind: 'cookie', name: 'sid' }, head(['Cookie', '', 'Cookie', 'sid=2']), '', null)).toBe('2')
  })
  it('client-ip with and without a prefix', () => {
    expect(extractKey({ kind: 'client-ip' }, h, '10.1.2.3', null)).toBe('10.1.2.3')
    expect(extractKey({ kind: 'client-ip', prefixLength: 24 }, h, '10.1.2.3', null)).toBe('10.1.2.0')
    expect(extractKey({ kind: 'client-ip', prefixLength: 0 }, h, '10.1.2.3', null)).toBe('0.0.0.0')
    expect(extractKey({ kind: 'client-ip', prefixLength: 16 }, h, '::ffff:10.1.2.3', null)).toBe('10.1.0.0')
    expect(maskAddress('2001:db8:1:2:3:4:5:6', 24)).toBe('2001:db8:1:2::')
    expect(maskAddress('2001:db8::1', 8)).toBe('2001:db8:0:0::')
    expect(maskAddress('/run/x.sock', 8)).toBe('/run/x.sock')
  })
  it('captures by number and name; missing -> undefined', () => {
    const m = (compilePattern('^/(?<tenant>[a-z]+)/(\\d+)') as Pattern).exec('/acme/42/x')
    expect(extractKey({ kind: 'capture', group: 2 }, h, '', m)).toBe('42')
    expect(extractKey({ kind: 'capture', group: 'tenant' }, h, '', m)).toBe('acme')
    expect(extractKey({ kind: 'capture', group: 5 }, h, '', m)).toBeUndefined()
    expect(extractKey({ kind: 'capture', group: 'nope' }, h, '', m)).toBeUndefined()
    expect(extractKey({ kind: 'capture', group: 1 }, h, '', null)).toBeUndefined()
  })
})
