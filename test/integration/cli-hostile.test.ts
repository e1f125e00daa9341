// `baton check` and `baton start` on hostile or broken files, as real processes: every failure is a set of
// `file:line:col: message` lines on stderr and exit 1 (check) or 2 (start), never a stack trace, a crash or
// a hang, and nothing is cut off when stderr is a pipe.
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { laughs, mergeBomb } from '../helpers/yaml-bombs'

const MAIN = join(resolve(__dirname, '../..'), 'dist/src/cli/main.js')
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-hostile-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

function baton (...args: string[]): { code: number | null, signal: string | null, stdout: string, stderr: string, ms: number } {
  const t0 = Date.now()
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 20_000, maxBuffer: 64 << 20 })
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 }
}

function file (name: string, data: string | Buffer): string {
  writeFileSync(join(dir, name), data)
  return name
}

/** Exit code, positioned lines only, no stack frame, nothing on stdout. */
function expectPositioned (r: ReturnType<typeof baton>, code: number): string[] {
  expect(r.signal).toBeNull()
  expect(r.code).toBe(code)
  expect(r.stdout).toBe('')
  expect(r.stderr).not.toMatch(/^\s+at /m)
  expect(r.stderr.endsWith('\n')).toBe(true)
  const lines = r.stderr.slice(0, -1).split('\n')
  for (const line of lines) expect(line).toMatch(/^.+:\d+:\d+: \S/)
  return lines
}

const deep = (n: number): string => `listen: ${'['.repeat(n)}${']'.repeat(n)}\n`

describe('baton check on hostile files', () => {
  it.each([
    ['a billion laughs', 'laughs.yaml', laughs(9), /^laughs\.yaml:5:37: YAML: too many alias expansions .*billion laughs$/],
    ['a << merge-key bomb', 'merge.yaml', mergeBomb(12), /^merge\.yaml:\d+:\d+: YAML: too many alias expansions .*billion laughs$/],
    ['10,000 nested flow sequences', 'deep.yaml', deep(10_000), /^deep\.yaml:1:\d+: YAML: (nested too deeply to parse|nesting deeper than 64 levels)/],
    ['100 nested flow sequences', 'deep100.yaml', deep(100), /^deep100\.yaml:1:72: YAML: nesting deeper than 64 levels$/],
    ['a recursive alias', 'rec.yaml', 'listen: 127.0.0.1:80\nservices: &s [ { name: a, servers: *s } ]\n', /^rec\.yaml:2:36: YAML: alias \*s is inside its own anchor/],
    ['an alias without anchor', 'unres.yaml', 'listen: *x\n', /^unres\.yaml:1:9: YAML: alias \*x has no anchor/],
    ['a merge of a scalar', 'mscalar.yaml', 'a: &a 1\nb: { <<: *a }\n', /^mscalar\.yaml:2:10: YAML: a merge key \(<<\) takes a map/],
    ['a NUL byte', 'nul.yaml', 'listen: 127.0.0.1:80\0\nservices: []\n', /^nul\.yaml:1:21: YAML: character U\+0000 is not allowed/],
    ['invalid UTF-8', 'latin1.yaml', Buffer.from('listen: "caf\xe9"\n', 'latin1'), /^latin1\.yaml:1:13: not valid UTF-8 \(byte 0xE9\)/],
    ['an empty file', 'empty.yaml', '', /^empty\.yaml:1:1: config: must be a map of settings, got nothing$/],
    ['duplicate keys', 'dup.yaml', 'listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n', /^dup\.yaml:2:1: YAML: duplicate key "listen" \(map keys must be unique\)$/],
    ['a file over 1 MiB', 'huge.yaml', `listen: 127.0.0.1:80\n${'#'.repeat(2 << 20)}\n`, /^huge\.yaml:1:1: the file is larger than 1 MiB/],
  ])('%s: positioned lines, exit 1, no stack', (_, name, text, first) => {
    const r = baton('check', file(name, text))
    const lines = expectPositioned(r, 1)
    expect(lines[0]).toMatch(first)
    expect(r.ms).toBeLessThan(10_000)
  })

  it('a directory, a missing file, /dev/zero', () => {
    mkdirSync(join(dir, 'adir'))
    expect(expectPositioned(baton('check', 'adir'), 1)).toEqual(['adir:1:1: cannot read the configuration (EISDIR: illegal operation on a directory)'])
    expect(expectPositioned(baton('check', 'none.yaml'), 1)).toEqual(['none.yaml:1:1: cannot read the configuration (ENOENT: no such file or directory)'])
    expect(expectPositioned(baton('check', '/dev/zero'), 1)).toEqual(['/dev/zero:1:1: the file is larger than 1 MiB; a configuration is never that big'])
  })

  it('writes every one of 12,000 issues through a pipe before it exits', () => {
    const services = Array.from({ length: 12_000 }, (_, i) => `  - { name: s${i}, servers: [ { name: a, handoff: /a.sock, weight: x } ] }`)
    const r = baton('check', file('many.yaml', `listen: 127.0.0.1:80\nservices:\n${services.join('\n')}\n`))
    const lines = expectPositioned(r, 1)
    expect(lines).toHaveLength(12_000)
    expect(lines.at(-1)).toBe('many.yaml:12002:69: services.11999.servers.0.weight: must be an integer 0..65535, got "x"')
  })
})

describe('baton start and demo on hostile files', () => {
  it('demo with a missing file: one positioned line, exit 2', () => {
    expect(expectPositioned(baton('demo', '-c', 'gone.yaml'), 2)).toEqual(['gone.yaml:1:1: cannot read the configuration (ENOENT: no such file or directory)'])
  })

  it.each([['laughs-start.yaml', laughs(9)], ['deep-start.yaml', deep(10_000)], ['nul-start.yaml', 'a: \0\n']])(
    '%s: positioned lines, exit 2, nothing listens', (name, text) => {
      expectPositioned(baton('start', '-c', file(name, text)), 2)
    })
})
