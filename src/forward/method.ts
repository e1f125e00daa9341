// The one place that decides how a real server is reached, including the fallbacks when the native addon
// did not load. Config says what the operator wrote (`handoff:` or `address:`, and `forward:` if given);
// this turns it into a ForwardTarget once per server.
//
//   handoff: PATH          -> handoff (SCM_RIGHTS over the SEQPACKET channel)
//                             no addon: pipe to PATH as a stream socket, PROXY v2 so the back end learns
//                             the client (baton/backend listens that way when it has no addon either)
//   address: HOST:PORT     -> forward: as given, default splice
//                             no addon: pipe (splice needs the addon)
//   agent: HOST:PORT       -> migrate (TCP_REPAIR to that host's `baton agent`); never a fallback: without
//                             the addon or CAP_NET_ADMIN Baton refuses to start (migrate-flows.ts openFlowMap)
import assert from 'node:assert'
import type { ServerConfig } from '../config/types'
import type { ForwardMethod, ForwardTarget } from './types'

export function resolveTarget (cfg: ServerConfig, nativeOk: boolean): ForwardTarget {
  if (cfg.handoff !== undefined) {
    return nativeOk
      ? { method: 'handoff', host: '', port: 0, path: cfg.handoff, proxyProtocol: undefined }
      : { method: 'pipe', host: '', port: 0, path: cfg.handoff, proxyProtocol: 'v2' }
  }
  if (cfg.agent !== undefined) {
    return { method: 'migrate', host: cfg.agent.host, port: cfg.agent.port, path: undefined, proxyProtocol: undefined }
  }
  const address = cfg.address
  assert(address !== undefined, `server ${cfg.name} has no handoff, address or agent (config validation missed it)`)
  const wanted: ForwardMethod = cfg.forward ?? 'splice'
  const method: ForwardMethod = nativeOk ? wanted : 'pipe'
  return { method, host: address.host, port: address.port, path: undefined, proxyProtocol: cfg.proxyProtocol }
}

/** The same target: a server whose target changed is a different server to reload (removed, then added). */
export function sameTarget (a: ForwardTarget, b: ForwardTarget): boolean {
  return a.method === b.method && a.host === b.host && a.port === b.port && a.path === b.path &&
    a.proxyProtocol === b.proxyProtocol
}

/** For logs: `host:port`, `[v6]:port` or the socket path. */
export function targetName (t: ForwardTarget): string {
  return t.path ?? (t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`)
}
