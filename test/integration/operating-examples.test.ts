// config/examples/: one commented file per use, each passing `baton check` (a real process); the committed
// JSON Schema (config/baton.schema.json, what the examples' yaml-language-server line points at) is what
// `baton schema` prints today.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/cluster'
import { MAIN } from '../helpers/operating'

const EXAMPLES = path.join(ROOT, 'config/examples')

function baton (...args: string[]): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('config/examples', () => {
  const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort()

  it('has one file per use', () => {
    expect(files).toEqual(expect.arrayContaining(['api-split.yaml', 'health.yaml', 'locality-cache.yaml', 'mixed.yaml', 'minimal.yaml', 'relay.yaml', 'full.yaml']))
  })

  it.each(files)('%s passes baton check', (name) => {
    const file = path.join(EXAMPLES, name)
    expect(baton('check', file)).toEqual({ code: 0, stdout: `${file}: ok\n`, stderr: '' })
  })

  it.each(['api-split.yaml', 'health.yaml', 'locality-cache.yaml', 'mixed.yaml'])('%s points editors at the schema and says what it is for', (name) => {
    const lines = fs.readFileSync(path.join(EXAMPLES, name), 'utf8').split('\n')
    expect(lines[0]).toBe('# yaml-language-server: $schema=../baton.schema.json')
    expect(lines.slice(1, 4).every((l) => l.startsWith('#'))).toBe(true)
  })
})

describe('baton schema', () => {
  it('prints the JSON Schema that config/baton.schema.json holds (regenerate: baton schema > config/baton.schema.json)', () => {
    const r = baton('schema')
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toMatchObject({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', required: ['listen', 'services'] })
    expect(r.stdout).toBe(fs.readFileSync(path.join(ROOT, 'config/baton.schema.json'), 'utf8'))
  })

  it('is listed in the help, with ctl', () => {
    const help = baton('--help').stdout
    expect(help).toContain('schema ')
    expect(help).toContain('ctl COMMAND')
  })
})
