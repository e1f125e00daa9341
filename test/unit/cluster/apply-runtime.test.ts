// Cluster.apply after runtime changes (the admin API, baton ctl): the file is the truth. A weight set at
// run time goes back to the file's, a server added at run time goes, one removed comes back; a server the
// reload does not touch keeps its state object (and so its counters).
import { describe, expect, it } from 'vitest'
import { Cluster } from '../../../src/cluster/cluster'
import { parseConfig } from '../../../src/config/load'
import { resolveTarget } from '../../../src/forward/method'

const config = (weights: string): ReturnType<typeof parseConfig> => parseConfig([
  'listen: 127.0.0.1:0',
  'services:',
  '  - name: s',
  `    servers: [ { name: a, handoff: /a.sock, weight: ${weights[0]} }, { name: b, handoff: /b.sock, weight: ${weights[1]} } ]`,
  '',
].join('\n'), '')

describe('Cluster.apply after runtime changes', () => {
  it('puts back the file: weights, added and removed servers', () => {
    const file = config('21')
    const c = new Cluster(file.services, (s) => resolveTarget(s, true), () => 0)
    const b = c.service('s')!.server('b')!
    c.setWeight('s', 'a', 7)
    c.addServer('s', { name: 'x', handoff: '/x.sock', weight: 1, maxConns: 0, minConns: 0 })
    c.removeServer('s', 'b')
    expect(c.snapshot().map((r) => [r.id, r.configWeight])).toEqual([['a', 7], ['x', 1]])

    const diff = c.apply(file)
    expect(diff).toEqual({ added: ['s/b'], removed: ['s/x'], changed: ['s/a'] })
    expect(c.snapshot().map((r) => [r.id, r.configWeight])).toEqual([['a', 2], ['b', 1]])
    expect(c.service('s')!.server('b')).not.toBe(b) // removed at run time: a new state, counters from zero

    const a = c.service('s')!.server('a')!
    expect(c.apply(file)).toEqual({ added: [], removed: [], changed: [] })
    expect(c.service('s')!.server('a')).toBe(a)     // untouched by a reload that changes nothing
  })
})
