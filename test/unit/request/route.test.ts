// Router: ordered routes, first match wins; every predicate kind alone and combined; pathRegex captures;
// host wildcards; header predicates on the value Node gives the application (first-wins and joined fields);
// stateless RE2 patterns; configs from the real loader.
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load'
import { compilePattern, type Pattern } from '../../../src/config/pattern'
import type { RouteConfig, RouteMatch } from '../../../src/config/types'
import { Router } from '../../../src/request/route'
import { sniffHead } from '../../../src/request/sniff'
import type { RequestHead } from '../../../src/request/types'

function head (init: Partial<RequestHead> = {}, headers: string[] = []): RequestHead {
  return { method: 'GET', target: '/', path: '/', query: '', host: 'example.com', versionMajor: 1, versionMinor: 1, headers, headBytes: 100, ...init }
}

/** Routes named r0, r1, ... to services s0, s1, ...; the resolver returns the service name itself. */
function router (...matches: RouteMatch[]): Router<string> {
  return new Router(matches.map((match, i): RouteConfig => ({ name: `r${i}`, match, service: `s${i}` })), (s) => s)
}

/** An RE2 pattern, as the config compiles it. */
function re (source: string): Pattern {
  const p = compilePattern(source)
  if (typeof p === 'string') throw new Error(p)
  return p
}

/** The name of the route that matches, or null. */
const which = (r: Router<string>, h: RequestHead): string | null => r.match(h)?.route.name ?? null

/** One route with `match` alone: does it match `h`? */
const hits = (match: RouteMatch, h: RequestHead): boolean => which(router(match), h) === 'r0'

describe('Router: order', () => {
  it('first match wins: a later, more specific route never wins over an earlier general one', () => {
    const r = router({ path: '/' }, { pathExact: '/api/v1/users', method: ['GET'] }, {})
    expect(which(r, head({ path: '/api/v1/users' }))).toBe('r0')
    const reversed = router({ pathExact: '/api/v1/users', method: ['GET'] }, { path: '/' }, {})
    expect(which(reversed, head({ path: '/api/v1/users' }))).toBe('r0')
    expect(which(reversed, head({ path: '/other' }))).toBe('r1')
  })

  it('falls through to the next route when one predicate fails', () => {
    const r = router({ path: '/api/', method: ['POST'] }, { path: '/api/' }, {})
    expect(which(r, head({ path: '/api/x', method: 'POST' }))).toBe('r0')
    expect(which(r, head({ path: '/api/x', method: 'GET' }))).toBe('r1')
    expect(which(r, head({ path: '/x', method: 'POST' }))).toBe('r2')
  })

  it('a route with no predicates matches everything; null when nothing matches', () => {
    expect(which(router({}), head({ method: 'DELETE', path: '/anything', host: '', headers: [] }))).toBe('r0')
    const r = router({ path: '/a' }, { host: ['b.example'] })
    expect(r.match(head({ path: '/c' }))).toBeNull()
    expect(new Router<string>([], (s) => s).match(head())).toBeNull()
  })

  it('resolves each service once at construction and returns the route with its config', () => {
    const seen: string[] = []
    const routes: RouteConfig[] = [{ name: 'a', match: { path: '/a' }, service: 'svcA' }, { name: 'b', match: {}, service: 'svcB' }]
    const r = new Router(routes, (name) => { seen.push(name); return { name } })
    expect(seen).toEqual(['svcA', 'svcB'])
    const m = r.match(head({ path: '/a/1' }))
    expect(m?.route).toMatchObject({ name: 'a', service: { name: 'svcA' }, config: routes[0] })
    expect(m?.captures).toBeNull() // no pathRegex: no captures
    r.match(head())
    expect(seen).toHaveLength(2)
  })
})

