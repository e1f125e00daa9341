// Shared by repair.test.ts and nft.test.ts: what the host allows (capabilities, commands), throwaway
// network namespaces, and the fd count. Checked once per test file; a test that needs more skips with
// the reason (`skipReason`).
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'

import { native } from '../../src/native/binding'

function capEff (): bigint {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'))
  return BigInt('0x' + (line?.split(/\s+/)[1] ?? '0'))
}

const CAP_NET_ADMIN = 12n
const CAP_SYS_ADMIN = 21n

export function hasCommand (cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const host = (() => {
  const caps = process.platform === 'linux' ? capEff() : 0n
  return {
    netAdmin: ((caps >> CAP_NET_ADMIN) & 1n) === 1n,
    sysAdmin: ((caps >> CAP_SYS_ADMIN) & 1n) === 1n,
    ip: hasCommand('ip'),
    nft: hasCommand('nft'),
  }
})()

/** Why a test needing `what` cannot run here, or null if it can. */
export function skipReason (what: { netns?: boolean; nft?: boolean }): string | null {
  if (!native.available) return 'the native addon did not load'
  if (!host.netAdmin) return 'needs CAP_NET_ADMIN (TCP_REPAIR, nftables): run as root'
  if (what.netns === true && (!host.sysAdmin || !host.ip)) return 'needs CAP_SYS_ADMIN and iproute2 (`ip netns`)'
  if (what.nft === true && !host.nft) return 'needs the `nft` command (Debian package nftables)'
  return null
}

export const fdCount = (): number => fs.readdirSync('/proc/self/fd').length

/** A fresh network namespace with lo up (with that MTU); the caller deletes it with netnsDel. */
export function netnsAdd (prefix: string, loMtu?: number): string {
  const name = `${prefix}-${process.pid}-${Math.floor(Math.random() * 1e6)}`
  execFileSync('ip', ['netns', 'add', name])
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up', ...(loMtu === undefined ? [] : ['mtu', String(loMtu)])])
  return name
}

export function netnsDel (name: string): void {
  try { execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' }) } catch {}
}

/** Runs `nft -f -` with `script` inside the namespace; `nft -j ...` output is parsed when json. */
export function nftIn (ns: string, args: string[], input?: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'nft', ...args], { input, encoding: 'utf8' })
}

/** Runs fn with the main thread inside the namespace: every socket it creates belongs there. */
export async function inNetns<T> (ns: string, fn: () => Promise<T>): Promise<T> {
  const back = native.netnsEnter(`/run/netns/${ns}`)
  try {
    return await fn()
  } finally {
    native.netnsReturn(back)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export async function until (what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(1)
  }
}
