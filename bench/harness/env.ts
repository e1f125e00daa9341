// Where the benchmark runs: a private network namespace when permitted (its own loopback, exact TCP
// counters, its own TIME_WAIT table, no other traffic), with the open-file soft limit raised to the hard
// limit for the harness and every child. Also the versions that go into RESULTS.md.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { which } from './process'

const INNER_ENV = 'BATON_BENCH_INNER'
const NETNS_ENV = 'BATON_BENCH_NETNS'
/** Raise the soft fd limit to the hard one, then run the harness ("$0" "$@"). */
const RAISE = 'ulimit -n "$(ulimit -H -n)" 2>/dev/null; exec "$0" "$@"'

export function isInner (): boolean { return process.env[INNER_ENV] === '1' }
export function inNetns (): boolean { return process.env[NETNS_ENV] === '1' }

function netnsWorks (): boolean {
  if (which('unshare') === undefined || which('ip') === undefined) return false
  const r = spawnSync('unshare', ['--net', 'sh', '-c', 'ip link set lo up'], { stdio: 'ignore', timeout: 5000 })
  return r.status === 0
}

/**
 * Runs this same script again inside `unshare --net` (or plainly when that is not permitted) with the fd
 * limit raised; resolves with its exit code. The child sees BATON_BENCH_INNER=1.
 */
export async function reexec (script: string, argv: readonly string[], wantNetns: boolean): Promise<number> {
  const netns = wantNetns && netnsWorks()
  if (wantNetns && !netns) console.log('note: cannot create a private network namespace here (unshare --net); running on the host loopback')
  const env = { ...process.env, [INNER_ENV]: '1', [NETNS_ENV]: netns ? '1' : '0' }
  const inner = [process.execPath, script, ...argv]
  const [cmd, args] = netns
    ? ['unshare', ['--net', 'sh', '-c', `ip link set lo up && ${RAISE}`, ...inner]]
    : ['sh', ['-c', RAISE, ...inner]]
  const child = spawn(cmd, args, { stdio: 'inherit', env })
  const forward = (sig: NodeJS.Signals): void => { child.kill(sig) }
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  return await new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal !== null ? 1 : 0))))
}

function firstLine (cmd: string, args: readonly string[]): string {
  if (which(cmd) === undefined) return 'not installed'
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 })
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown'
}

export interface Versions { readonly [name: string]: string }

export function versions (repoRoot: string): Versions {
  const cpu = /model name\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'latin1'))?.[1] ?? 'unknown'
  const pkg = (file: string): string => {
    try { return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string }).version ?? '?' } catch { return '?' }
  }
  const git = spawnSync('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' })
  const dirty = spawnSync('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' })
  return {
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    cpu: `${cpu} × ${os.cpus().length}`,
    haproxy: firstLine('haproxy', ['-v']).replace(/ - https.*$/, ''),
    nginx: firstLine('nginx', ['-v']),
    wrk: firstLine('wrk', ['-v']).replace(/ Copyright.*$/, ''),
    autocannon: pkg(path.join(repoRoot, 'node_modules', 'autocannon', 'package.json')),
    baton: `${pkg(path.join(repoRoot, 'package.json'))} (git ${git.stdout?.trim() || '?'}${dirty.stdout?.trim() ? ', uncommitted changes' : ''})`
  }
}
