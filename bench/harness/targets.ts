// The targets the load is sent to. Each is started once per run, checked with one GET /small, and kept
// running across rounds (idle between its rows). A target that cannot start is skipped (not installed,
// not built yet) or failed (installed but broken), with the reason printed in its rows.
import type { Backend } from './backend-proc'
import { batonMissing, startBaton, type BatonMethod } from './baton'
import type { TargetName } from './options'
import { INSTALL_HINT, startHaproxy, startNginx } from './peers'
import { freePort, waitReady, type Child } from './process'

export interface RunningTarget {
  readonly name: TargetName
  readonly port: number
  /** Root pids of the balancer; its CPU and RSS are summed over their process trees. Empty for direct. */
  readonly pids: readonly number[]
  /** Why the target died, or undefined while it runs. */
  died (): string | undefined
  stop (): Promise<void>
}

export type StartResult =
  | { readonly state: 'ok', readonly target: RunningTarget }
  | { readonly state: 'skipped' | 'failed', readonly reason: string }

export interface TargetContext {
  readonly dir: string
  readonly backend: Backend
  readonly maxConns: number
  readonly connections: number
  readonly fdLimit: number
}

const READY_TIMEOUT_MS = 10_000

function fromChild (name: TargetName, port: number, child: Child): RunningTarget {
  return {
    name,
    port,
    pids: [child.pid],
    died: () => {
      const e = child.exited()
      return e === undefined ? undefined : `${child.name} exited (${e}):\n${child.tail()}`
    },
    stop: async () => await child.stop()
  }
}

async function startChildTarget (name: TargetName, port: number, child: Child | undefined, missing: string): Promise<StartResult> {
  if (child === undefined) return { state: 'skipped', reason: missing }
  try {
    await waitReady(child, port, '/small', READY_TIMEOUT_MS)
    return { state: 'ok', target: fromChild(name, port, child) }
  } catch (err) {
    await child.stop()
    return { state: 'failed', reason: (err as Error).message }
  }
}

async function startBatonTarget (name: TargetName, method: BatonMethod, ctx: TargetContext,
  keepAlive: 'reroute' | 'sticky' = 'reroute'): Promise<StartResult> {
  const missing = batonMissing()
  if (missing !== undefined) return { state: 'skipped', reason: missing }
  if (method === 'handoff' && !ctx.backend.handoffState.startsWith('ok')) {
    return { state: 'failed', reason: `the back end cannot take handoffs: ${ctx.backend.handoffState}` }
  }
  const port = await freePort()
  const child = startBaton(method, { dir: ctx.dir, port, backendPort: ctx.backend.port, handoffPath: ctx.backend.handoffPath, keepAlive })
  return await startChildTarget(name, port, child, '')
}

export async function startTarget (name: TargetName, ctx: TargetContext): Promise<StartResult> {
  const backendPort = ctx.backend.port
  if (name === 'direct') {
    return { state: 'ok', target: { name, port: backendPort, pids: [], died: () => ctx.backend.exited(), stop: async () => {} } }
  }
  if (name === 'baton-handoff') return await startBatonTarget(name, 'handoff', ctx)
  if (name === 'baton-splice') return await startBatonTarget(name, 'splice', ctx)
  if (name === 'baton-pipe') return await startBatonTarget(name, 'pipe', ctx)
  if (name === 'baton-splice-sticky') return await startBatonTarget(name, 'splice', ctx, 'sticky')
  if (name === 'baton-pipe-sticky') return await startBatonTarget(name, 'pipe', ctx, 'sticky')
  const port = await freePort()
  const peer = { dir: ctx.dir, port, backendPort, maxConns: ctx.maxConns, connections: ctx.connections, fdLimit: ctx.fdLimit }
  if (name === 'nginx') return await startChildTarget(name, port, startNginx(peer), `nginx is not installed (${INSTALL_HINT})`)
  const mode = name === 'haproxy-http' ? 'http' : 'tcp'
  return await startChildTarget(name, port, startHaproxy(mode, peer), `haproxy is not installed (${INSTALL_HINT})`)
}
