// errno.ts: names with or without the addon, either sign, first name wins, and the errno of a Node error.
import { describe, expect, it } from 'vitest'

import { ERRNO, errnoName, errnoOf } from '../../../src/native/errno'

describe('errnoName', () => {
  it('names an errno of either sign', () => {
    expect(errnoName(104)).toBe('ECONNRESET')
    expect(errnoName(-104)).toBe('ECONNRESET')
    expect(errnoName(ERRNO.EMFILE ?? 0)).toBe('EMFILE')
  })

  it('takes the first of two names for one number, as libuv and glibc do', () => {
    expect(errnoName(ERRNO.EAGAIN ?? 0)).toBe('EAGAIN')
  })

  it('fills names os.constants.errno lacks from libuv, and falls back to E<n>', () => {
    expect(ERRNO.EHOSTDOWN).toBeUndefined()
    expect(errnoName(112)).toBe('EHOSTDOWN')
    expect(errnoName(3008)).toBe('E3008') // a libuv-only code (EAI_NONAME), not an errno
    expect(errnoName(0)).toBe('E0')
  })
})

describe('errnoOf', () => {
  it('takes the code first, then the errno, else ECONNABORTED', () => {
    expect(errnoOf(Object.assign(new Error('x'), { code: 'ECONNREFUSED', errno: -1 }))).toBe(ERRNO.ECONNREFUSED)
    expect(errnoOf({ code: 'ERR_STREAM_PREMATURE_CLOSE', errno: -32 })).toBe(32)
    expect(errnoOf(new Error('no errno'))).toBe(ERRNO.ECONNABORTED)
    expect(errnoOf(null)).toBe(ERRNO.ECONNABORTED)
  })
})
