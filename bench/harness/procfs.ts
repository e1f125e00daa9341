// What the harness reads from /proc: CPU time and RSS summed over a process tree, and the TCP counters of
// the network namespace. Linux only; every reader returns 0 (not an error) for a process that is gone.
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'

let clockTicks = 0

/** USER_HZ: the unit of utime and stime in /proc/PID/stat (100 nearly everywhere). */
export function clockTicksPerSecond (): number {
  if (clockTicks > 0) return clockTicks
  try {
    clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    clockTicks = 100
  }
  return clockTicks
}

/** Fields after the command name "(...)" in /proc/PID/stat; field 3 (state) is index 0. */
function statFields (pid: number): string[] | undefined {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined
  }
  const close = text.lastIndexOf(')')
  return text.slice(close + 2).split(' ')
}

/** pid -> parent pid for every process we can see. */
function parentTable (): Map<number, number> {
  const table = new Map<number, number>()
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid)) continue
    const fields = statFields(pid)
    if (fields !== undefined) table.set(pid, Number(fields[1]))
  }
  return table
}

/** root and all its descendants that are alive now. */
export function processTree (root: number): number[] {
  const parents = parentTable()
  if (!parents.has(root)) return []
  const tree = [root]
  for (let i = 0; i < tree.length; i++) {
    for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid)
  }
  return tree
}

/** utime + stime of every thread of pid, in seconds. */
export function cpuSeconds (pid: number): number {
  const fields = statFields(pid)
  if (fields === undefined) return 0
  // stat fields 14 and 15 (utime, stime) are indexes 11 and 12 after the name.
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond()
}

export function treeCpuSeconds (roots: readonly number[]): number {
  let sum = 0
  for (const root of roots) for (const pid of processTree(root)) sum += cpuSeconds(pid)
  return sum
}

/** VmRSS in bytes. */
export function rssBytes (pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))
    return m?.[1] !== undefined ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

export function treeRssBytes (roots: readonly number[]): number {
  let sum = 0
  for (const root of roots) for (const pid of processTree(root)) sum += rssBytes(pid)
  return sum
}

/** Tcp PassiveOpens of this network namespace (exact in a private namespace, noisy otherwise). */
export function passiveOpens (): number {
  try {
    const lines = fs.readFileSync('/proc/net/snmp', 'latin1').split('\n').filter((l) => l.startsWith('Tcp:'))
    const names = lines[0]?.split(/\s+/) ?? []
    const values = lines[1]?.split(/\s+/) ?? []
    const i = names.indexOf('PassiveOpens')
    return i >= 0 ? Number(values[i]) : 0
  } catch {
    return 0
  }
}

/** The soft limit on open files of this process. */
export function openFilesLimit (): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(fs.readFileSync('/proc/self/limits', 'latin1'))
    return m?.[1] !== undefined ? Number(m[1]) : 1024
  } catch {
    return 1024
  }
}
