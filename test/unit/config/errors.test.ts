// Every kind of config error, with its exact position and message as `baton check` prints them.
import { describe, expect, it } from 'vitest'
import { loadConfigFile, parseConfig } from '../../../src/config/load'
import { BatonError, ConfigError } from '../../../src/errors'
import { issuesOf, SERVICE, yaml } from './helpers'

const LISTEN = 'listen: 127.0.0.1:8080'

describe('YAML errors', () => {
  it('reports a syntax error with its position', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: [api', 'routes: 1'))).toEqual([
      'baton.yaml:4:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ])
  })

  it('reports a duplicate key', () => {
    expect(issuesOf(yaml(LISTEN, ...SERVICE, 'listen: 127.0.0.1:9090'))).toEqual([
      'baton.yaml:5:1: YAML: duplicate key "listen" (map keys must be unique)',
    ])
  })

  it('reports a document that is not a map, and an empty one', () => {
    expect(issuesOf(yaml('- a'))).toEqual(['baton.yaml:1:1: config: must be a map of settings, got a list'])
    expect(issuesOf('')).toEqual(['baton.yaml:1:1: config: must be a map of settings, got nothing'])
  })
})

describe('keys', () => {
  it('reports unknown keys at the key, with a suggestion when one is close', () => {
    expect(issuesOf(yaml(LISTEN, 'limts: {}', ...SERVICE, '    bogus: 1'))).toEqual([
      'baton.yaml:2:1: limts: unknown key, did you mean "limits"?',
      'baton.yaml:6:5: services.0.bogus: unknown key (valid keys here: name, scheduler, key, persistent, health, slowStartS, quiescent, keepAlive, fallback, servers)',
    ])
  })

  it('reports a missing key at its parent', () => {
    expect(issuesOf(yaml('services:', '  - servers: [ { handoff: /a.sock } ]'))).toEqual([
      'baton.yaml:1:1: listen: is required',
      'baton.yaml:2:5: services.0.name: is required',
      'baton.yaml:2:16: services.0.servers.0.name: is required',
    ])
  })
})

describe('values', () => {
  it('names the key and the bad value (HAProxy style)', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api', '    servers:',
      '      - { name: a, handoff: /run/a.sock }',
      '      - { name: b, handoff: /run/b.sock, weight: heavy }'))).toEqual([
      'baton.yaml:6:50: services.0.servers.1.weight: must be an integer 0..65535, got "heavy"',
    ])
  })

  it('checks listen addresses', () => {
    expect(issuesOf(yaml('listen: [ "::1:80", "127.0.0.1:70000", "bad host:1", 8080 ]', ...SERVICE))).toEqual([
      'baton.yaml:1:11: listen.0: must be "host:port" (IPv6 as "[::1]:port"): put an IPv6 address in brackets, got "::1:80"',
      'baton.yaml:1:21: listen.1: must be "host:port" (IPv6 as "[::1]:port"): port must be an integer 0..65535, got "127.0.0.1:70000"',
      'baton.yaml:1:40: listen.2: must be "host:port" (IPv6 as "[::1]:port"): "bad host" is not a host name or IP address, got "bad host:1"',
      'baton.yaml:1:54: listen.3: must be "host:port", got 8080',
    ])
    expect(issuesOf(yaml('listen: 8080', ...SERVICE))).toEqual([
      'baton.yaml:1:9: listen: must be an address "host:port" or a list of them, got 8080',
    ])
    expect(issuesOf(yaml('listen: []', ...SERVICE))).toEqual([
      'baton.yaml:1:9: listen: must list at least one address, got an empty list',
    ])
  })

  it('checks limits and log level', () => {
    expect(issuesOf(yaml(LISTEN, 'limits: { maxHeaderBytes: 100, headerTimeoutMs: 1.5 }', 'log: { level: loud }', ...SERVICE))).toEqual([
      'baton.yaml:2:27: limits.maxHeaderBytes: must be an integer 256..1048576, got 100',
      'baton.yaml:2:49: limits.headerTimeoutMs: must be an integer 1..2147483647, got 1.5',
      'baton.yaml:3:15: log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ])
  })
})

describe('admin', () => {
  it('refuses a non-loopback listener without allowRemote', () => {
    expect(issuesOf(yaml(LISTEN, 'admin: { listen: "10.0.0.1:9180" }', ...SERVICE))).toEqual([
      'baton.yaml:2:18: admin.listen: must be a loopback address unless admin.allowRemote is true, got "10.0.0.1:9180"',
    ])
  })

  it('needs exactly one of listen and socket', () => {
    expect(issuesOf(yaml(LISTEN, 'admin: { listen: "127.0.0.1:9180", socket: /run/a.sock }', ...SERVICE))).toEqual([
      'baton.yaml:2:8: admin: needs exactly one of listen: "host:port" or socket: <path>',
    ])
    expect(issuesOf(yaml(LISTEN, 'admin: {}', ...SERVICE))).toEqual([
      'baton.yaml:2:8: admin: needs exactly one of listen: "host:port" or socket: <path>',
    ])
  })
})

