// The config keys of "Operating Baton": watch, admin.token / tokenFile (and the token allowRemote needs),
// limits.shutdownTimeoutMs; a server given to the admin API at run time; the JSON Schema for editors.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { restartOnlyChanges } from '../../../src/admin/reload'
import { configJsonSchema } from '../../../src/config/json-schema'
import { parseConfig } from '../../../src/config/load'
import { parseServerInput } from '../../../src/config/server-input'
import { ConfigError } from '../../../src/errors'
import { issuesOf, SERVICE, yaml } from './helpers'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-op-config-'))
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }) })
const TOKEN = '0123456789abcdef'

describe('operating config keys', () => {
  it('defaults: watch off, shutdownTimeoutMs 10000, no token', () => {
    const c = parseConfig(yaml('listen: 127.0.0.1:0', 'admin: { listen: 127.0.0.1:0 }', ...SERVICE), '')
    expect(c.watch).toBe(false)
    expect(c.limits.shutdownTimeoutMs).toBe(10_000)
    expect(c.admin).toEqual({ listen: { host: '127.0.0.1', port: 0 } })
  })

  it('reads watch, shutdownTimeoutMs and an inline token', () => {
    const c = parseConfig(yaml('listen: 127.0.0.1:0', 'watch: true', 'limits: { shutdownTimeoutMs: 0 }',
      `admin: { socket: /run/baton/admin.sock, token: "${TOKEN}" }`, ...SERVICE), '')
    expect(c.watch).toBe(true)
    expect(c.limits.shutdownTimeoutMs).toBe(0)
    expect(c.admin).toEqual({ socket: '/run/baton/admin.sock', token: TOKEN })
  })

  it('reads tokenFile relative to the config file, whitespace trimmed', () => {
    fs.writeFileSync(path.join(dir, 'admin.token'), `  ${TOKEN}\n`)
    const c = parseConfig(yaml('listen: 127.0.0.1:0', 'admin: { listen: 0.0.0.0:9180, allowRemote: true, tokenFile: admin.token }', ...SERVICE),
      path.join(dir, 'baton.yaml'))
    expect(c.admin).toEqual({ listen: { host: '0.0.0.0', port: 9180 }, allowRemote: true, token: TOKEN, tokenFile: path.join(dir, 'admin.token') })
  })

  it('reports every token problem with its position', () => {
    fs.writeFileSync(path.join(dir, 'short.token'), 'abc\n')
    expect(issuesOf(yaml('listen: 127.0.0.1:0', 'admin: { listen: 10.0.0.1:9180, allowRemote: true }', ...SERVICE))).toEqual([
      'baton.yaml:2:46: admin.allowRemote: needs admin.token or admin.tokenFile: the write routes would be open to the network',
    ])
    expect(issuesOf(yaml('listen: 127.0.0.1:0', `admin: { listen: 127.0.0.1:1, token: "${TOKEN}", tokenFile: /x }`, ...SERVICE))).toEqual([
      'baton.yaml:2:69: admin.tokenFile: cannot read /x (ENOENT: no such file or directory), got "/x"',
      'baton.yaml:2:69: admin.tokenFile: give token or tokenFile, not both',
    ])
    expect(issuesOf(yaml('listen: 127.0.0.1:0', 'admin: { listen: 127.0.0.1:1, token: short one }', ...SERVICE))).toEqual([
      'baton.yaml:2:38: admin.token: must be 16 to 512 visible ASCII characters (no spaces), got "short one"',
    ])
    expect(issuesOf(yaml('listen: 127.0.0.1:0', 'admin: { socket: ./a.sock, tokenFile: short.token }', ...SERVICE), path.join(dir, 'baton.yaml'))[0])
      .toContain(`admin.tokenFile: must hold a token of 16 to 512 visible ASCII characters (no spaces) (${path.join(dir, 'short.token')})`)
    expect(issuesOf(yaml('listen: 127.0.0.1:0', 'watch: yes please', 'limits: { shutdownTimeoutMs: -1 }', ...SERVICE))).toEqual([
      'baton.yaml:2:8: watch: must be true or false, got "yes please"',
      'baton.yaml:3:30: limits.shutdownTimeoutMs: must be an integer 0..3600000, got -1',
    ])
  })

  it('names the keys a reload cannot apply', () => {
    const a = parseConfig(yaml('listen: 127.0.0.1:1', 'admin: { listen: 127.0.0.1:2 }', ...SERVICE), '')
    const b = parseConfig(yaml('listen: 127.0.0.1:3', `admin: { listen: 127.0.0.1:2, token: "${TOKEN}" }`, ...SERVICE), '')
    expect(restartOnlyChanges(a, a)).toEqual([])
    expect(restartOnlyChanges(a, b)).toEqual(['listen', 'admin'])
  })
})