describe('Router: path predicates', () => {
  it('path is a prefix (no segment boundary), case-sensitive', () => {
    expect(hits({ path: '/static/' }, head({ path: '/static/' }))).toBe(true)
    expect(hits({ path: '/static/' }, head({ path: '/static/a/b.css' }))).toBe(true)
    expect(hits({ path: '/static/' }, head({ path: '/static' }))).toBe(false)
    expect(hits({ path: '/static' }, head({ path: '/staticfoo' }))).toBe(true)
    expect(hits({ path: '/static/' }, head({ path: '/Static/a' }))).toBe(false)
  })

  it('pathExact must equal the path', () => {
    expect(hits({ pathExact: '/health' }, head({ path: '/health' }))).toBe(true)
    expect(hits({ pathExact: '/health' }, head({ path: '/health/' }))).toBe(false)
    expect(hits({ pathExact: '/health' }, head({ path: '/healt' }))).toBe(false)
  })

  it('pathRegex returns numbered and named captures', () => {
    const r = router({ pathRegex: re('^/u/(?<tenant>[a-z]+)/(\\d+)(x)?$') })
    const m = r.match(head({ path: '/u/acme/42' }))
    expect(m?.route.name).toBe('r0')
    expect(m?.captures?.group(0)).toBe('/u/acme/42')
    expect(m?.captures?.group(1)).toBe('acme')
    expect(m?.captures?.group(2)).toBe('42')
    expect(m?.captures?.group('tenant')).toBe('acme')
    expect(m?.captures?.group(3)).toBeUndefined() // did not take part
    expect(m?.captures?.group(4)).toBeUndefined() // no such group
    expect(m?.captures?.group('nope')).toBeUndefined()
    expect(r.match(head({ path: '/u/acme/x' }))).toBeNull()
  })

  it('pathRegex is tested against the path, not the query', () => {
    expect(hits({ pathRegex: re('x=1') }, head({ path: '/a', query: '?x=1', target: '/a?x=1' }))).toBe(false)
  })

  it('pathRegex is unanchored unless the pattern says so; (?i) makes it case-insensitive', () => {
    expect(hits({ pathRegex: re('/item/') }, head({ path: '/shop/item/1' }))).toBe(true)
    expect(hits({ pathRegex: re('^/item/') }, head({ path: '/shop/item/1' }))).toBe(false)
    expect(hits({ pathRegex: re('^/item/') }, head({ path: '/ITEM/1' }))).toBe(false)
    expect(hits({ pathRegex: re('(?i)^/item/') }, head({ path: '/ITEM/1' }))).toBe(true)
  })

  it('patterns keep no state between calls; captures of an earlier match stay valid', () => {
    const r = router({ pathRegex: re('^/item/(\\d+)') })
    const first = r.match(head({ path: '/item/7' }))
    const second = r.match(head({ path: '/item/8' }))
    expect(r.match(head({ path: '/x/item/9' }))).toBeNull()
    expect([first?.captures?.group(1), second?.captures?.group(1)]).toEqual(['7', '8'])
    const h = router({ header: [{ name: 'x-a', regex: re('b') }] })
    expect([which(h, head({}, ['X-A', 'abc'])), which(h, head({}, ['X-A', 'abc']))]).toEqual(['r0', 'r0'])
  })

  it('a route without pathRegex returns the same result object every time (no allocation)', () => {
    const r = router({ path: '/a' })
    const m = r.match(head({ path: '/a/1' }))
    expect(m?.captures).toBeNull()
    expect(r.match(head({ path: '/a/2' }))).toBe(m)
  })

  it('a pathRegex that backtracks exponentially in RegExp answers at once', () => {
    const r = router({ pathRegex: re('^/re/(a+)+$') }, { header: [{ name: 'x-q', regex: re('^(a|aa)+$') }] })
    const t0 = performance.now()
    expect(which(r, head({ path: `/re/${'a'.repeat(5000)}!` }, ['X-Q', `${'a'.repeat(5000)}!`]))).toBeNull()
    expect(which(r, head({ path: `/re/${'a'.repeat(5000)}` }))).toBe('r0')
    expect(performance.now() - t0).toBeLessThan(500)
  })
})

describe('Router: host, method', () => {
  it('host matches one of the names exactly', () => {
    expect(hits({ host: ['a.example', 'b.example'] }, head({ host: 'b.example' }))).toBe(true)
    expect(hits({ host: ['a.example'] }, head({ host: 'x.a.example' }))).toBe(false)
    expect(hits({ host: ['a.example'] }, head({ host: '' }))).toBe(false)
  })

  it('*.example.com matches subdomains at any depth, not example.com itself nor a lookalike', () => {
    const m: RouteMatch = { host: ['*.example.com'] }
    expect(hits(m, head({ host: 'a.example.com' }))).toBe(true)
    expect(hits(m, head({ host: 'a.b.example.com' }))).toBe(true)
    expect(hits(m, head({ host: 'example.com' }))).toBe(false)
    expect(hits(m, head({ host: 'badexample.com' }))).toBe(false)
    expect(hits(m, head({ host: 'example.com.evil' }))).toBe(false)
    expect(hits({ host: ['*.example.com', 'example.com'] }, head({ host: 'example.com' }))).toBe(true)
  })

  it('compares the host as RequestHead gives it: lower-cased, without port (through sniffHead)', () => {
    const raw = Buffer.from('GET /x HTTP/1.1\r\nHost: API.Example.COM:8080\r\n\r\n')
    const res = sniffHead(raw, raw.length, 16384)
    expect(res.kind).toBe('ok')
    const h = (res as { head: RequestHead }).head
    expect(h.host).toBe('api.example.com')
    expect(hits({ host: ['*.example.com'] }, h)).toBe(true)
    expect(hits({ host: ['api.example.com'] }, h)).toBe(true)
  })

  it('method is one of the list (exact, upper-case)', () => {
    expect(hits({ method: ['GET', 'HEAD'] }, head({ method: 'HEAD' }))).toBe(true)
    expect(hits({ method: ['GET', 'HEAD'] }, head({ method: 'POST' }))).toBe(false)
    expect(hits({ method: ['GET'] }, head({ method: 'get' }))).toBe(false)
  })
})

