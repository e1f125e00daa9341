// Hostile and broken config files: alias bombs, deep nesting, bad bytes, files that are not files. Each must
// end as a ConfigError (or BATON_ERR_CONFIG_READ) whose every issue has a line and column, never as another
// exception or a hang.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfigFile, parseConfig } from '../../../src/config/load'
import { MAX_ALIAS_EXPANSION, MAX_DEPTH } from '../../../src/config/expansion'
import { MAX_CONFIG_BYTES } from '../../../src/config/read'
import { BatonError, ConfigError, formatIssue } from '../../../src/errors'
import { laughs, mergeBomb } from '../../helpers/yaml-bombs'
import { issuesOf, yaml } from './helpers'

const HEAD = ['listen: 127.0.0.1:8080', 'services:', '  - name: api', '    servers:']

function only (text: string): string {
  const issues = issuesOf(text)
  expect(issues).toHaveLength(1)
  return issues[0]!
}

describe('alias bombs', () => {
  it('reports a billion laughs at the alias that crosses the limit, at once', () => {
    const t0 = performance.now()
    // a = 11 nodes; b adds 110, c 1,110, d 11,110 (12,330 so far); each *d in e adds 11,111: the 8th crosses 100,000.
    expect(only(laughs(9))).toBe(`baton.yaml:5:37: YAML: too many alias expansions (more than ${MAX_ALIAS_EXPANSION} nodes by *d): possible billion laughs`)
    expect(performance.now() - t0).toBeLessThan(1000)
  })

  it('reports a << merge-key bomb the same way', () => {
    expect(only(mergeBomb(12))).toMatch(/^baton\.yaml:\d+:\d+: YAML: too many alias expansions \(more than 100000 nodes by \*m\d+\): possible billion laughs$/)
  })

  it('counts one large anchor used many times (linear, not exponential)', () => {
    const big = `x: &x [ ${Array(20_000).fill('1').join(', ')} ]`
    expect(only(yaml(big, ...Array.from({ length: 10 }, (_, i) => `y${i}: *x`)))).toMatch(/^baton\.yaml:6:5: YAML: too many alias expansions/) // 5 x 20,001
  })

  it('accepts ordinary aliases and merges, even hundreds of them (yaml\'s own guard stopped at 100)', () => {
    const servers = ['      - &d { name: s, handoff: /run/s.sock, weight: 2 }']
    for (let i = 0; i < 500; i++) servers.push(`      - { <<: *d, name: s${i}, handoff: /run/s${i}.sock }`)
    const config = parseConfig(yaml(...HEAD, ...servers), 'baton.yaml')
    expect(config.services[0]!.servers).toHaveLength(501)
    expect(config.services[0]!.servers[500]).toMatchObject({ name: 's499', weight: 2 })
  })

  it.each([
    ['an alias inside its own anchor', 'listen: &l [ *l ]', 'baton.yaml:1:14: YAML: alias *l is inside its own anchor (a recursive structure)'],
    ['an alias with no anchor', 'listen: *nowhere', 'baton.yaml:1:9: YAML: alias *nowhere has no anchor &nowhere before it'],
    ['a merge of a scalar', 'a: &a 1\nb: { <<: *a }', 'baton.yaml:2:10: YAML: a merge key (<<) takes a map, an alias of a map, or a list of those'],
    ['a merge of a list item that is not a map', 'a: &a { x: 1 }\nb: { <<: [ *a, 2 ] }', 'baton.yaml:2:16: YAML: a merge key (<<) takes a map, an alias of a map, or a list of those'],
  ])('reports %s with its position', (_, text, expected) => {
    expect(only(`${text}\n`)).toBe(expected)
  })
})

