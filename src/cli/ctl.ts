// `baton ctl`: the running switch's admin API from the command line, as ipvsadm is to IPVS. Every command
// is one HTTP request (undici) to the admin API (ctl-target.ts finds it); nothing here changes a server
// itself. Exit codes: 0 done, 1 the admin API is unreachable or refused (its error code is printed),
// 2 usage.
import { parseArgs } from 'node:util'
import { Agent, request, type Dispatcher } from 'undici'
import { CtlError, resolveAdminTarget, type AdminTarget } from './ctl-target'

export const CTL_USAGE = `Usage: baton ctl <command> [options]

Commands:
  list [--stats] [--rate] [--json]         every real server: method, state, weight/configWeight, active, inactive;
                                           --stats adds CONNS (connections scheduled to it), INBYTES and
                                           OUTBYTES (relayed client to server and back; 0 for handoff), with
                                           a line per service summing its servers (ipvsadm -L -n --stats);
                                           --rate adds CPS, INBPS and OUTBPS, averaged as ipvsadm's estimator
                                           does (every 2 s, a quarter of the way to the new rate)
  weight SERVICE SERVER N                  set the server's weight (0..65535; 0 = no new connections)
  drain SERVICE SERVER                     state drain: no new connections, open ones finish
  state SERVICE SERVER up|drain|maint      set the operator's state of the server
  add SERVICE SERVER (--handoff PATH | --address HOST:PORT) [--weight N] [--forward splice|pipe]
                                           add a real server
  remove SERVICE SERVER                    remove a real server (its open connections finish)
  reload                                   read, check and apply the config file; prints its issues if any

Options:
  -c, --config FILE   find the admin API (admin.listen or admin.socket) and token here (default config/baton.yaml)
      --admin ADDR    the admin API at HOST:PORT or a Unix socket path ('@name': abstract)
      --token TOKEN   bearer token (default: BATON_ADMIN_TOKEN, then admin.token or admin.tokenFile)
      --json          list: print JSON instead of a table (every field: counters and rates included)
      --stats, --rate list: the counter and rate columns (see list)

Changes made with ctl are not written to the config file: the next reload puts back what the file says.
`

/** A usage mistake: printed with the usage, exit 2. */
export class CtlUsageError extends Error {
  override name = 'CtlUsageError'
}

interface Call {
  readonly what: string
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  readonly path: string
  readonly body?: unknown
  readonly print: (body: unknown) => string
}

interface Row {
  service: string; id: string; method: string; state?: string; up: boolean; weight: number; configWeight: number
  active: number; inactive: number; fallback?: boolean; overloaded?: boolean
  connections?: number; inBytes?: number; outBytes?: number; cps?: number; inBps?: number; outBps?: number
}

export async function ctl (argv: readonly string[], env: NodeJS.ProcessEnv, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' }, admin: { type: 'string' }, token: { type: 'string' },
        json: { type: 'boolean' }, handoff: { type: 'string' }, address: { type: 'string' },
        weight: { type: 'string' }, forward: { type: 'string' }, help: { type: 'boolean', short: 'h' },
        stats: { type: 'boolean' }, rate: { type: 'boolean' },
      },
    })
  } catch (e) {
    throw new CtlUsageError((e as Error).message)
  }
  const { values: v, positionals: [command, ...args] } = parsed
  if (v.help === true || command === 'help') { out(CTL_USAGE); return 0 }
  if (command === undefined) throw new CtlUsageError('missing ctl command')
  const call = callFor(command, args, v)
  let target: AdminTarget
  try {
    target = resolveAdminTarget({ admin: v.admin, token: v.token, config: v.config ?? 'config/baton.yaml', configGiven: v.config !== undefined }, env)
  } catch (e) {
    if (e instanceof CtlError) { err(`baton ctl: ${e.message}\n`); return 1 }
    throw e
  }
  return send(target, call, out, err)
}

