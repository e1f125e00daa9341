// A real server given at run time (the admin API's PUT /servers/:service/:server), checked by the same
// rules as one in the file: the schema's types and ranges (schema.ts), then handoff xor address, forward
// method and thresholds (checks.ts). Issues carry the key path and the bad value, with no file position.

import { ConfigError, type ConfigIssue } from '../errors'
import { checkServer } from './checks'
import { fromZodIssues } from './issues'
import { buildServer } from './load'
import { serverSchema } from './schema'
import type { RawIssue } from './source'
import type { HealthCheckConfig, ServerConfig } from './types'

/**
 * Builds the ServerConfig of server `name` from `raw` (the request body: every server key but `name` and
 * `health`). Relative socket paths resolve against `baseDir` (the config file's directory). The server gets
 * the service's own `health:` check, as a server listed in the file without health keys would. Throws
 * ConfigError with every issue.
 */
export function parseServerInput (raw: unknown, name: string, baseDir: string, serviceHealth: HealthCheckConfig | undefined): ServerConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ path: '', message: 'the body must be a JSON object of server settings' }])
  }
  const issues: RawIssue[] = []
  const body = raw as Record<string, unknown>
  if ('name' in body) issues.push({ path: ['name'], message: 'name: comes from the URL; leave it out of the body' })
  if ('health' in body) issues.push({ path: ['health'], message: 'health: a server added at run time gets its service\'s check; per-server checks go in the file' })
  const data = { ...body, name }
  const parsed = serverSchema(baseDir).safeParse(data)
  if (!parsed.success) issues.push(...fromZodIssues(parsed.error.issues, data))
  checkServer(data, [], issues)
  if (issues.length > 0 || !parsed.success) throw new ConfigError(issues.map(toIssue))
  const server = buildServer(parsed.data, undefined)
  return serviceHealth === undefined ? server : { ...server, health: serviceHealth }
}

function toIssue (issue: RawIssue): ConfigIssue {
  const message = issue.message.startsWith('config: ') ? issue.message.slice('config: '.length) : issue.message
  return { path: issue.path.join('.'), message }
}
