import { describe, expect, it } from 'vitest'
import { normalizePath, parseHost, parseTarget, TargetParts } from '../../../src/request/path'

describe('normalizePath', () => {
  const table: ReadonlyArray<readonly [string, string | null]> = [
    ['/', '/'],
    ['/a/b/c', '/a/b/c'],
    ['/a/b/', '/a/b/'],
    ['//a', null], // empty segments: nginx, Tomcat and find-my-way merge them, Node keeps them; new URL() reads a host
    ['/a//b', null],
    ['/a/b//', null],
    ['/%7euser', '/~user'], // unreserved escapes are decoded
    ['/%41%62%2D%5f%2E%7E%30', '/Ab-_.~0'],
    ['/a%20b', '/a%20b'], // other escapes stay encoded
    ['/a%2ab%3f', '/a%2Ab%3F'], // ...with upper-case hex
    ['/%c3%a9t%C3%A9', '/%C3%A9t%C3%A9'],
    ["/!$&'()*+,=:@", "/!$&'()*+,=:@"], // pchar
    ["/a!$&'()*+,;=:@/b", "/a!$&'()*+,/b"], // pchar, the ';' parameters dropped
    ['/.well-known/x', '/.well-known/x'],
    ['/a/...', '/a/...'],
    ['/a/.b', '/a/.b'],
    ['/a/b..', '/a/b..'],
    ['/.', null],
    ['/..', null],
    ['/a/./b', null],
    ['/a/../b', null],
    ['/a/.', null],
    ['/a/..', null],
    ['/%2e', null],
    ['/%2E%2E/a', null],
    ['/.%2e/a', null],
    ['/a%2Fb', null],
    ['/a%2fb', null],
    ['/a%5Cb', null],
    ['/a\\b', null],
    ['/a%00', null],
    ['/a%', null],
    ['/a%4', null],
    ['/a%4g', null],
    ['/a%%41', null],
    ['/a b', null],
    ['/a\tb', null],
    ['/a"b', null],
    ['/a<b>', null],
    ['/a|b', null],
    ['/a{b}', null],
    ['/a^b', null],
    ['/a`b', null],
    ['/a[b]', null],
    ['/a#b', null],
    ['/a?b', null], // the query is split off before
    ['/caf\u00e9', null],
    ['', null],
    ['a/b', null],
    ['*', null],
  ]
  for (const [raw, want] of table) {
    it(`${JSON.stringify(raw)} -> ${JSON.stringify(want)}`, () => {
      expect(normalizePath(raw)).toBe(want)
    })
  }

  // Path parameters (`;...` or `%3B...` up to the next '/') are dropped, as Tomcat, Jetty and Spring do; a
  // segment whose name is '.' or '..' (decoded) is refused with parameters too, and so is an empty name.
  const params: ReadonlyArray<readonly [string, string | null]> = [
    ['/a;v=1/b', '/a/b'],
    ['/a;v=1;w=2/b;x', '/a/b'],
    ['/login;jsessionid=0A1B2C', '/login'],
    ['/a%3Bv=1/b', '/a/b'],
    ['/a%3bv/b', '/a/b'],
    ['/a;%2e%2e/b', '/a/b'], // dots in the parameters are not a dot segment
    ['/a;../b', '/a/b'],
    ['/a;%41/%7e', '/a/~'], // escapes after the parameters are still decoded
    ['/...;x/b', '/.../b'],
    ['/.a;x', '/.a'],
    ['/a/;x', '/a/'],
    ['/;x', '/'],
    ['/a;x%2Fy', null], // the parameters are still checked
    ['/a;x%00', null],
    ['/a;x y', null],
    ['/a;x\\y', null],
    ['/a;x%zz', null],
    ['/public/..;/admin/x', null],
    ['/public/..;jsessionid=1/admin/x', null],
    ['/public/.;/admin/x', null],
    ['/public/.;x=1/admin', null],
    ['/public/%2e%2e;/admin', null],
    ['/public/%2E%2E;/admin', null],
    ['/public/.%2e;/admin', null],
    ['/public/%2e.;x/admin', null],
    ['/public/%2e;/admin', null],
    ['/public/..%3B/admin', null],
    ['/public/..%3b/admin', null],
    ['/public/%2e%2e%3b/admin', null],
    ['/public/..%3Bx=1', null],
    ['/public/..;', null], // at the end
    ['/public/.;', null],
    ['/public/..;a;b', null],
    ['/..;/admin', null],
    ['/;x/admin', null], // an empty name: Tomcat reads //admin, then merges it to /admin
    ['/a/;x/b', null],
    ['/a/%3Bx/b', null],
  ]
  for (const [raw, want] of params) {
    it(`parameters: ${JSON.stringify(raw)} -> ${JSON.stringify(want)}`, () => {
      expect(normalizePath(raw)).toBe(want)
    })
  }

  it('returns the same string when nothing changes (no allocation)', () => {
    const raw = '/api/v1/items'
    expect(normalizePath(raw)).toBe(raw)
  })
})

describe('parseTarget', () => {
  const parts = new TargetParts()
  const table: ReadonlyArray<readonly [string, { path: string, query: string, authority: string } | null]> = [
    ['/a?x=1&y', { path: '/a', query: '?x=1&y', authority: '' }],
    ['/a?', { path: '/a', query: '?', authority: '' }],
    ['/a?q={x}|^`"<>[]\\/?', { path: '/a', query: '?q={x}|^`"<>[]\\/?', authority: '' }],
    ['/%7e?%7e', { path: '/~', query: '?%7e', authority: '' }],
    ['*', { path: '*', query: '', authority: '' }],
    ['http://a.example', { path: '/', query: '', authority: 'a.example' }],
    ['HTTPS://A.example:8443/x?y', { path: '/x', query: '?y', authority: 'A.example:8443' }],
    ['http://a.example?y', { path: '/', query: '?y', authority: 'a.example' }],
    ['http://', null],
    ['http://u@a/', null],
    ['http:/a/', null],
    ['a.example:443', null],
    ['/a?b#c', null],
    ['/a?b%zz', null],
    ['/a?b c', null],
  ]
  for (const [target, want] of table) {
    it(`${JSON.stringify(target)}`, () => {
      const reason = parseTarget(target, parts)
      if (want === null) {
        expect(reason).toEqual(expect.any(String))
      } else {
        expect(reason).toBeNull()
        expect({ path: parts.path, query: parts.query, authority: parts.authority }).toEqual(want)
      }
    })
  }
})

describe('parseHost', () => {
  const table: ReadonlyArray<readonly [string, string | null]> = [
    ['example.com', 'example.com'],
    ['Example.COM:8080', 'example.com'],
    ['a_b-c.d', 'a_b-c.d'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['[2001:DB8::1]:443', '[2001:db8::1]'],
    ['example.com:65535', 'example.com'],
    ['', null],
    [':80', null],
    ['example.com:', null],
    ['example.com:65536', null],
    ['example.com:8o', null],
    ['example.com:123456', null],
    ['u@example.com', null],
    ['0.0.0.0=5000', null],
    ['a b', null],
    ['[::1', null],
    ['[::1]x', null],
    ['[fe80::1%25eth0]', null],
    ['caf\u00e9.example', null],
  ]
  for (const [value, want] of table) {
    it(`${JSON.stringify(value)} -> ${JSON.stringify(want)}`, () => {
      expect(parseHost(value)).toBe(want)
    })
  }
})
