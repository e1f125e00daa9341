// Errno numbers and names, the one home for both (native calls return -errno; Node errors carry a code).
// Works with or without the addon: names come from os.constants.errno, with libuv's list filling the few
// it lacks (EHOSTDOWN, ESHUTDOWN, ...). Where two names share a number the first wins (EAGAIN, not
// EWOULDBLOCK), as in libuv and glibc's strerrorname_np.
import os from 'node:os'
import util from 'node:util'

/** errno name -> positive number on this platform. */
export const ERRNO = os.constants.errno as Readonly<Record<string, number>>

const NAMES = new Map<number, string>()
for (const [name, n] of Object.entries(ERRNO)) if (!NAMES.has(n)) NAMES.set(n, name)
for (const [neg, [name]] of util.getSystemErrorMap()) {
  if (neg < 0 && -neg < 3000 && !NAMES.has(-neg)) NAMES.set(-neg, name) // >= 3000: libuv's own codes
}

/** errno (positive, or negative as native calls return it) -> its name ('ECONNRESET'); `E<n>` if unknown. */
export function errnoName (errno: number): string {
  const n = Math.abs(errno)
  return NAMES.get(n) ?? `E${n}`
}

/** Positive errno of a Node error (code first, then errno), ECONNABORTED when it has none. */
export function errnoOf (err: unknown): number {
  const e = err as { code?: unknown; errno?: unknown } | null
  if (typeof e?.code === 'string' && ERRNO[e.code] !== undefined) return ERRNO[e.code] ?? 0
  if (typeof e?.errno === 'number' && e.errno !== 0) return Math.abs(e.errno)
  return ERRNO.ECONNABORTED ?? 103
}
