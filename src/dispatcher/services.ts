// Services as the dispatcher uses them: the pool, plus what the hot path needs precomputed.
import { createService } from '../cluster/service'
import type { ServicePool } from '../cluster/types'
import type { KeySpec, ServiceConfig } from '../config/types'
import { getScheduler } from '../schedulers/registry'
import { extractKey } from '../schedulers/keys'
import type { RequestHead } from './types'

export interface ServiceEntry {
  readonly pool: ServicePool
  readonly key: KeySpec
  /** Whether the scheduler or persistence reads the key: otherwise it is never computed. */
  readonly usesKey: boolean
}

export function createServiceEntry (cfg: ServiceConfig): ServiceEntry {
  const factory = getScheduler(cfg.scheduler)
  return { pool: createService(cfg), key: cfg.key, usesKey: factory?.usesKey ?? false }
}

export function keyFor (entry: ServiceEntry, head: RequestHead, clientAddress: string,
  captures: RegExpExecArray | null): string | undefined {
  return entry.usesKey ? extractKey(entry.key, head, clientAddress, captures) : undefined
}
