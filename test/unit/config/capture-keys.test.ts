// A `capture:` key reads a group of the route's pathRegex: every route to the service must have it.
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load'
import { issuesOf, SERVICE, yaml } from './helpers'

const LISTEN = 'listen: 127.0.0.1:8080'

describe('capture keys', () => {
  const doc = (...routes: string[]): string => yaml(LISTEN, ...SERVICE, '    key: capture:user', 'routes:', ...routes)

  it('accepts routes whose pathRegex has the group', () => {
    expect(() => parseConfig(doc('  - { match: { pathRegex: "^/u/(?<user>\\\\w+)" }, service: api }'), '')).not.toThrow()
  })

  it('needs every route to the service to capture the group', () => {
    expect(issuesOf(doc('  - { match: { pathRegex: "^/u/(\\\\w+)" }, service: api }', '  - { match: { path: /x }, service: api }'))).toEqual([
      'baton.yaml:7:27: routes.0.match.pathRegex: has no group for the key capture:user of service "api"',
      'baton.yaml:8:5: routes.1: needs a match.pathRegex with the group of the key capture:user of service "api"',
    ])
  })

  it('needs routes when the first service keys on a capture', () => {
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    key: capture:1'))).toEqual([
      'baton.yaml:5:10: services.0.key: a capture: key needs routes with a match.pathRegex (there are no routes)',
    ])
  })

  it('counts numbered groups', () => {
    expect(() => parseConfig(yaml(LISTEN, ...SERVICE, '    key: capture:2', 'routes:', '  - { match: { pathRegex: "^/(a)/(b)" }, service: api }'), '')).not.toThrow()
    expect(issuesOf(yaml(LISTEN, ...SERVICE, '    key: capture:3', 'routes:', '  - { match: { pathRegex: "^/(a)/(b)" }, service: api }'))).toEqual([
      'baton.yaml:7:27: routes.0.match.pathRegex: has no group for the key capture:3 of service "api"',
    ])
  })
})
