// `baton host dispatcher|realserver`: the host setup of migrate (docs/migrate.md), applied, printed as
// shell commands (--dry-run) or removed. Exit codes: 0 done, 1 a command failed or no CAP_NET_ADMIN
// (the message names the command), 2 usage.
import { parseArgs } from 'node:util'
import { DEFAULT_STATE_DIR, applyPlan, readRecord, recordPath, removeRecorded } from '../host/apply'
import { renderApply, renderRemove } from '../host/commands'
import { type Role, planFor } from '../host/plan'
import { guessDev, hasNetAdmin, hostSystem } from '../host/system'
import { parseIPv4 } from '../net/ip'

export const HOST_USAGE = `Usage: baton host dispatcher --vip IP [--port N] [--dev IF] [--dry-run | --remove]
       baton host realserver --vip IP [--dev IF] [--dry-run | --remove]

Sets up this host for migrate forwarding (docs/migrate.md says what each step is for):
  dispatcher   ip_forward=1; send_redirects=0 (all, IF); rp_filter loose or 0; the VIP on IF (kept if
               it is there already); the local table's ip rule moved from pref 0 to 1000, below the
               dispatcher's fwmark rules; nft table ip baton (notrack for VIP:port, the flow map, the
               frozen-flow drop, counters)
  realserver   the VIP on lo; arp_ignore=1 and arp_announce=2 (all, lo, IF); rp_filter loose or 0;
               nft table ip baton_realserver (drops a migrated flow's packets that arrive before the
               agent has restored its socket, instead of answering them with RST)

Options:
      --vip IP         the virtual IPv4 address clients connect to
      --port N         dispatcher: the VIP's TCP port (default 80)
      --dev IF         the interface facing the clients and hosts (default: the one holding the VIP or
                       routing to it, else the default route's)
      --dry-run        print the commands as a shell script instead of running them (no root needed);
                       with --remove, print what --remove would run
      --remove         undo exactly what earlier applies changed here (they are recorded in
                       --state-dir, one file per role and network namespace)
      --state-dir DIR  where the record is kept (default ${DEFAULT_STATE_DIR})

Applying again changes only what is not in effect. Needs root (CAP_NET_ADMIN) unless --dry-run.
`

class HostUsageError extends Error {}

interface HostArgs {
  readonly role: Role; readonly vip: string; readonly port: number; readonly dev: string | undefined
  readonly dryRun: boolean; readonly remove: boolean; readonly stateDir: string
}

function parse (argv: readonly string[]): HostArgs | 'help' {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        vip: { type: 'string' }, port: { type: 'string' }, dev: { type: 'string' },
        'dry-run': { type: 'boolean' }, remove: { type: 'boolean' }, 'state-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    throw new HostUsageError((err as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help === true || positionals[0] === 'help') return 'help'
  const [role, ...rest] = positionals
  if (role !== 'dispatcher' && role !== 'realserver') throw new HostUsageError(role === undefined ? 'missing dispatcher or realserver' : `unknown role "${role}" (dispatcher or realserver)`)
  if (rest.length > 0) throw new HostUsageError(`unexpected "${rest.join(' ')}"`)
  const vip = values.vip
  if (vip === undefined) throw new HostUsageError('--vip is required')
  if (parseIPv4(vip) < 0) throw new HostUsageError(`--vip must be an IPv4 address, got "${vip}"`)
  if (role === 'realserver' && values.port !== undefined) throw new HostUsageError('--port is for the dispatcher only')
  const portText = values.port ?? '80'
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new HostUsageError(`--port must be 1..65535, got "${portText}"`)
  const dev = values.dev
  if (dev !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(dev)) throw new HostUsageError(`--dev must be an interface name, got "${dev}"`)
  if (dev === 'lo') throw new HostUsageError('--dev must be the interface facing the other hosts, not lo')
  return { role, vip, port, dev, dryRun: values['dry-run'] === true, remove: values.remove === true, stateDir: values['state-dir'] ?? DEFAULT_STATE_DIR }
}

export function host (argv: readonly string[], out: (s: string) => void, err: (s: string) => void): number {
  let args
  try {
    args = parse(argv)
  } catch (e) {
    if (!(e instanceof HostUsageError)) throw e
    err(`baton host: ${e.message}\n\n${HOST_USAGE}`)
    return 2
  }
  if (args === 'help') {
    out(HOST_USAGE)
    return 0
  }
  const file = recordPath(args.stateDir, args.role)
  const title = `baton host ${args.role} --vip ${args.vip}${args.role === 'dispatcher' ? ` --port ${args.port}` : ''}`
  const say = (line: string): void => { out(`${line}\n`) }
  try {
    if (args.remove) {
      if (args.dryRun) {
        out(renderRemove(`${title} --remove (from ${file})`, readRecord(file)?.changes ?? []))
        return 0
      }
      if (!hasNetAdmin()) return noPrivilege(err)
      return report(removeRecorded(file, hostSystem, say), err)
    }
    const dev = args.dev ?? guessDev(args.vip)
    if (dev === undefined) {
      err(`baton host: cannot tell which interface faces the other hosts: give --dev IF\n`)
      return 2
    }
    const options = { vip: args.vip, port: args.port, dev }
    const steps = planFor(args.role, options)
    if (args.dryRun) {
      out(renderApply(args.role, `${title} --dev ${dev}`, steps))
      return 0
    }
    if (!hasNetAdmin()) return noPrivilege(err)
    return report(applyPlan(args.role, options, steps, hostSystem, file, say), err)
  } catch (e) { // reading the host (ip -j ...) failed before anything was changed
    err(`baton host: ${(e as Error).message}\n`)
    return 1
  }
}

function noPrivilege (err: (s: string) => void): number {
  err('baton host: changing sysctls, addresses, ip rules and nftables needs root (CAP_NET_ADMIN); nothing was changed. --dry-run prints the commands instead.\n')
  return 1
}

function report (result: ReturnType<typeof removeRecorded>, err: (s: string) => void): number {
  if (result.ok) return 0
  err(`baton host: ${result.error}\n`)
  return 1
}
