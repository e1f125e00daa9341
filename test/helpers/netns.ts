// Multi-host tests on one machine: network namespaces joined by a bridge, as in the research file's
// topology. Every namespace of a topology is named `btn-<pid>-<random>-<role>`, so parallel runs never
// collide, and the root namespace is never touched: the bridge lives in its own switch namespace, and each
// veth is created inside the switch namespace with its peer moved straight into the endpoint's.
//
//   client 10.99.N.10 ─┐
//   disp   10.99.N.2  ─┤  (VIP 10.99.N.100 on disp's eth0)
//   rs1    10.99.N.11 ─┼── br0 in the switch namespace
//   rs2    10.99.N.12 ─┘
//
// destroy() kills every process left in the namespaces (`ip netns pids`) and deletes them; it also runs
// when the test process exits without calling it, and a later run deletes namespaces whose creator died.
import { type ChildProcess, execFileSync, spawn, type SpawnOptions } from 'node:child_process'
import fs from 'node:fs'

export type Role = 'sw' | 'client' | 'disp' | 'rs1' | 'rs2'
export const ENDPOINTS = ['client', 'disp', 'rs1', 'rs2'] as const
export type Endpoint = typeof ENDPOINTS[number]

const HOST_OCTET: Readonly<Record<Endpoint, number>> = { client: 10, disp: 2, rs1: 11, rs2: 12 }
const PREFIX = 'btn'

/** Why namespaces cannot be made here, or null when they can. */
export function netnsSkipReason (): string | null {
  if (process.platform !== 'linux') return 'network namespaces are Linux only'
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'))
  const caps = BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`)
  if (((caps >> 12n) & 1n) !== 1n || ((caps >> 21n) & 1n) !== 1n) return 'making network namespaces needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)'
  for (const cmd of ['ip', 'nft', 'sysctl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    } catch {
      return `the \`${cmd}\` command is missing (Debian: iproute2, nftables, procps)`
    }
  }
  return null
}

export interface Topology {
  readonly id: string
  /** The namespace of each role. */
  readonly ns: Readonly<Record<Role, string>>
  /** The address of each endpoint, and the VIP. */
  readonly ip: Readonly<Record<Endpoint | 'vip', string>>
  /** Runs a command in an endpoint's namespace and returns its stdout; throws with its stderr. */
  exec (where: Role, argv: readonly string[], input?: string): string
  /** Starts a process in a namespace; it is killed by destroy(). */
  spawn (where: Role, argv: readonly string[], options?: SpawnOptions): ChildProcess
  destroy (): void
}

function ip (args: readonly string[], input?: string): string {
  return execFileSync('ip', args, { input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Deletes the namespaces of earlier runs whose process is gone (a run that was killed -9). */
function reapStale (): void {
  for (const line of ip(['netns', 'list']).split('\n')) {
    const m = new RegExp(`^(${PREFIX}-(\\d+)-[a-z0-9]+-[a-z0-9]+)\\b`).exec(line)
    if (m !== null && !alive(Number(m[2]))) killAndDelete(m[1]!)
  }
}

function killAndDelete (name: string): void {
  try {
    for (const pid of ip(['netns', 'pids', name]).split('\n').filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL') } catch {}
    }
  } catch {}
  try { ip(['netns', 'del', name]) } catch {}
}

/**
 * Builds the topology; `subnet` is the third octet (default: from the pid; any value works, since each
 * topology has its own bridge). Throws if a command fails, after deleting what it made.
 */
export function makeTopology (subnet = (process.pid % 200) + 20): Topology {
  reapStale()
  const id = `${PREFIX}-${process.pid}-${Math.floor(Math.random() * 36 ** 4).toString(36)}`
  const ns = { sw: `${id}-sw`, client: `${id}-client`, disp: `${id}-disp`, rs1: `${id}-rs1`, rs2: `${id}-rs2` }
  const net = `10.99.${subnet}`
  const addr = (e: Endpoint): string => `${net}.${HOST_OCTET[e]}`
  const ipOf = { client: addr('client'), disp: addr('disp'), rs1: addr('rs1'), rs2: addr('rs2'), vip: `${net}.100` }
  const children = new Set<ChildProcess>()
  let destroyed = false
  const destroy = (): void => {
    if (destroyed) return
    destroyed = true
    process.off('exit', destroy)
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const name of Object.values(ns)) killAndDelete(name)
  }
  process.on('exit', destroy)
  try {
    for (const name of Object.values(ns)) ip(['netns', 'add', name])
    ip(['-n', ns.sw, '-batch', '-'], 'link add br0 type bridge\nlink set br0 up\nlink set lo up\n')
    for (const e of ENDPOINTS) {
      ip(['-n', ns.sw, 'link', 'add', `p-${e}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns[e]])
      ip(['-n', ns.sw, 'link', 'set', `p-${e}`, 'master', 'br0', 'up'])
      ip(['-n', ns[e], '-batch', '-'], `link set lo up\naddress add ${addr(e)}/24 dev eth0\nlink set eth0 up\n`)
    }
    execFileSync('ip', ['netns', 'exec', ns.client, 'sysctl', '-q', '-w', 'net.ipv4.conf.all.accept_redirects=0', 'net.ipv4.conf.eth0.accept_redirects=0'])
  } catch (err) {
    destroy()
    throw err
  }
  return {
    id,
    ns,
    ip: ipOf,
    exec (where, argv, input) {
      return execFileSync('ip', ['netns', 'exec', ns[where], ...argv], { input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] })
    },
    spawn (where, argv, options = {}) {
      const child = spawn('ip', ['netns', 'exec', ns[where], ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...options })
      children.add(child)
      child.on('exit', () => { children.delete(child) })
      return child
    },
    destroy,
  }
}

/** The namespaces of this process that still exist (tests check that destroy() left none). */
export function leftoverNamespaces (id: string): string[] {
  return ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${id}-`))
}
