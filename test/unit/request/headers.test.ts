// headerValueAsNode: Node's rules for repeated fields (test/integration/node-headers.test.ts checks the
// same table against the running Node).
import { describe, expect, it } from 'vitest'
import { FIRST_WINS, headerValueAsNode, nameIs } from '../../../src/request/headers'

describe('headerValueAsNode', () => {
  it('one field: its value itself, whatever the case of the name; none: undefined', () => {
    const v = 'text/html'
    const headers = ['ACCEPT', v]
    expect(headerValueAsNode(headers, 'accept')).toBe(v)
    expect(headerValueAsNode(headers, 'accept-language')).toBeUndefined()
    expect(headerValueAsNode([], 'accept')).toBeUndefined()
    expect(headerValueAsNode(['X-E', ''], 'x-e')).toBe('')
  })

  it.each([...FIRST_WINS])('%s: the first field wins, even when empty', (name) => {
    expect(headerValueAsNode([name, 'a', name.toUpperCase(), 'b'], name)).toBe('a')
    expect(headerValueAsNode([name, '', name, 'b'], name)).toBe('')
  })

  it('other fields are joined with ", ", empty values included', () => {
    expect(headerValueAsNode(['X-Canary', 'no', 'x-canary', 'yes'], 'x-canary')).toBe('no, yes')
    expect(headerValueAsNode(['X-A', '', 'X-A', 'b', 'X-A', ''], 'x-a')).toBe(', b, ')
    expect(headerValueAsNode(['X-A', '1', 'X-B', '2', 'X-A', '3'], 'x-a')).toBe('1, 3')
  })

  it('cookie fields are joined with "; "; set-cookie gives its first; __proto__ nothing', () => {
    expect(headerValueAsNode(['Cookie', 'a=1', 'cookie', 'b=2'], 'cookie')).toBe('a=1; b=2')
    expect(headerValueAsNode(['Set-Cookie', 's=1', 'Set-Cookie', 's=2'], 'set-cookie')).toBe('s=1')
    expect(headerValueAsNode(['__proto__', 'x'], '__proto__')).toBeUndefined()
  })

  it('nameIs folds ASCII letters only', () => {
    expect(nameIs('X-Tag', 'x-tag')).toBe(true)
    expect(nameIs('X-Tag', 'x-ta')).toBe(false)
    expect(nameIs('X_Tag', 'x-tag')).toBe(false)
    expect(nameIs('\u212Aey', 'key')).toBe(false) // Kelvin sign: toLowerCase() would make it 'k'
  })
})
