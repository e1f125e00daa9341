// From config to what health and the checker need: a server's policy (rise/fall, slow start, quiescent)
// and its check spec. Config time and reload only.
import type { Service } from '../cluster/service'
import type { ServerState } from '../cluster/types'
import type { HealthCheckConfig } from '../config/types'
import type { CheckSpec } from './checker'
import type { HealthPolicy } from './record'

export function policyOf (svc: Service, s: ServerState): HealthPolicy {
  const h = s.config.health
  return {
    checks: h !== undefined,
    rise: h?.rise ?? 1,
    fall: h?.fall ?? 1,
    slowStartMs: svc.config.slowStartS * 1000,
    quiescent: svc.config.quiescent,
  }
}

export function checkSpecOf (h: HealthCheckConfig): CheckSpec {
  return {
    http: h.http === undefined
      ? undefined
      : { method: h.http.method, path: h.http.path, host: h.http.host, expect: h.http.expect, body: h.http.body },
    intervalMs: h.intervalMs,
    fastIntervalMs: h.fastIntervalMs,
    timeoutMs: h.timeoutMs,
  }
}
