// migrate: and agent: servers (forward: migrate): defaults, the secret, and the rules between values, each
// issue with its file:line:col.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load'
import { resolveTarget } from '../../../src/forward/method'
import { issuesOf, yaml } from './helpers'

const SECRET = 'an-agent-secret-of-32-characters'

describe('migrate config', () => {
  it('builds agent servers and the defaults', () => {
    const c = parseConfig(yaml(
      'listen: 10.99.0.100:80',
      `migrate: { secret: ${SECRET} }`,
      'services:',
      '  - name: web',
      '    servers:',
      '      - { name: r1, agent: 10.99.0.11:7070 }',
      '      - { name: r2, agent: 10.99.0.12:7070, forward: migrate, weight: 2 }',
    ), 'baton.yaml')
    expect(c.migrate).toEqual({ secret: SECRET, flowTable: { table: 'baton', map: 'flows' }, graceMs: 3000, timeoutMs: 1000 })
    expect(c.services[0]!.servers[0]!.agent).toEqual({ host: '10.99.0.11', port: 7070 })
    expect(resolveTarget(c.services[0]!.servers[1]!, true)).toEqual({
      method: 'migrate', host: '10.99.0.12', port: 7070, path: undefined, proxyProtocol: undefined,
    })
    expect(resolveTarget(c.services[0]!.servers[1]!, false).method).toBe('migrate') // never a silent fallback
  })

  it('reads secretFile relative to the config file, and takes the table names', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-migrate-cfg-'))
    fs.writeFileSync(path.join(dir, 'agent.key'), `${SECRET}\n`)
    const c = parseConfig(yaml(
      'listen: 10.99.0.100:80',
      'migrate: { secretFile: agent.key, flowTable: { table: t1, map: m1 }, graceMs: 0, timeoutMs: 250 }',
      'services: [ { name: web, servers: [ { name: r1, agent: 10.99.0.11:7070 } ] } ]',
    ), path.join(dir, 'baton.yaml'))
    expect(c.migrate).toEqual({ secret: SECRET, secretFile: path.join(dir, 'agent.key'), flowTable: { table: 't1', map: 'm1' }, graceMs: 0, timeoutMs: 250 })
    fs.rmSync(dir, { recursive: true })
  })

  it('reports every rule with its position', () => {
    expect(issuesOf(yaml(
      'listen: [ "0.0.0.0:80", "[::1]:80" ]',
      'services:',
      '  - name: web',
      '    servers:',
      '      - { name: a, agent: 10.0.0.1:7070, handoff: /a.sock }',
      '      - { name: b, agent: 10.0.0.2:7070, forward: splice }',
      '      - { name: c, address: 10.0.0.3:80, forward: migrate }',
      '      - { name: d, handoff: /d.sock, forward: migrate }',
      '      - { name: e, agent: agent.example:7070, proxyProtocol: v2 }',
      '      - { name: f, agent: 10.0.0.6 }',
    ))).toEqual([
      'baton.yaml:1:11: listen.0: must be a numeric IPv4 address and a fixed port (the VIP) when servers are given as agent:, got "0.0.0.0:80"',
      'baton.yaml:1:25: listen.1: must be a numeric IPv4 address and a fixed port (the VIP) when servers are given as agent:, got "[::1]:80"',
      'baton.yaml:5:9: services.0.servers.0: server "a" needs exactly one of handoff: <socket path> or address: "host:port" or agent: "host:port"',
      'baton.yaml:5:27: services.0.servers.0.agent: an agent: server needs a top-level migrate: { secretFile: FILE } (the control connection\'s shared secret)',
      'baton.yaml:6:51: services.0.servers.1.forward: "splice" does not apply to an agent: server (it is always migrate)',
      'baton.yaml:7:51: services.0.servers.2.forward: "migrate" needs an agent: server, not address:',
      'baton.yaml:8:47: services.0.servers.3.forward: "migrate" needs an agent: server, not handoff:',
      'baton.yaml:9:27: services.0.servers.4.agent: must be a numeric IPv4 address (the flow is routed via it), got "agent.example:7070"',
      'baton.yaml:9:62: services.0.servers.4.proxyProtocol: only applies to address: servers (migrate passes the client address itself)',
      'baton.yaml:10:27: services.0.servers.5.agent: must be "host:port" (IPv6 as "[::1]:port"), got "10.0.0.6"',
    ])
  })

  it('needs exactly one of secret and secretFile, and a secret that is not guessed', () => {
    expect(issuesOf(yaml(
      'listen: 10.0.0.100:80',
      'migrate: { graceMs: -1, timeoutMs: 5 }',
      'services: [ { name: web, servers: [ { name: r1, agent: 10.0.0.1:7070 } ] } ]',
    ))).toEqual([
      'baton.yaml:2:10: migrate: needs exactly one of secret: or secretFile: (the control connections\' shared secret)',
      'baton.yaml:2:21: migrate.graceMs: must be an integer 0..600000, got -1',
      'baton.yaml:2:36: migrate.timeoutMs: must be an integer 10..60000, got 5',
    ])
    expect(issuesOf(yaml(
      'listen: 10.0.0.100:80',
      'migrate: { secret: short, secretFile: /nonexistent/baton.key, flowTable: { table: "1bad" } }',
      'services: [ { name: web, servers: [ { name: r1, agent: 10.0.0.1:7070 } ] } ]',
    ))).toEqual([
      'baton.yaml:2:10: migrate: needs exactly one of secret: or secretFile: (the control connections\' shared secret)',
      'baton.yaml:2:20: migrate.secret: must be 16 to 512 visible ASCII characters (no spaces), got "short"',
      'baton.yaml:2:39: migrate.secretFile: cannot read /nonexistent/baton.key (ENOENT: no such file or directory), got "/nonexistent/baton.key"',
      'baton.yaml:2:83: migrate.flowTable.table: must be an nft name (a letter, then letters, digits, "_", "." or "-"), got "1bad"',
    ])
  })
})