describe('nesting', () => {
  it.each([
    ['flow sequences', (n: number) => `listen: ${'['.repeat(n)}${']'.repeat(n)}`],
    ['flow maps', (n: number) => `listen: ${'{a: '.repeat(n)}1${'}'.repeat(n)}`],
    ['block sequences', (n: number) => `listen:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i)}-`).join('\n')} x`],
  ])('10,000 levels of %s are a positioned error, not a stack overflow', (_, make) => {
    const issue = only(make(10_000))
    expect(issue).toMatch(/^baton\.yaml:\d+:\d+: YAML: (nested too deeply to parse \(out of stack\)|nesting deeper than 64 levels)$/)
  })

  it(`points at the first node deeper than ${MAX_DEPTH} levels`, () => {
    expect(only(`listen: ${'['.repeat(100)}${']'.repeat(100)}\n`)).toBe(`baton.yaml:1:${9 + MAX_DEPTH - 1}: YAML: nesting deeper than ${MAX_DEPTH} levels`)
  })

  it('counts levels through aliases', () => {
    const lines = ['a0: &a0 x']
    for (let i = 1; i < 80; i++) lines.push(`a${i}: &a${i} [ *a${i - 1} ]`)
    expect(only(yaml(...lines))).toBe(`baton.yaml:${MAX_DEPTH}:13: YAML: nesting deeper than ${MAX_DEPTH} levels (through alias *a${MAX_DEPTH - 2})`)
  })
})

describe('characters', () => {
  it.each([
    ['NUL', '\0', 'U+0000'], ['a C0 control', '\x1b', 'U+001B'], ['DEL', '\x7f', 'U+007F'], ['a C1 control', '\x9b', 'U+009B'],
  ])('reports %s at its position', (_, ch, name) => {
    expect(only(`listen: 127.0.0.1:80\nservices: [ a${ch} ]\n`))
      .toBe(`baton.yaml:2:14: YAML: character ${name} is not allowed in YAML (write it as an escape in a double-quoted string)`)
  })

  it('accepts tabs in values, CRLF line ends and a byte-order mark', () => {
    const text = `\uFEFFlisten: "127.0.0.1:8080"\t\r\nservices:\r\n  - name: api\r\n    servers: [ { name: a, handoff: /run/a.sock } ]\r\n`
    expect(parseConfig(text, 'baton.yaml').listen).toEqual([{ host: '127.0.0.1', port: 8080 }].map((a) => expect.objectContaining(a)))
  })

  it('stays linear on a map with tens of thousands of keys, unique or repeated', () => {
    // yaml's own uniqueKeys check compared each key with all earlier ones: 20,000 keys took 6 s, a MiB hours.
    const t0 = performance.now()
    const unique = issuesOf(yaml(...Array.from({ length: 30_000 }, (_, i) => `k${i}: 1`)))
    expect(unique).toHaveLength(30_002) // listen and services missing, then one per unknown key
    const repeated = issuesOf(yaml(...Array.from({ length: 30_000 }, () => 'k: 1')))
    expect(repeated).toHaveLength(29_999)
    expect(repeated[0]).toBe('baton.yaml:2:1: YAML: duplicate key "k" (map keys must be unique)')
    expect(performance.now() - t0).toBeLessThan(5000)
  })

  it('reports duplicate keys by name, plain or quoted, block or flow', () => {
    expect(issuesOf(yaml('listen: 127.0.0.1:1', '"listen": 127.0.0.1:2', 'services:', '  - { name: a, name: b }'))).toEqual([
      'baton.yaml:2:1: YAML: duplicate key "listen" (map keys must be unique)',
      'baton.yaml:4:16: YAML: duplicate key "name" (map keys must be unique)',
    ])
  })
})

describe('files', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-hostile-'))
  afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  const write = (name: string, data: string | Buffer): string => {
    const file = path.join(dir, name)
    fs.writeFileSync(file, data)
    return file
  }
  const failure = (file: string): string => {
    try {
      loadConfigFile(file)
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.map(formatIssue).join('\n')
      expect(err).toBeInstanceOf(BatonError)
      expect((err as BatonError).code).toBe('BATON_ERR_CONFIG_READ')
      return (err as Error).message
    }
    throw new Error('expected a failure')
  }

  it('locates invalid UTF-8 and leaves a real U+FFFD alone', () => {
    const file = write('latin1.yaml', Buffer.concat([Buffer.from('listen: 127.0.0.1:80\nservices: [ "\uFFFD caf'), Buffer.from([0xe9]), Buffer.from('" ]\n')]))
    expect(failure(file)).toBe(`${file}:2:19: not valid UTF-8 (byte 0xE9); save the file as UTF-8`)
  })

  it('refuses a file over the size limit, and /dev/zero, without reading it all', () => {
    const file = write('huge.yaml', `# ${'x'.repeat(MAX_CONFIG_BYTES)}\n`)
    expect(failure(file)).toBe(`${file}:1:1: the file is larger than 1 MiB; a configuration is never that big`)
    expect(failure('/dev/zero')).toBe('/dev/zero:1:1: the file is larger than 1 MiB; a configuration is never that big')
  })

  it('reports a directory, a missing file and an empty one with a position', () => {
    expect(failure(dir)).toBe(`${dir}:1:1: cannot read the configuration (EISDIR: illegal operation on a directory)`)
    expect(failure(path.join(dir, 'none.yaml'))).toBe(`${dir}/none.yaml:1:1: cannot read the configuration (ENOENT: no such file or directory)`)
    const empty = write('empty.yaml', '')
    expect(failure(empty)).toBe(`${empty}:1:1: config: must be a map of settings, got nothing`)
  })

  it('reports a billion laughs from a file', () => {
    expect(failure(write('bomb.yaml', laughs(9)))).toMatch(/bomb\.yaml:5:37: YAML: too many alias expansions/)
  })
})

describe('anything the parser throws', () => {
  // Random mixes of YAML's structural characters, anchors and aliases: every outcome is a Config or a ConfigError.
  it('turns 3,000 random documents into a config or a ConfigError with positions', () => {
    const parts = ['[', ']', '{', '}', ',', ':', ' ', '\n', '  ', '- ', '&a ', '&b ', '*a', '*b', '<<: ', '? ', '"', "'", '!!map ', '!t ',
      'listen', 'services', 'x', '1', '#', '|', '>', '---', '...', '%YAML 1.2', '\t', '\\', '@', '`']
    let seed = 7
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    for (let i = 0; i < 3000; i++) {
      const text = Array.from({ length: 1 + rand(40) }, () => parts[rand(parts.length)]).join('')
      try {
        parseConfig(text, 'fuzz.yaml')
      } catch (err) {
        if (!(err instanceof ConfigError)) throw new Error(`${JSON.stringify(text)} threw ${String(err)}`)
        for (const issue of err.issues) expect(formatIssue(issue), JSON.stringify(text)).toMatch(/^fuzz\.yaml:\d+:\d+: /)
      }
    }
  })
})