describe('Router: headers', () => {
  it('presence: the name compares case-insensitively, any value (even empty)', () => {
    expect(hits({ header: [{ name: 'x-user-id' }] }, head({}, ['X-User-ID', '']))).toBe(true)
    expect(hits({ header: [{ name: 'x-user-id' }] }, head({}, ['X-User', 'a', 'X-User-Idx', 'b']))).toBe(false)
    expect(hits({ header: [{ name: 'x-user-id' }] }, head({}, []))).toBe(false)
  })

  it('exact value: case-sensitive value, case-insensitive name', () => {
    const m: RouteMatch = { header: [{ name: 'x-env', value: 'Canary' }] }
    expect(hits(m, head({}, ['x-ENV', 'Canary']))).toBe(true)
    expect(hits(m, head({}, ['X-Env', 'canary']))).toBe(false)
    expect(hits(m, head({}, ['X-Env', 'Canary2']))).toBe(false)
  })

  it('regex: tested against the value', () => {
    const m: RouteMatch = { header: [{ name: 'content-type', regex: re('^multipart/') }] }
    expect(hits(m, head({}, ['Content-Type', 'multipart/form-data; boundary=x']))).toBe(true)
    expect(hits(m, head({}, ['Content-Type', 'text/plain; x=multipart/']))).toBe(false)
  })

  it('several header predicates must all hold', () => {
    const m: RouteMatch = { header: [{ name: 'x-a' }, { name: 'x-b', value: '2' }, { name: 'x-c', regex: re('^\\d+$') }] }
    expect(hits(m, head({}, ['X-C', '33', 'X-B', '2', 'X-A', '']))).toBe(true)
    expect(hits(m, head({}, ['X-A', '', 'X-B', '2']))).toBe(false)
    expect(hits(m, head({}, ['X-A', '', 'X-B', '3', 'X-C', '1']))).toBe(false)
    expect(hits(m, head({}, ['X-A', '', 'X-B', '2', 'X-C', 'x']))).toBe(false)
  })

  it('a repeated header is matched on the joined value Node gives the application, never on one field', () => {
    const fields = ['Accept', 'text/html', 'X-Tag', 'blue', 'x-tag', 'green']
    expect(hits({ header: [{ name: 'x-tag', value: 'blue' }] }, head({}, fields))).toBe(false)
    expect(hits({ header: [{ name: 'x-tag', value: 'green' }] }, head({}, fields))).toBe(false)
    expect(hits({ header: [{ name: 'x-tag', value: 'blue, green' }] }, head({}, fields))).toBe(true)
    expect(hits({ header: [{ name: 'x-tag', regex: re('^green$') }] }, head({}, fields))).toBe(false)
    expect(hits({ header: [{ name: 'x-tag', regex: re('^blue, green$') }] }, head({}, fields))).toBe(true)
    expect(hits({ header: [{ name: 'x-canary', value: 'yes' }] }, head({}, ['X-Canary', 'no', 'X-Canary', 'yes']))).toBe(false)
  })

  it('a repeated first-wins header (Content-Type, Authorization, ...) is matched on its first field only', () => {
    const fields = ['Content-Type', 'application/json', 'content-type', 'multipart/form-data; boundary=z']
    expect(hits({ header: [{ name: 'content-type', regex: re('^multipart/') }] }, head({}, fields))).toBe(false)
    expect(hits({ header: [{ name: 'content-type', value: 'application/json' }] }, head({}, fields))).toBe(true)
    const auth = ['Authorization', 'Bearer a', 'Authorization', 'Bearer b']
    expect(hits({ header: [{ name: 'authorization', value: 'Bearer b' }] }, head({}, auth))).toBe(false)
  })

  it('Cookie fields are joined with "; "', () => {
    const fields = ['Cookie', 'a=1', 'cookie', 'b=2']
    expect(hits({ header: [{ name: 'cookie', value: 'a=1; b=2' }] }, head({}, fields))).toBe(true)
    expect(hits({ header: [{ name: 'cookie', regex: re('(^|; )b=2') }] }, head({}, fields))).toBe(true)
  })
})