describe('services and servers', () => {
  it('needs at least one service and one server', () => {
    expect(issuesOf(yaml(LISTEN, 'services: []'))).toEqual([
      'baton.yaml:2:11: services: must list at least one service, got an empty list',
    ])
    expect(issuesOf(yaml(LISTEN, 'services: [ { name: api, servers: [] } ]'))).toEqual([
      'baton.yaml:2:35: services.0.servers: must list at least one server, got an empty list',
    ])
  })

  it('reports duplicate service and server names at the second use', () => {
    expect(issuesOf(yaml(LISTEN, 'services:',
      '  - { name: api, servers: [ { name: a, handoff: /a.sock }, { name: a, handoff: /b.sock } ] }',
      '  - { name: api, servers: [ { name: a, handoff: /c.sock } ] }'))).toEqual([
      'baton.yaml:3:68: services.0.servers.1.name: duplicate server name "a" (first used by services.0.servers.0)',
      'baton.yaml:4:13: services.1.name: duplicate service name "api" (first used by services.0)',
    ])
  })

  it('checks names', () => {
    expect(issuesOf(yaml(LISTEN, 'services: [ { name: "a b", servers: [ { name: a, handoff: /a.sock } ] } ]'))).toEqual([
      'baton.yaml:2:21: services.0.name: must be a name of letters, digits, "_", "." and "-", got "a b"',
    ])
  })

  it('needs exactly one of handoff and address, with a matching forward method', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api', '    servers:',
      '      - { name: a }',
      '      - { name: b, handoff: /b.sock, address: "10.0.0.1:80" }',
      '      - { name: c, handoff: /c.sock, forward: splice }',
      '      - { name: d, address: "10.0.0.1:80", forward: handoff }',
      '      - { name: e, handoff: /e.sock, proxyProtocol: v2 }',
      '      - { name: f, address: "10.0.0.1:80", forward: tunnel, proxyProtocol: v3 }'))).toEqual([
      'baton.yaml:5:9: services.0.servers.0: server "a" needs exactly one of handoff: <socket path> or address: "host:port"',
      'baton.yaml:6:9: services.0.servers.1: server "b" needs exactly one of handoff: <socket path> or address: "host:port"',
      'baton.yaml:7:47: services.0.servers.2.forward: "splice" needs an address: server, not handoff:',
      'baton.yaml:8:53: services.0.servers.3.forward: "handoff" needs a handoff: socket, not address:',
      'baton.yaml:9:53: services.0.servers.4.proxyProtocol: only applies to address: servers (handoff passes the client address itself)',
      'baton.yaml:10:53: services.0.servers.5.forward: must be one of handoff, splice, pipe, migrate, got "tunnel"',
      'baton.yaml:10:76: services.0.servers.5.proxyProtocol: must be v1 or v2, got "v3"',
    ])
  })

  it('checks addresses, thresholds and socket paths of servers', () => {
    expect(issuesOf(yaml(LISTEN, 'services:', '  - name: api', '    servers:',
      '      - { name: a, address: "10.0.0.1:0" }',
      '      - { name: b, handoff: /b.sock, maxConns: 10, minConns: 20 }',
      `      - { name: c, handoff: /${'x'.repeat(120)} }`))).toEqual([
      'baton.yaml:5:29: services.0.servers.0.address: must be "host:port" (IPv6 as "[::1]:port"): port must be an integer 1..65535, got "10.0.0.1:0"',
      'baton.yaml:6:62: services.0.servers.1.minConns: must be <= maxConns (10), got 20',
      `baton.yaml:7:29: services.0.servers.2.handoff: must be at most 107 bytes once resolved (/${'x'.repeat(120)}), got "/${'x'.repeat(76)}..."`,
    ])
  })

  it('checks persistence', () => {
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    persistent: { timeoutS: 0, netmask: 129 }'))).toEqual([
      'baton.yaml:5:29: services.0.persistent.timeoutS: must be an integer 1..31536000, got 0',
      'baton.yaml:5:41: services.0.persistent.netmask: must be an integer 0..128, got 129',
    ])
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    persistent: yes'))).toEqual([
      'baton.yaml:5:17: services.0.persistent: must be true or a map, got "yes"',
    ])
  })

  it('lists the valid schedulers for an unknown one', () => {
    const [line, ...rest] = issuesOf(yaml(LISTEN, ...SERVICE, '    scheduler: fastest'))
    expect(rest).toEqual([])
    expect(line).toMatch(/^baton\.yaml:5:16: services\.0\.scheduler: unknown scheduler "fastest" \(valid: .*\bwlc\b.*\)$/)
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    scheduler: { name: nope }'))[0])
      .toMatch(/^baton\.yaml:5:24: services\.0\.scheduler\.name: unknown scheduler "nope"/)
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    scheduler: { weight: 1 }'))).toEqual([
      'baton.yaml:5:16: services.0.scheduler.name: is required',
    ])
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    scheduler: 5'))).toEqual([
      'baton.yaml:5:16: services.0.scheduler: must be a scheduler name or a map { name, ...options }, got 5',
    ])
  })

  it("passes scheduler options to the scheduler's parser and reports its issues in place", () => {
    const lines = issuesOf(yaml(LISTEN, ...SERVICE, '    scheduler: { name: wlc, colour: blue }'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^baton\.yaml:5:37: services\.0\.scheduler\.colour: .*colour/)
  })

  it("reports the key parser's issues in place", () => {
    const lines = issuesOf(yaml(LISTEN, ...SERVICE, '    key: { nonsense: 1 }'))
    expect(lines.length).toBeGreaterThan(0)
    expect(lines[0]).toMatch(/^baton\.yaml:5:\d+: services\.0\.key\b/)
  })
})

