// `health`, `slowStartS`, `quiescent` and `fallback`: the defaults each server ends up with, and every error
// with its position, as `baton check` prints it.
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load'
import { issuesOf, yaml } from './helpers'

const LISTEN = 'listen: 127.0.0.1:8080'

describe('health config', () => {
  it('fills the defaults per server; a server\'s keys override the service\'s; health: false = no checks', () => {
    const c = parseConfig(yaml(LISTEN, 'services:', '  - name: api',
      '    health: { http: { path: /healthz }, rise: 4 }',
      '    servers:',
      '      - { name: a, handoff: /run/a.sock }',
      '      - { name: b, address: 127.0.0.1:81, health: { tcp: true, intervalMs: 300 } }',
      '      - { name: c, address: 127.0.0.1:82, health: false }',
      '  - name: plain',
      '    slowStartS: 5',
      '    quiescent: true',
      '    fallback: { name: sorry, address: 127.0.0.1:90 }',
      '    servers: [ { name: d, handoff: /run/d.sock } ]'), 'baton.yaml')
    const [api, plain] = c.services
    expect(api!.servers[0]!.health).toEqual({
      http: { method: 'GET', path: '/healthz' }, intervalMs: 2000, fastIntervalMs: 500, timeoutMs: 1000, rise: 4, fall: 3,
    })
    expect(api!.servers[1]!.health).toEqual({ intervalMs: 300, fastIntervalMs: 300, timeoutMs: 300, rise: 4, fall: 3 })
    expect(api!.servers[2]!.health).toBeUndefined()
    expect([api!.slowStartS, api!.quiescent, api!.fallback]).toEqual([0, false, undefined])
    expect(plain!.servers[0]!.health).toBeUndefined()
    expect([plain!.slowStartS, plain!.quiescent, plain!.fallback?.name]).toEqual([5, true, 'sorry'])
  })

  it('reports a bad rise and an unknown health key at their positions', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api',
      '    health: { rise: 0, fal: 2, http: { paht: /h } }',
      '    servers: [ { name: a, handoff: /run/a.sock } ]'))).toEqual([
      'baton.yaml:4:21: services.0.health.rise: must be an integer 1..1000, got 0',
      'baton.yaml:4:24: services.0.health.fal: unknown key, did you mean "fall"?',
      'baton.yaml:4:40: services.0.health.http.paht: unknown key (valid keys here: path, method, host, expect, body)',
    ])
  })

  it('reports a bad value inside a server\'s own health map at the value, not as "expected false"', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api', '    servers:',
      '      - { name: a, handoff: /run/a.sock, health: { timeoutMs: 1.5 } }',
      '      - { name: b, handoff: /run/b.sock, health: true }'))).toEqual([
      'baton.yaml:5:63: services.0.servers.0.health.timeoutMs: must be an integer 1..600000, got 1.5',
      'baton.yaml:6:50: services.0.servers.1.health: must be false or a map of health check settings, got true',
    ])
  })

  it('reports a fallback with both handoff and address, and one named like a regular server', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api',
      '    fallback: { name: a, handoff: /run/s.sock, address: 127.0.0.1:81 }',
      '    servers: [ { name: a, handoff: /run/a.sock } ]'))).toEqual([
      'baton.yaml:4:15: services.0.fallback: server "a" needs exactly one of handoff: <socket path> or address: "host:port"',
      'baton.yaml:4:23: services.0.fallback.name: "a" is also a regular server of this service',
    ])
  })

  it('checks slowStartS and quiescent', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api', '    slowStartS: -1', '    quiescent: yes please',
      '    servers: [ { name: a, handoff: /run/a.sock } ]'))).toEqual([
      'baton.yaml:4:17: services.0.slowStartS: must be an integer 0..86400, got -1',
      'baton.yaml:5:16: services.0.quiescent: must be true or false, got "yes please"',
    ])
  })
})
