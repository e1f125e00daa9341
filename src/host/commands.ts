// The commands behind each step of a host plan, and how a person reads them (--dry-run): argv arrays, run
// without a shell; `nft -f -` takes its script on stdin, printed as a here-document. Pure.
import type { Role, Step } from './plan'

export interface Command {
  readonly argv: readonly string[]
  /** stdin (the nft script). */
  readonly input?: string
}

/** What one apply changed, as recorded so that --remove undoes exactly that. */
export type Change =
  | { readonly kind: 'sysctl'; readonly key: string; readonly old: number }
  | { readonly kind: 'address'; readonly address: string; readonly dev: string }
  | { readonly kind: 'local-rule'; readonly pref: number }
  | { readonly kind: 'nft-table'; readonly table: string }

export const sysctlSet = (key: string, value: number): Command => ({ argv: ['sysctl', '-w', `${key}=${value}`] })
export const addressAdd = (address: string, dev: string): Command => ({ argv: ['ip', 'address', 'add', `${address}/32`, 'dev', dev] })
export const addressDel = (address: string, dev: string): Command => ({ argv: ['ip', 'address', 'del', `${address}/32`, 'dev', dev] })
export const localRuleAdd = (pref: number): Command => ({ argv: ['ip', 'rule', 'add', 'pref', String(pref), 'lookup', 'local'] })
export const localRuleDel = (pref: number): Command => ({ argv: ['ip', 'rule', 'del', 'pref', String(pref), 'lookup', 'local'] })
export const nftLoad = (script: string): Command => ({ argv: ['nft', '-f', '-'], input: script })
export const nftDeleteTable = (table: string): Command => ({ argv: ['nft', 'delete', 'table', 'ip', table] })

/** Every command of a step, as it runs on a host where nothing is set up yet. */
export function stepCommands (step: Step): Command[] {
  switch (step.kind) {
    case 'sysctl': return [sysctlSet(step.key, step.value)]
    case 'address': return [addressAdd(step.address, step.dev)]
    case 'local-rule': return [localRuleAdd(step.pref), localRuleDel(0)]
    case 'nft-table': return [nftLoad(step.script)]
  }
}

/** The commands that undo one recorded change. */
export function undoCommands (change: Change): Command[] {
  switch (change.kind) {
    case 'sysctl': return [sysctlSet(change.key, change.old)]
    case 'address': return [addressDel(change.address, change.dev)]
    case 'local-rule': return [localRuleAdd(0), localRuleDel(change.pref)]
    case 'nft-table': return [nftDeleteTable(change.table)]
  }
}

const SAFE = /^[A-Za-z0-9_./:=@%+-]+$/

/** One argv as a shell line; arguments outside a safe set are single-quoted. */
export function shellLine (cmd: Command): string {
  const line = cmd.argv.map((a) => (SAFE.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ')
  return cmd.input === undefined ? line : `${line} <<'EOF'\n${cmd.input.replace(/\n$/, '')}\nEOF`
}

/** Wraps text into `# ` comment lines of at most `width` characters. */
export function comment (text: string, width = 100): string[] {
  const lines: string[] = []
  let line = '#'
  for (const word of text.split(/\s+/)) {
    if (line.length + 1 + word.length > width && line !== '#') {
      lines.push(line)
      line = '#'
    }
    line += ` ${word}`
  }
  lines.push(line)
  return lines
}

/** --dry-run of an apply: a shell script a person can read and run (as root) on a host set up from scratch. */
export function renderApply (role: Role, header: string, steps: readonly Step[]): string {
  const out = [`#!/bin/sh`, `# ${header}`, `# The ${role} host's setup for Baton's migrate forwarding (docs/migrate.md). Run as root.`, 'set -e']
  let why = ''
  for (const step of steps) {
    if (step.why !== why) {
      out.push('', ...comment(step.why))
      why = step.why
    }
    for (const cmd of stepCommands(step)) out.push(shellLine(cmd))
  }
  return `${out.join('\n')}\n`
}

/** --dry-run of a remove: the undo of each recorded change, newest first. */
export function renderRemove (header: string, changes: readonly Change[]): string {
  const out = [`#!/bin/sh`, `# ${header}`, '# Undoes what `baton host` recorded it changed, newest first.', 'set -e']
  if (changes.length === 0) out.push('# (nothing recorded: nothing to undo)')
  for (const change of [...changes].reverse()) {
    out.push('', ...comment(describeChange(change)))
    for (const cmd of undoCommands(change)) out.push(shellLine(cmd))
  }
  return `${out.join('\n')}\n`
}

export function describeChange (change: Change): string {
  switch (change.kind) {
    case 'sysctl': return `${change.key} back to ${change.old}`
    case 'address': return `${change.address}/32 off ${change.dev}`
    case 'local-rule': return `the local table back to pref 0 (from ${change.pref})`
    case 'nft-table': return `table ip ${change.table} deleted`
  }
}
