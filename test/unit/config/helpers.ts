// Shared by the config tests: YAML written as a list of lines (so line numbers are easy to read off),
// and the issues of a config that must fail, formatted as `baton check` prints them.
import { expect } from 'vitest'
import { parseConfig } from '../../../src/config/load'
import { ConfigError, formatIssue } from '../../../src/errors'

export const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`

/** One minimal valid service, to append to documents that test something else. */
export const SERVICE = [
  'services:',
  '  - name: api',
  '    servers: [ { name: a, handoff: /run/a.sock } ]',
]

export function issuesOf (text: string, file = 'baton.yaml'): string[] {
  try {
    parseConfig(text, file)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).issues.map(formatIssue)
  }
  throw new Error('expected a ConfigError')
}