describe('Router: predicates combined', () => {
  const m: RouteMatch = { path: '/api/', pathRegex: re('^/api/(\\w+)'), host: ['*.example.com'], method: ['POST'], header: [{ name: 'x-k', value: 'v' }] }
  const ok = head({ method: 'POST', path: '/api/orders', host: 'shop.example.com' }, ['X-K', 'v'])

  it('matches only when every predicate holds, and returns the captures', () => {
    expect(router(m).match(ok)?.captures?.group(1)).toBe('orders')
  })

  it.each([
    ['path', { path: '/web/orders' }],
    ['host', { host: 'example.com' }],
    ['method', { method: 'GET' }],
    ['header', { headers: ['X-K', 'w'] }],
    ['pathRegex', { path: '/api/' }],
  ] as Array<[string, Partial<RequestHead>]>)('fails when only %s differs', (_, change) => {
    expect(router(m).match({ ...ok, ...change })).toBeNull()
  })

  it('pathExact and path together both apply', () => {
    expect(hits({ path: '/a', pathExact: '/a/b' }, head({ path: '/a/b' }))).toBe(true)
    expect(hits({ path: '/x', pathExact: '/a/b' }, head({ path: '/a/b' }))).toBe(false)
  })
})

describe('Router: routes from parseConfig', () => {
  const config = parseConfig([
    'listen: 127.0.0.1:0',
    'services:',
    '  - { name: static, servers: [ { name: a, handoff: /run/a.sock } ] }',
    '  - { name: web, servers: [ { name: b, handoff: /run/b.sock } ] }',
    '  - { name: uploads, servers: [ { name: c, handoff: /run/c.sock } ] }',
    '  - { name: users, servers: [ { name: d, handoff: /run/d.sock } ] }',
    '  - { name: api, servers: [ { name: e, handoff: /run/e.sock } ] }',
    'routes:',
    '  - { name: static, match: { path: /static/ }, service: static }',
    '  - { match: { host: "*.Example.com", method: [GET, head] }, service: web }',
    '  - match: { header: [ { name: X-User-Id }, { name: Content-Type, regex: "^multipart/" } ] }',
    '    service: uploads',
    '  - { name: user, match: { pathRegex: "^/users/(?<id>\\\\d+)$", header: { X-Env: Canary } }, service: users }',
    '  - { service: api }',
    '',
  ].join('\n'), 'baton.yaml')
  const services = new Map(config.services.map((s) => [s.name, s]))
  const r = new Router(config.routes, (name) => services.get(name)!)
  const svc = (h: RequestHead): string | undefined => r.match(h)?.route.service.name

  it('routes a frozen config in order, with lower-cased hosts and header names and upper-cased methods', () => {
    expect(Object.isFrozen(config.routes)).toBe(true)
    expect(svc(head({ path: '/static/x', host: 'www.example.com' }))).toBe('static')
    expect(svc(head({ path: '/x', host: 'www.example.com', method: 'HEAD' }))).toBe('web')
    expect(svc(head({ path: '/x', host: 'example.com', method: 'HEAD' }))).toBe('api')
    expect(svc(head({ method: 'POST' }, ['x-user-id', '7', 'CONTENT-TYPE', 'multipart/form-data']))).toBe('uploads')
    expect(svc(head({ method: 'POST' }, ['x-user-id', '7', 'Content-Type', 'text/plain']))).toBe('api')
    expect(svc(head({ path: '/other' }))).toBe('api')
  })

  it('returns named captures from a loaded pathRegex, twice in a row (a frozen config still matches)', () => {
    const h = head({ path: '/users/42' }, ['x-env', 'Canary'])
    for (let i = 0; i < 2; i++) {
      const m = r.match(h)
      expect(m?.route.name).toBe('user')
      expect(m?.captures?.group('id')).toBe('42')
    }
    expect(svc(head({ path: '/users/42' }, ['x-env', 'canary']))).toBe('api')
  })
})
