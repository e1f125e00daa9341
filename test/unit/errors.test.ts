// docs/errors.md lists every error code, and only real ones (fastify's errors.test.js does the same).
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { BatonError, CODES, ConfigError, formatIssue } from '../../src/errors'

const SRC = path.join(__dirname, '../../src')
const doc = fs.readFileSync(path.join(__dirname, '../../docs/errors.md'), 'utf8')

describe('error codes', () => {
  it('documents every code', () => {
    const missing = Object.keys(CODES).filter((c) => !doc.includes(`\`${c}\``))
    expect(missing).toEqual([])
  })

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/`(BATON_ERR_[A-Z_]+)`/g)].map((m) => m[1]!)
    expect(documented.filter((c) => !(c in CODES))).toEqual([])
  })

  it('raises every code somewhere in src (a code nothing raises is a stale promise)', () => {
    const files: string[] = []
    const walk = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name)
        if (e.isDirectory()) walk(p)
        else if (e.name.endsWith('.ts')) files.push(p)
      }
    }
    walk(SRC)
    // errors.ts itself counts, minus the registry that names every code.
    const src = files.map((f) => fs.readFileSync(f, 'utf8').replace(/export const CODES = \{[^}]*\}/, '')).join('\n')
    expect(Object.keys(CODES).filter((c) => !src.includes(`'${c}'`))).toEqual([])
  })

  it('follows the naming rule', () => {
    for (const c of Object.keys(CODES)) expect(c).toMatch(/^BATON_ERR_[A-Z]+(_[A-Z]+)*$/)
  })

  it('carries code, source, retryable and cause', () => {
    const cause = new Error('inner')
    const e = new BatonError('BATON_ERR_CONNECT_FAILED', 'x', { source: 'backend', retryable: true, cause })
    expect(e).toMatchObject({ code: 'BATON_ERR_CONNECT_FAILED', source: 'backend', retryable: true, cause })
  })

  it('formats config issues as file:line:col: message', () => {
    const e = new ConfigError([{ path: 'a.b', message: 'bad', file: 'f.yaml', line: 3, col: 7 }])
    expect(e.message).toBe('f.yaml:3:7: bad')
    expect(formatIssue({ path: 'a.b', message: 'bad' })).toBe('a.b: bad')
  })
})