function callFor (command: string, args: string[], v: Record<string, string | boolean | undefined>): Call {
  const need = (n: number, form: string): void => {
    if (args.length !== n) throw new CtlUsageError(`${command} takes ${form}, got ${args.length === 0 ? 'nothing' : `"${args.join(' ')}"`}`)
  }
  const at = (s: string, x: string): string => `/servers/${encodeURIComponent(s)}/${encodeURIComponent(x)}`
  const [s = '', x = '', third = ''] = args
  switch (command) {
    case 'list':
      need(0, 'no arguments')
      return {
        what: 'list', method: 'GET', path: '/servers',
        print: (b) => (v.json === true ? `${JSON.stringify(b, null, 2)}\n` : table(b as Row[], v.stats === true, v.rate === true)),
      }
    case 'weight':
      need(3, 'SERVICE SERVER N')
      return { what: 'weight', method: 'POST', path: `${at(s, x)}/weight`, body: { weight: integer(third, 'N') }, print: summary }
    case 'drain':
      need(2, 'SERVICE SERVER')
      return { what: 'drain', method: 'POST', path: `${at(s, x)}/state`, body: { state: 'drain' }, print: summary }
    case 'state':
      need(3, 'SERVICE SERVER up|drain|maint')
      if (!['up', 'drain', 'maint'].includes(third)) throw new CtlUsageError(`state must be up, drain or maint, got "${third}"`)
      return { what: 'state', method: 'POST', path: `${at(s, x)}/state`, body: { state: third }, print: summary }
    case 'add':
      need(2, 'SERVICE SERVER (--handoff PATH | --address HOST:PORT)')
      return { what: 'add', method: 'PUT', path: at(s, x), body: addBody(v), print: (b) => `added ${summary(b)}` }
    case 'remove':
      need(2, 'SERVICE SERVER')
      return { what: 'remove', method: 'DELETE', path: at(s, x), print: () => `removed ${s}/${x}\n` }
    case 'reload':
      need(0, 'no arguments (the switch reads its own config file)')
      return { what: 'reload', method: 'POST', path: '/reload', print: reloaded }
    default:
      throw new CtlUsageError(`unknown ctl command "${command}"`)
  }
}

function addBody (v: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const { handoff, address, weight, forward } = v
  if ((handoff === undefined) === (address === undefined)) throw new CtlUsageError('add needs exactly one of --handoff PATH or --address HOST:PORT')
  return {
    ...(typeof handoff === 'string' ? { handoff } : {}),
    ...(typeof address === 'string' ? { address } : {}),
    ...(typeof weight === 'string' ? { weight: integer(weight, '--weight') } : {}),
    ...(typeof forward === 'string' ? { forward } : {}),
  }
}

function integer (text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new CtlUsageError(`${what} must be an integer 0..65535, got "${text}"`)
  return Number(text)
}

async function send (target: AdminTarget, call: Call, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const dispatcher: Dispatcher = new Agent({
    connect: { timeout: 5000, ...(target.socketPath === undefined ? {} : { socketPath: target.socketPath }) },
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  })
  try {
    let res
    try {
      const text = call.body === undefined ? undefined : JSON.stringify(call.body)
      res = await request(`${target.url}${call.path}`, {
        method: call.method,
        dispatcher,
        headers: {
          ...(text === undefined ? {} : { 'content-type': 'application/json' }),
          ...(target.token === undefined ? {} : { authorization: `Bearer ${target.token}` }),
        },
        ...(text === undefined ? {} : { body: text }),
      })
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      const why = `${code === undefined ? '' : ` (${code})`}: ${(e as Error).message}`
      err(`baton ctl: cannot reach the admin API at ${target.label}${why}; is baton running with this admin: address?\n`)
      return 1
    }
    const raw = await res.body.text()
    let body: unknown
    try { body = JSON.parse(raw) } catch { body = undefined }
    if (res.statusCode >= 400) return refused(call, res.statusCode, body, raw, err)
    out(call.print(body))
    return 0
  } finally {
    await dispatcher.close()
  }
}

