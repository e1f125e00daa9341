import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load'
import { SERVICE, yaml } from './helpers'

const minimal = yaml('listen: 127.0.0.1:8080', ...SERVICE)

describe('parseConfig: defaults', () => {
  const config = parseConfig(minimal, '/etc/baton/baton.yaml')

  it('keeps the file and the listen address', () => {
    expect(config.file).toBe('/etc/baton/baton.yaml')
    expect(config.listen).toEqual([{ host: '127.0.0.1', port: 8080 }])
  })

  it('fills limits, log, scheduler, key and server defaults', () => {
    expect(config.limits).toEqual({ headerTimeoutMs: 10000, maxHeaderBytes: 16384, connectTimeoutMs: 3000, idleTimeoutMs: 300000, drainTimeoutMs: 1000, maxPendingConns: 4096, channelTimeoutMs: 2000, shutdownTimeoutMs: 10000, moveIntervalMs: 1000 })
    expect(config.log).toEqual({ level: 'info' })
    expect(config.admin).toBeUndefined()
    const svc = config.services[0]
    expect(svc).toMatchObject({ name: 'api', scheduler: 'wlc', key: { kind: 'path' } })
    expect(svc).not.toHaveProperty('persistent')
    expect(svc?.servers[0]).toEqual({ name: 'a', handoff: '/run/a.sock', weight: 1, maxConns: 0, minConns: 0 })
  })

  it('routes everything to the first service when routes is absent', () => {
    expect(config.routes).toEqual([{ name: 'route-0', match: {}, service: 'api' }])
  })

  it('keeps forward absent when not written (src/forward/method.ts decides the default)', () => {
    const c = parseConfig(yaml('listen: 127.0.0.1:0', 'services:', '  - name: web',
      '    servers: [ { name: w, address: "10.0.0.2:80" } ]'), '')
    expect(c.services[0]?.servers[0]).toEqual({ name: 'w', address: { host: '10.0.0.2', port: 80 }, weight: 1, maxConns: 0, minConns: 0 })
    expect(c.file).toBe('')
  })

  it('takes persistent: true as the defaults', () => {
    const c = parseConfig(yaml('listen: 127.0.0.1:0', ...SERVICE, '    persistent: true'), '')
    expect(c.services[0]?.persistent).toEqual({ timeoutS: 300, netmask: 32 })
  })
})

describe('parseConfig: values', () => {
  const config = parseConfig(yaml(
    'listen: ["127.0.0.1:80", "[::1]:8080"]',
    'admin: { socket: run/admin.sock }',
    'limits: { headerTimeoutMs: 5000, maxHeaderBytes: 256, connectTimeoutMs: 100, idleTimeoutMs: 60000 }',
    'log: { level: debug }',
    'services:',
    '  - name: static',
    '    scheduler: { name: wlc }',
    '    persistent: { timeoutS: 60, netmask: 24 }',
    '    servers:',
    '      - { name: a, handoff: ./sock/a.sock, weight: 0, maxConns: 10, minConns: 5 }',
    '      - { name: b, handoff: "@baton-b" }',
    '      - { name: c, address: "api.internal:8080", forward: pipe, proxyProtocol: v1 }',
    'routes:',
    '  - name: assets',
    '    match:',
    '      path: /static/',
    '      host: [Example.COM, "*.Example.com"]',
    '      method: get',
    '      header: { X-Debug: "1" }',
    '    service: static',
    '  - match: { pathExact: /x, pathRegex: "^/u/(\\\\d+)$", header: [ { name: Cookie, regex: "sid=" }, { name: X-A } ] }',
    '    service: static',
    '  - { service: static }',
  ), '/srv/conf/baton.yaml')

  it('parses IPv4 and bracketed IPv6 listeners', () => {
    expect(config.listen).toEqual([{ host: '127.0.0.1', port: 80 }, { host: '::1', port: 8080 }])
  })

  it('resolves relative socket paths against the config file directory; keeps abstract names', () => {
    expect(config.admin).toEqual({ socket: '/srv/conf/run/admin.sock' })
    const servers = config.services[0]?.servers
    expect(servers?.[0]?.handoff).toBe('/srv/conf/sock/a.sock')
    expect(servers?.[1]?.handoff).toBe('@baton-b')
    expect(servers?.[2]).toMatchObject({ address: { host: 'api.internal', port: 8080 }, forward: 'pipe', proxyProtocol: 'v1' })
  })

  it('keeps limits, log level, persistence and thresholds', () => {
    expect(config.limits.maxHeaderBytes).toBe(256)
    expect(config.log.level).toBe('debug')
    expect(config.services[0]?.persistent).toEqual({ timeoutS: 60, netmask: 24 })
    expect(config.services[0]?.servers[0]).toMatchObject({ weight: 0, maxConns: 10, minConns: 5 })
  })

  it('normalises route matches and names routes', () => {
    const [a, b, c] = config.routes
    expect(a).toEqual({ name: 'assets', service: 'static', match: { path: '/static/', host: ['example.com', '*.example.com'], method: ['GET'], header: [{ name: 'x-debug', value: '1' }] } })
    expect(b?.name).toBe('route-1')
    expect(b?.match.pathExact).toBe('/x')
    expect(b?.match.pathRegex?.source).toBe('^/u/(\\d+)$')
    expect(b?.match.pathRegex?.exec('/u/42')?.group(1)).toBe('42')
    expect(b?.match.header?.map((h) => [h.name, h.regex?.source])).toEqual([['cookie', 'sid='], ['x-a', undefined]])
    expect(c).toEqual({ name: 'route-2', match: {}, service: 'static' })
  })

  it('returns a deeply frozen config', () => {
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.listen[0])).toBe(true)
    expect(Object.isFrozen(config.services[0]?.servers[0])).toBe(true)
    expect(Object.isFrozen(config.routes[0]?.match.host)).toBe(true)
    expect(Object.isFrozen(config.limits)).toBe(true)
    expect(() => { (config.limits as { maxHeaderBytes: number }).maxHeaderBytes = 1 }).toThrow(TypeError)
    expect(config.routes[1]?.match.pathRegex?.test('/u/1')).toBe(true)   // a frozen config's pattern still matches
    expect(config.routes[1]?.match.pathRegex?.test('/u/x')).toBe(false)
  })

  it('accepts a non-loopback admin listener with allowRemote', () => {
    const c = parseConfig(yaml('listen: 127.0.0.1:0', 'admin: { listen: 0.0.0.0:9180, allowRemote: true, token: 0123456789abcdef }', ...SERVICE), '')
    expect(c.admin).toEqual({ listen: { host: '0.0.0.0', port: 9180 }, allowRemote: true, token: '0123456789abcdef' })
  })
})

describe('parseConfig: YAML features', () => {
  it('supports anchors, aliases and merge keys', () => {
    const c = parseConfig(yaml('listen: 127.0.0.1:0', 'services:', '  - name: api', '    servers:',
      '      - &base { name: a, handoff: /a.sock, weight: 5 }',
      '      - { <<: *base, name: b }'), '')
    expect(c.services[0]?.servers[1]).toMatchObject({ name: 'b', handoff: '/a.sock', weight: 5 })
  })
})
