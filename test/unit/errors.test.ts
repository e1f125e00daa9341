// docs/errors.md lists every error code, and only real ones (fastify's errors.test.js does the same).
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { BatonError, CODES, ConfigError, formatIssue } from '../../src/errors'

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