describe('routes', () => {
  const routes = (...lines: string[]): string[] => issuesOf(yaml(LISTEN, ...SERVICE, 'routes:', ...lines))

  it('checks each match predicate', () => {
    expect(routes(
      '  - match: { path: static, pathRegex: "(a" }',
      '    service: api',
      '  - match: { host: [ok.example.com, "a.*.example.com"], method: [GET, "GE T"], header: { X-N: 1 } }',
      '    service: api',
      '  - match: { header: [ { name: X-A, value: a, regex: b }, { name: "a b" } ] }',
      '    service: api',
    )).toEqual([
      'baton.yaml:6:20: routes.0.match.path: must be a path starting with "/", got "static"',
      'baton.yaml:6:39: routes.0.match.pathRegex: must be a valid RE2 regular expression (missing closing ): `(a`), got "(a"',
      'baton.yaml:8:37: routes.1.match.host.1: must be a host name ("*." allowed only as the first label), got "a.*.example.com"',
      'baton.yaml:8:71: routes.1.match.method.1: must be an HTTP method (token characters only), got "GE T"',
      'baton.yaml:8:95: routes.1.match.header.X-N: must be a string (quote numbers and booleans), got 1',
      'baton.yaml:10:24: routes.2.match.header.0: give value or regex, not both',
      'baton.yaml:10:67: routes.2.match.header.1.name: must be a header name (token characters only), got "a b"',
    ])
  })

  it('refuses what RE2 cannot run in linear time, naming the key, the reason and the pattern at its position', () => {
    expect(routes(
      '  - match: { pathRegex: "^/(a)\\\\1" }',
      '    service: api',
      '  - match: { pathRegex: "^/a(?=b)" }',
      '    service: api',
      '  - match: { header: [ { name: X-A, regex: "(?<!x)y" }, { name: X-B, regex: "\\\\u0041" } ] }',
      '    service: api',
      '  - { match: { pathRegex: "(?i)^/ok/(?<id>[0-9]+)$" }, service: api }',
    )).toEqual([
      'baton.yaml:6:25: routes.0.match.pathRegex: must be a valid RE2 regular expression (invalid escape sequence: `\\1` (RE2 has no backreferences)), got "^/(a)\\\\1"',
      'baton.yaml:8:25: routes.1.match.pathRegex: must be a valid RE2 regular expression (invalid or unsupported Perl syntax: `(?=` (RE2 has no lookahead)), got "^/a(?=b)"',
      'baton.yaml:10:44: routes.2.match.header.0.regex: must be a valid RE2 regular expression (lookbehind is not supported: `(?<!x)y`), got "(?<!x)y"',
      'baton.yaml:10:77: routes.2.match.header.1.regex: must be a valid RE2 regular expression (invalid escape sequence: `\\u` (write \\x{263A} for a code point)), got "\\\\u0041"',
    ])
  })

  it('refuses Set-Cookie in header predicates: Node gives the application a list', () => {
    expect(routes(
      '  - { match: { header: { Set-Cookie: x } }, service: api }',
      '  - { match: { header: [ { name: set-cookie } ] }, service: api }',
    )).toEqual([
      'baton.yaml:6:38: routes.0.match.header.Set-Cookie: must not be Set-Cookie (a response header; Node gives the application a list, not a value), got "x"',
      'baton.yaml:7:34: routes.1.match.header.0.name: must not be Set-Cookie (a response header; Node gives the application a list, not a value), got "set-cookie"',
    ])
  })

  it('refuses path parameters and empty segments in path and pathExact: requests are routed without them', () => {
    expect(routes(
      '  - { match: { path: "/a;v=1/" }, service: api }',
      '  - { match: { pathExact: "/a//b" }, service: api }',
      '  - { match: { path: "/a%3bb" }, service: api }',
    )).toEqual([
      'baton.yaml:6:22: routes.0.match.path: must not hold ";", "%3B" or "//" (requests are routed without path parameters; "//" is refused), got "/a;v=1/"',
      'baton.yaml:7:27: routes.1.match.pathExact: must not hold ";", "%3B" or "//" (requests are routed without path parameters; "//" is refused), got "/a//b"',
      'baton.yaml:8:22: routes.2.match.path: must not hold ";", "%3B" or "//" (requests are routed without path parameters; "//" is refused), got "/a%3bb"',
    ])
  })

  it('needs routes to name defined services', () => {
    expect(routes('  - { service: nope }')).toEqual(['baton.yaml:6:16: routes.0.service: no service named "nope"'])
    expect(routes('  - { match: { path: / } }')).toEqual(['baton.yaml:6:5: routes.0.service: is required'])
  })

  it('reports routes after a match-everything route as unreachable', () => {
    expect(routes('  - { service: api }', '  - { name: late, match: { path: /x }, service: api }', '  - { match: {}, service: api }')).toEqual([
      'baton.yaml:7:5: routes.1: unreachable: routes.0 ("route-0") before it matches every request',
      'baton.yaml:8:5: routes.2: unreachable: routes.0 ("route-0") before it matches every request',
    ])
  })

  it('reports duplicate route names, including defaults', () => {
    expect(routes('  - { name: route-1, match: { path: /a }, service: api }', '  - { match: { path: /b }, service: api }')).toEqual([
      'baton.yaml:7:5: routes.1.name: duplicate route name "route-1" (first used by routes.0)',
    ])
  })

  it('refuses an empty routes list', () => {
    expect(routes().length).toBe(1)
    expect(issuesOf(yaml(LISTEN, ...SERVICE, 'routes: []'))).toEqual([
      'baton.yaml:5:9: routes: must list at least one route (or leave routes out: everything goes to the first service), got an empty list',
    ])
  })
})

