// What `baton host` reads from and runs on this host: `sysctl`, `ip`, `nft`, run with spawnSync at setup
// time only (never per connection), and /proc for the capability and the network namespace's identity.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { type Command, shellLine } from './commands'

export interface RunResult { readonly status: number; readonly stdout: string; readonly stderr: string }

/** The host as apply.ts sees it; tests may give their own. */
export interface HostSystem {
  run (cmd: Command): RunResult
  sysctlGet (key: string): number | undefined
  /** The device that holds `address` (any prefix length), or undefined. */
  addressDev (address: string): string | undefined
  /** The prefs of every IPv4 rule that looks up the local table. */
  localRulePrefs (): number[]
  hasNftTable (table: string): boolean
}

export function run (cmd: Command): RunResult {
  const r = spawnSync(cmd.argv[0]!, cmd.argv.slice(1), { input: cmd.input ?? '', encoding: 'utf8' })
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? `the \`${cmd.argv[0]!}\` command is missing (Debian: ${PACKAGE[cmd.argv[0]!] ?? 'procps, iproute2, nftables'})` : r.error.message
    return { status: 127, stdout: '', stderr: why }
  }
  return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr }
}

const PACKAGE: Readonly<Record<string, string>> = { sysctl: 'procps', ip: 'iproute2', nft: 'nftables' }

/** A command that must succeed; its error names it. */
export function mustRun (cmd: Command): string {
  const r = run(cmd)
  if (r.status !== 0) throw new Error(`\`${shellLine({ argv: cmd.argv })}\` failed: ${r.stderr.trim() || `exit ${r.status}`}`)
  return r.stdout
}

interface IpAddr { ifname: string; addr_info?: Array<{ family: string; local: string }> }
interface IpRule { priority: number; table?: string }
interface IpRoute { dev?: string; dst?: string }

function addresses (): IpAddr[] {
  return JSON.parse(mustRun({ argv: ['ip', '-j', 'address', 'show'] })) as IpAddr[]
}

export const hostSystem: HostSystem = {
  run,
  sysctlGet (key) {
    const r = run({ argv: ['sysctl', '-n', key] })
    const n = Number(r.stdout.trim())
    return r.status === 0 && r.stdout.trim() !== '' && Number.isInteger(n) ? n : undefined
  },
  addressDev (address) {
    return addresses().find((l) => l.addr_info?.some((a) => a.family === 'inet' && a.local === address) === true)?.ifname
  },
  localRulePrefs () {
    const rules = JSON.parse(mustRun({ argv: ['ip', '-4', '-j', 'rule', 'show'] })) as IpRule[]
    return rules.filter((r) => r.table === 'local').map((r) => r.priority)
  },
  hasNftTable (table) {
    return run({ argv: ['nft', 'list', 'table', 'ip', table] }).status === 0
  },
}

/**
 * The interface facing the other hosts when --dev is not given: the one that holds the VIP (dispatcher,
 * not lo), else the one the route to the VIP leaves by (not lo), else the default route's, else the only
 * UP interface with an IPv4 address besides lo. Undefined: ask for --dev.
 */
export function guessDev (vip: string): string | undefined {
  const held = hostSystem.addressDev(vip)
  if (held !== undefined && held !== 'lo') return held
  const routeDev = (argv: string[]): string | undefined => {
    const r = run({ argv })
    if (r.status !== 0) return undefined
    const dev = (JSON.parse(r.stdout) as IpRoute[])[0]?.dev
    return dev === 'lo' ? undefined : dev
  }
  const viaRoute = held === undefined ? routeDev(['ip', '-4', '-j', 'route', 'get', vip]) : undefined
  if (viaRoute !== undefined) return viaRoute
  const viaDefault = routeDev(['ip', '-4', '-j', 'route', 'show', 'default'])
  if (viaDefault !== undefined) return viaDefault
  const up = addresses().filter((l) => l.ifname !== 'lo' && l.addr_info?.some((a) => a.family === 'inet') === true)
  return up.length === 1 ? up[0]!.ifname : undefined
}

const CAP_NET_ADMIN = 12n

/** Whether this process may change the network setup (CAP_NET_ADMIN in its effective set). */
export function hasNetAdmin (): boolean {
  try {
    const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'))
    return ((BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`) >> CAP_NET_ADMIN) & 1n) === 1n
  } catch {
    return false
  }
}

/** The identity of this process's network namespace (`/proc/self/ns/net`'s device and inode). */
export function netnsId (): string {
  const st = fs.statSync('/proc/self/ns/net')
  return `${st.dev}-${st.ino}`
}
