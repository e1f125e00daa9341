// The policy route of one agent server: packets of its flows carry mark N (migrate-flows.ts), and
//   ip rule add pref 100+N fwmark N lookup N
//   ip route replace VIP/32 via AGENT_HOST table N        (each VIP)
// send them to the agent's host with the destination unchanged (LVS direct routing). Installed when the
// server attaches and removed when it is gone, by spawning `ip` (never per connection). Marks are 1..252:
// 253..255 are the kernel's default, main and local tables, and 0xff is also the freeze mark. The host setup
// (`baton host dispatcher`) moves the `local` table rule below pref 1000, so these rules come first.
//
// An agent on a loopback address runs on this host: the restored socket receives the flow's packets here, so
// no route is needed (and `via 127.0.0.1` would be refused); tests and single-host setups use that.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { isLoopback } from '../net/ip'

export const MAX_MARK = 252
const RULE_PREF_BASE = 100

/** Whether an agent at `host` needs a policy route (false: it runs on this host). */
export function needsRoute (host: string): boolean {
  return !isLoopback(host)
}

/**
 * Whether this host (network namespace) hands no received TCP packet to a socket before routing it: early
 * demux off (net.ipv4.ip_early_demux or tcp_early_demux 0, as `baton host dispatcher` sets it). Then a
 * flow's steer mark routes its packets away even while the dispatcher's socket for it still exists, and a
 * migration can steer first and freeze never (migrate-flows.ts moveOut). Read from /proc; false if unreadable.
 */
export function earlyDemuxOff (): boolean {
  try {
    const on = (name: string): boolean => readFileSync(`/proc/sys/net/ipv4/${name}`, 'latin1').trim() !== '0'
    return !(on('ip_early_demux') && on('tcp_early_demux'))
  } catch {
    return false
  }
}

/** Runs `ip args`; resolves with stderr's text on failure (ok = undefined). */
function ip (args: readonly string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('ip', args, { timeout: 5000 }, (err, _stdout, stderr) => {
      resolve(err === null ? undefined : `ip ${args.join(' ')}: ${String(stderr).trim() || err.message}`)
    })
  })
}

/** Installs mark's rule and its table's routes (idempotent: an older rule of the same mark is replaced). */
export async function installRoute (mark: number, vips: readonly string[], via: string): Promise<string | undefined> {
  await removeRoute(mark)
  const rule = await ip(['rule', 'add', 'pref', String(RULE_PREF_BASE + mark), 'fwmark', String(mark), 'lookup', String(mark)])
  if (rule !== undefined) return rule
  for (const vip of vips) {
    const r = await ip(['route', 'replace', `${vip}/32`, 'via', via, 'table', String(mark)])
    if (r !== undefined) return r
  }
  return undefined
}

/** Removes mark's rule and flushes its table; never fails (what is not there is fine). */
export async function removeRoute (mark: number): Promise<void> {
  await ip(['rule', 'del', 'pref', String(RULE_PREF_BASE + mark)])
  await ip(['route', 'flush', 'table', String(mark)])
}
