// The `baton` command, spawned for real from dist/ (`npm test` builds first; in a manual run, `npm run build`).
// Starting a real switch is tested with the dispatcher; here: check, help, usage errors, and a start that
// must stop at config errors before anything listens.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = resolve(__dirname, '../..')
const MAIN = join(ROOT, 'dist/src/cli/main.js')
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

function baton (...args: string[]): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 15_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

function file (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const GOOD = `listen: 127.0.0.1:0
services:
  - name: api
    servers: [ { name: a, handoff: ./a.sock } ]
`
const BAD = `listen: 127.0.0.1:0
services:
  - name: api
    servers:
      - { name: a, handoff: ./a.sock, weight: heavy }
routes:
  - { service: nope }
`

describe('baton check', () => {
  it('prints FILE: ok and exits 0 for a good file', () => {
    const path = file('good.yaml', GOOD)
    expect(baton('check', path)).toEqual({ code: 0, stdout: `${path}: ok\n`, stderr: '' })
  })

  it('prints every issue as file:line:col: message and exits 1', () => {
    file('bad.yaml', BAD)
    const r = baton('check', 'bad.yaml')
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe([
      'bad.yaml:5:47: services.0.servers.0.weight: must be an integer 0..65535, got "heavy"',
      'bad.yaml:7:16: routes.0.service: no service named "nope"',
      '',
    ].join('\n'))
  })

  it('exits 1 for a file it cannot read', () => {
    const r = baton('check', 'missing.yaml')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe('missing.yaml:1:1: cannot read the configuration (ENOENT: no such file or directory)\n')
  })

  it('passes every example in config/examples', () => {
    const examples = readdirSync(join(ROOT, 'config/examples')).filter((f) => f.endsWith('.yaml'))
    expect(examples.length).toBeGreaterThan(0)
    for (const name of examples) {
      const path = join(ROOT, 'config/examples', name)
      expect(baton('check', path)).toEqual({ code: 0, stdout: `${path}: ok\n`, stderr: '' })
    }
  })
})

describe('baton start', () => {
  it('exits 2 with the issues, before anything listens', () => {
    file('start-bad.yaml', BAD)
    const r = baton('start', '-c', 'start-bad.yaml')
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')                 // the dispatcher logs a line per listener; none was started
    expect(r.stderr.trim().split('\n')).toEqual([
      'start-bad.yaml:5:47: services.0.servers.0.weight: must be an integer 0..65535, got "heavy"',
      'start-bad.yaml:7:16: routes.0.service: no service named "nope"',
    ])
  })

  it('exits 2 when the default config/baton.yaml is missing', () => {
    const r = baton('start')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('config/baton.yaml:1:1: cannot read the configuration (ENOENT: no such file or directory)\n')
  })
})

describe('usage', () => {
  it.each([['--help'], ['-h'], ['help']])('%s prints usage on stdout and exits 0', (flag) => {
    const r = baton(flag)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^Usage: baton <command>/)
    expect(r.stdout).toContain('check FILE')
  })

  it('--version prints the package version', () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
    expect(baton('--version')).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' })
  })

  it('--list-schedulers prints each name with its description', () => {
    const r = baton('--list-schedulers')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^rr +\S/m)
    expect(r.stdout).toMatch(/^wlc +\S/m)
  })

  it.each([
    [['frobnicate'], 'baton: unknown command "frobnicate"'],
    [['check', '--frob'], "baton: Unknown option '--frob'"],
    [['start', 'extra'], 'baton: start takes no arguments (use -c FILE), got "extra"'],
    [[], 'baton: missing command'],
  ])('%j prints usage on stderr and exits 2', (args, first) => {
    const r = baton(...args)
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr.startsWith(first)).toBe(true)
    expect(r.stderr).toContain('Usage: baton <command>')
  })
})