function refused (call: Call, status: number, body: unknown, raw: string, err: (s: string) => void): number {
  const e = (body ?? {}) as { code?: string, message?: string, issues?: string[] }
  if (e.code === undefined) {
    err(`baton ctl: ${call.what} refused: the admin API answered ${status}: ${raw.trim().slice(0, 200)}\n`)
    return 1
  }
  if (call.what === 'reload' && Array.isArray(e.issues)) {
    for (const line of e.issues) err(`${line}\n`)
    err(`baton ctl: reload refused (${e.code}): nothing changed\n`)
    return 1
  }
  const issues = e.issues ?? []
  err(`baton ctl: ${call.what} refused: ${e.code}: ${issues.length > 1 ? `${issues.length} issues` : e.message ?? ''} (${status})\n`)
  if (issues.length > 1) for (const line of issues) err(`  ${line}\n`)
  return 1
}

function summary (b: unknown): string {
  const r = b as Row
  return `${r.service}/${r.id}: state ${r.state ?? (r.up ? 'up' : 'down')}, weight ${r.weight}/${r.configWeight}, active ${r.active}, inactive ${r.inactive}\n`
}

function reloaded (b: unknown): string {
  const d = b as { added?: string[], removed?: string[], changed?: string[] }
  const parts = (['added', 'removed', 'changed'] as const).flatMap((k) => ((d[k] ?? []).length > 0 ? [`${k} ${d[k]!.join(', ')}`] : []))
  return `reloaded: ${parts.length === 0 ? 'no server changed' : parts.join('; ')}\n`
}

/**
 * ipvsadm -L -n as a table: one row per real server; WEIGHT is effective/configured. With stats or rate, the
 * counter and rate columns, and before each service's servers a line summing them (ipvsadm's service line).
 */
function table (rows: readonly Row[], stats: boolean, rate: boolean): string {
  const n = (x: number | undefined): string => String(Math.round(x ?? 0))
  const extra = (r: Row): string[] => [
    ...(stats ? [n(r.connections), n(r.inBytes), n(r.outBytes)] : []),
    ...(rate ? [n(r.cps), n(r.inBps), n(r.outBps)] : []),
  ]
  const head = ['SERVICE', 'SERVER', 'METHOD', 'STATE', 'WEIGHT', 'ACTIVE', 'INACTIVE',
    ...(stats ? ['CONNS', 'INBYTES', 'OUTBYTES'] : []), ...(rate ? ['CPS', 'INBPS', 'OUTBPS'] : []), '']
  const cells: string[][] = []
  for (const [i, r] of rows.entries()) {
    if ((stats || rate) && rows[i - 1]?.service !== r.service) cells.push(serviceLine(r.service, rows.filter((x) => x.service === r.service), extra))
    cells.push([r.service, r.id, r.method, r.state ?? (r.up ? 'up' : 'down'), `${r.weight}/${r.configWeight}`,
      String(r.active), String(r.inactive), ...extra(r),
      [r.fallback === true ? 'fallback' : '', r.overloaded === true ? 'overloaded' : ''].filter(Boolean).join(',')])
  }
  const all = [head, ...cells]
  const width = head.map((_, i) => Math.max(...all.map((c) => c[i]!.length)))
  const left = new Set([0, 1, 2, 3, 4, head.length - 1])
  return all.map((c) => c.map((cell, i) => (left.has(i) ? cell.padEnd(width[i]!) : cell.padStart(width[i]!))).join('  ').trimEnd()).join('\n') + '\n'
}

/** A service's line: its servers' sums, server '*'. */
function serviceLine (service: string, servers: readonly Row[], extra: (r: Row) => string[]): string[] {
  const sum = (k: keyof Row): number => servers.reduce((a, r) => a + ((r[k] as number | undefined) ?? 0), 0)
  const total: Row = {
    service, id: '*', method: '', up: true, weight: sum('weight'), configWeight: sum('configWeight'),
    active: sum('active'), inactive: sum('inactive'), connections: sum('connections'), inBytes: sum('inBytes'),
    outBytes: sum('outBytes'), cps: sum('cps'), inBps: sum('inBps'), outBps: sum('outBps'),
  }
  return [service, '*', '', '', '', String(total.active), String(total.inactive), ...extra(total), '']
}
