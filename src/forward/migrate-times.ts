// How long migrations take (forward/migrate.ts): baton_migrate_seconds's fixed buckets, by service, server
// and phase, and the per-step times a subscriber of migratedChannel gets (bench/migrate.ts).
import { channel } from 'node:diagnostics_channel'
import { bucketOf } from '../protocol/buckets'
import type { RequestTimes } from './types'

/**
 * Bucket bounds of the migration times (seconds, upper, inclusive; one more bucket above the last): the
 * dispatcher's part (to MIGRATE written) and the whole (to READY), baton_migrate_seconds.
 */
export const MIGRATE_BOUNDS: readonly number[] = [0.000025, 0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.1]

/**
 * Per migration, when anyone subscribes: { conn, steps } with steps the µs of MIGRATE_STEPS: encode (the
 * MIGRATE's head, first), moveOut (one addon call: freeze, dump into the frame, close, steer; or, steering
 * first, steer and dump, the old socket closed after the MIGRATE is written, off the clock), send MIGRATE,
 * the migration (the dispatcher's whole part: from the head's encode to MIGRATE written), the wait for READY,
 * and the total (to READY).
 */
export const migratedChannel = channel('baton:migrate:migrated')
export const MIGRATE_STEPS = ['encode (MIGRATE head)', 'moveOut (nft, dump, close)', 'send MIGRATE',
  'migration (head to MIGRATE sent)', 'wait READY', 'total (head to READY)'] as const

/**
 * performance.now() (ms) at each step of the dispatcher's part: t0 before the MIGRATE's head is encoded,
 * encoded (head built, just before moveOut), steered (moveOut returned), sentAt (MIGRATE written).
 */
export interface StepClock { readonly t0: number; readonly encoded: number; readonly steered: number; sentAt: number }

export class MigrateTimes {
  /** By `service\0server\0phase` (phase: dispatcher, ready). */
  readonly byKey = new Map<string, RequestTimes>()

  /** One migration's phase took `ms`. */
  record (service: string, server: string, phase: 'dispatcher' | 'ready', ms: number): void {
    const key = `${service}\0${server}\0${phase}`
    let t = this.byKey.get(key)
    if (t === undefined) this.byKey.set(key, t = { bounds: MIGRATE_BOUNDS, counts: new Float64Array(MIGRATE_BOUNDS.length + 1), sum: 0 })
    const s = ms / 1000
    t.counts[bucketOf(MIGRATE_BOUNDS, s)]!++
    t.sum += s
  }

  /** READY came at `end` (ms): the steps to migratedChannel's subscribers, if any. */
  publish (conn: number, c: StepClock, end: number): void {
    if (!migratedChannel.hasSubscribers) return
    migratedChannel.publish({ conn, steps: [c.encoded - c.t0, c.steered - c.encoded, c.sentAt - c.steered, c.sentAt - c.t0,
      end - c.sentAt, end - c.t0].map((ms) => ms * 1000) })
  }
}