describe('reporting', () => {
  it('reports every issue at once, in file order', () => {
    const lines = issuesOf(yaml(
      'listen: nowhere',
      'limits: { maxHeaderBytes: 10 }',
      'services:',
      '  - name: api',
      '    servers:',
      '      - { name: a, handoff: /a.sock, weight: -1 }',
      '      - { name: a, address: "10.0.0.1:80", forward: handoff }',
      'routes:',
      '  - { service: api }',
      '  - { service: web }',
    ), 'conf/b.yaml')
    expect(lines).toEqual([
      'conf/b.yaml:1:9: listen: must be "host:port" (IPv6 as "[::1]:port"), got "nowhere"',
      'conf/b.yaml:2:27: limits.maxHeaderBytes: must be an integer 256..1048576, got 10',
      'conf/b.yaml:6:46: services.0.servers.0.weight: must be an integer 0..65535, got -1',
      'conf/b.yaml:7:17: services.0.servers.1.name: duplicate server name "a" (first used by services.0.servers.0)',
      'conf/b.yaml:7:53: services.0.servers.1.forward: "handoff" needs a handoff: socket, not address:',
      'conf/b.yaml:10:5: routes.1: unreachable: routes.0 ("route-0") before it matches every request',
      'conf/b.yaml:10:16: routes.1.service: no service named "web"',
    ])
  })

  it('throws ConfigError with code, paths and positions', () => {
    try {
      parseConfig(yaml(LISTEN, 'services: 3'), 'x.yaml')
      expect.unreachable()
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      const e = err as ConfigError
      expect(e.code).toBe('BATON_ERR_CONFIG_INVALID')
      expect(e.issues).toEqual([{ path: 'services', message: 'services: must be a list of services, got 3', file: 'x.yaml', line: 2, col: 11 }])
    }
  })

  it('throws BATON_ERR_CONFIG_READ for a file it cannot read', () => {
    expect(() => loadConfigFile('/nonexistent/baton.yaml')).toThrow(BatonError)
    try {
      loadConfigFile('/nonexistent/baton.yaml')
    } catch (err) {
      expect((err as BatonError).code).toBe('BATON_ERR_CONFIG_READ')
      expect((err as Error).message).toBe('/nonexistent/baton.yaml:1:1: cannot read the configuration (ENOENT: no such file or directory)')
    }
  })
})