describe('a server added at run time', () => {
  const health = parseConfig(yaml('listen: 127.0.0.1:0', 'services:', '  - name: api', '    health: { tcp: true, intervalMs: 1000 }',
    '    servers: [ { name: a, address: 10.0.0.1:80 } ]'), '').services[0]!.health

  it('is checked as a server of the file and gets its service\'s health check', () => {
    expect(health).toMatchObject({ intervalMs: 1000, rise: 2, fall: 3 })
    expect(parseServerInput({ handoff: 'b.sock', weight: 3 }, 'b', '/etc/baton', health))
      .toEqual({ name: 'b', handoff: '/etc/baton/b.sock', weight: 3, maxConns: 0, minConns: 0, health })
    expect(parseServerInput({ address: '10.0.0.2:80', forward: 'pipe' }, 'c', '/', undefined))
      .toEqual({ name: 'c', address: { host: '10.0.0.2', port: 80 }, forward: 'pipe', weight: 1, maxConns: 0, minConns: 0 })
  })

  it('reports every issue, without a file position', () => {
    const issues = (raw: unknown): string[] => {
      try { parseServerInput(raw, 'x', '/', undefined) } catch (err) { return (err as ConfigError).issues.map((i) => i.message) }
      return []
    }
    expect(issues([1])).toEqual(['the body must be a JSON object of server settings'])
    expect(issues({ name: 'y', health: false, handoff: '/a.sock', forward: 'splice', minConns: 5, maxConns: 2 })).toEqual([
      'name: comes from the URL; leave it out of the body',
      'health: a server added at run time gets its service\'s check; per-server checks go in the file',
      'forward: "splice" needs an address: server, not handoff:',
      'minConns: must be <= maxConns (2), got 5',
    ])
  })
})

describe('the JSON Schema', () => {
  const schema = configJsonSchema() as { $schema: string, properties: Record<string, { properties?: Record<string, unknown>, items?: { properties: Record<string, unknown> } }> }

  it('is draft-07, derived from the zod schema, with the new keys', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#')
    expect(Object.keys(schema.properties)).toEqual(['listen', 'admin', 'watch', 'migrate', 'limits', 'log', 'services', 'routes'])
    expect(Object.keys(schema.properties.admin!.properties!)).toEqual(['listen', 'socket', 'allowRemote', 'token', 'tokenFile'])
    expect(schema.properties.limits!.properties!.shutdownTimeoutMs).toEqual({ default: 10000, type: 'integer', minimum: 0, maximum: 3600000 })
    expect(JSON.stringify(schema)).not.toContain('starts_with')
  })

  it('describes what checks.ts owns: scheduler names, keys, persistent: true', () => {
    const service = schema.properties.services!.items!.properties as Record<string, { anyOf?: Array<{ enum?: string[], type?: string }>, type?: string }>
    expect(service.scheduler!.anyOf![0]!.enum).toContain('lblcr')
    expect(service.key!.type).toBe('string')
    expect(service.persistent!.anyOf![0]).toEqual({ type: 'boolean' })
  })
})
