// Applies a host plan and removes it again. Apply probes each step first and changes only what is not in
// effect yet (so it is idempotent); every change is written to a record before the next command runs, so
// --remove undoes exactly what apply did, also after an apply that stopped halfway. The record lives in
// the state directory (default /run/baton/host: gone after a reboot, like the setup itself), one file per
// role and network namespace. Nothing here throws for a failed command: the result names it.
import fs from 'node:fs'
import path from 'node:path'
import { type Change, type Command, addressAdd, describeChange, localRuleAdd, localRuleDel, nftLoad, shellLine, sysctlSet, undoCommands } from './commands'
import type { HostOptions, Role, Step } from './plan'
import { type HostSystem, netnsId } from './system'

export const DEFAULT_STATE_DIR = '/run/baton/host'

export interface HostRecord {
  readonly version: 1
  readonly role: Role
  readonly vip: string
  readonly port: number
  readonly dev: string
  readonly changes: Change[]
}

export type HostResult = { readonly ok: true } | { readonly ok: false; readonly error: string }

export function recordPath (stateDir: string, role: Role): string {
  return path.join(stateDir, `${role}-netns-${netnsId()}.json`)
}

export function readRecord (file: string): HostRecord | undefined {
  let text
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const rec = JSON.parse(text) as HostRecord
  if (rec.version !== 1 || !Array.isArray(rec.changes)) throw new Error(`${file}: not a baton host record`)
  return rec
}

function writeRecord (file: string, rec: HostRecord): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 })
  fs.renameSync(tmp, file)
}

interface Decision { readonly commands: Command[]; readonly change?: Change; readonly note: string }

/** What one step needs on this host right now: nothing (a note says why) or commands and the change they make. */
function decide (step: Step, sys: HostSystem, role: Role, recorded: readonly Change[]): Decision {
  const ours = recorded.some((c) => c.kind === step.kind)
  switch (step.kind) {
    case 'sysctl': {
      const old = sys.sysctlGet(step.key)
      if (old === undefined) return { commands: [sysctlSet(step.key, step.value)], note: '' } // the command says why
      if (step.accept.includes(old)) return { commands: [], note: `kept ${step.key} = ${old}` }
      return { commands: [sysctlSet(step.key, step.value)], change: { kind: 'sysctl', key: step.key, old }, note: '' }
    }
    case 'address': {
      const held = sys.addressDev(step.address)
      if (held === undefined) return { commands: [addressAdd(step.address, step.dev)], change: { kind: 'address', address: step.address, dev: step.dev }, note: '' }
      if (role === 'realserver' && held !== 'lo') throw new Error(`${step.address} is on ${held}: a real server must hold the VIP on lo only (it would answer ARP for it)`)
      return { commands: [], note: ours ? `kept ${step.address} on ${held}` : `assumed ${step.address} on ${held}: it was there already, --remove leaves it` }
    }
    case 'local-rule': {
      const prefs = sys.localRulePrefs()
      const commands = [...(prefs.includes(step.pref) ? [] : [localRuleAdd(step.pref)]), ...(prefs.includes(0) ? [localRuleDel(0)] : [])]
      if (commands.length === 0) return { commands, note: `kept the local table at pref ${step.pref}` }
      return { commands, change: { kind: 'local-rule', pref: step.pref }, note: '' }
    }
    case 'nft-table': {
      if (sys.hasNftTable(step.table)) {
        return { commands: [], note: ours ? `kept table ip ${step.table} (--remove, then apply again, renews it)` : `assumed table ip ${step.table}: it was there already, --remove leaves it` }
      }
      return { commands: [nftLoad(step.script)], change: { kind: 'nft-table', table: step.table }, note: '' }
    }
  }
}

function runAll (commands: readonly Command[], sys: HostSystem, say: (line: string) => void): string | undefined {
  for (const cmd of commands) {
    const r = sys.run(cmd)
    const line = shellLine({ argv: cmd.argv }) + (cmd.input === undefined ? '' : ' (script on stdin)')
    if (r.status !== 0) return `\`${line}\` failed (exit ${r.status}): ${r.stderr.trim() || r.stdout.trim() || 'no message'}`
    say(`ran  ${line}`)
  }
  return undefined
}

/** Applies `steps`; say() gets one line per command run or step kept. */
export function applyPlan (role: Role, options: HostOptions, steps: readonly Step[], sys: HostSystem,
  file: string, say: (line: string) => void): HostResult {
  let rec: HostRecord
  try {
    const prev = readRecord(file)
    if (prev !== undefined && (prev.role !== role || prev.vip !== options.vip || prev.port !== options.port || prev.dev !== options.dev)) {
      return { ok: false, error: `this host is set up as ${prev.role} for ${prev.vip}:${prev.port} on ${prev.dev} (${file}): run \`baton host ${prev.role} --vip ${prev.vip} --remove\` first` }
    }
    rec = prev ?? { version: 1, role, vip: options.vip, port: options.port, dev: options.dev, changes: [] }
  } catch (err) {
    return { ok: false, error: (err as Error).message }
  }
  for (const step of steps) {
    let d: Decision
    try {
      d = decide(step, sys, role, rec.changes)
    } catch (err) {
      return { ok: false, error: (err as Error).message }
    }
    if (d.commands.length === 0) {
      say(d.note)
      continue
    }
    if (d.change !== undefined) {
      rec = { ...rec, changes: [...rec.changes, d.change] } // recorded first: a half-run step is undone too
      writeRecord(file, rec)
    }
    const failed = runAll(d.commands, sys, say)
    if (failed !== undefined) return { ok: false, error: `${failed}; what ran before is recorded in ${file} (--remove undoes it)` }
  }
  if (rec.changes.length > 0) writeRecord(file, rec)
  return { ok: true }
}

/** Undoes the recorded changes, newest first; each one leaves the record once it is undone. */
export function removeRecorded (file: string, sys: HostSystem, say: (line: string) => void): HostResult {
  let rec: HostRecord | undefined
  try {
    rec = readRecord(file)
  } catch (err) {
    return { ok: false, error: (err as Error).message }
  }
  if (rec === undefined) {
    say(`nothing recorded in ${file}: nothing to undo`)
    return { ok: true }
  }
  while (rec.changes.length > 0) {
    const change = rec.changes[rec.changes.length - 1]!
    const failed = runAll(undoNeeded(change, sys), sys, say)
    if (failed !== undefined) return { ok: false, error: `${failed}; undoing ${describeChange(change)}` }
    rec = { ...rec, changes: rec.changes.slice(0, -1) }
    writeRecord(file, rec)
  }
  fs.rmSync(file, { force: true })
  return { ok: true }
}

/** The undo commands of a change that are still needed (something else may have undone part of it). */
function undoNeeded (change: Change, sys: HostSystem): Command[] {
  switch (change.kind) {
    case 'sysctl': return undoCommands(change)
    case 'address': return sys.addressDev(change.address) === change.dev ? undoCommands(change) : []
    case 'local-rule': {
      const prefs = sys.localRulePrefs()
      return [...(prefs.includes(0) ? [] : [localRuleAdd(0)]), ...(prefs.includes(change.pref) ? [localRuleDel(change.pref)] : [])]
    }
    case 'nft-table': return sys.hasNftTable(change.table) ? undoCommands(change) : []
  }
}
