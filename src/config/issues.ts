// zod issues -> Baton's config issues, in HAProxy's style: `<path>: <rule>, got <value>`.
// Unknown keys become one issue per key pointing at the key itself; a missing key points at its parent.

import type { z } from 'zod'
import type { PathSegment, RawIssue } from './source'

type ZodIssue = z.core.$ZodIssue

export function fromZodIssues (issues: readonly ZodIssue[], data: unknown, base: readonly PathSegment[] = []): RawIssue[] {
  return issues.flatMap((issue) => fromZodIssue(issue, data, [...base, ...issue.path.map(toSegment)]))
}

function fromZodIssue (issue: ZodIssue, data: unknown, path: PathSegment[]): RawIssue[] {
  if (issue.code === 'unrecognized_keys') {
    const valid = issue.message.split(', ')
    return issue.keys.map((key) => ({ path: [...path, key], key: true, message: `${label([...path, key])}: ${unknownKey(key, valid)}` }))
  }
  if (issue.code === 'invalid_union') {
    // The branch whose top-level type matched (its issues are deeper, or not a type or literal mismatch)
    // explains best: `health: { rise: 0 }` is about rise, not about `false`, the other branch.
    const matched = (e: ZodIssue): boolean => e.path.length > 0 || (e.code !== 'invalid_type' && e.code !== 'invalid_value')
    const branch = issue.errors.find((errs) => errs.length > 0 && errs.every(matched))
    if (branch !== undefined) return fromZodIssues(branch, data, path)
  }
  const value = valueAt(data, path)
  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union')) return [{ path, message: `${label(path)}: is required` }]
  return [{ path, message: `${label(path)}: ${issue.message}, got ${describe(value)}` }]
}

function toSegment (seg: PropertyKey): PathSegment {
  return typeof seg === 'number' ? seg : String(seg)
}

/** Dotted path for messages; the document itself is "config". */
export function label (path: readonly PathSegment[]): string {
  return path.length === 0 ? 'config' : path.join('.')
}

/** A value as the user wrote it: strings quoted, collections named, long strings cut. */
export function describe (value: unknown): string {
  if (value === null || value === undefined) return 'nothing'
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list'
  if (value instanceof Date) return JSON.stringify(value.toISOString())
  if (typeof value === 'object') return Object.keys(value).length === 0 ? 'an empty map' : 'a map'
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)
  return String(value)
}

export function valueAt (data: unknown, path: readonly PathSegment[]): unknown {
  let node = data
  for (const seg of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[String(seg)]
  }
  return node
}

function unknownKey (key: string, valid: readonly string[]): string {
  const limit = Math.max(1, Math.floor(key.length / 3))
  const near = valid.find((k) => distance(k.toLowerCase(), key.toLowerCase()) <= limit)
  return near !== undefined
    ? `unknown key, did you mean "${near}"?`
    : `unknown key (valid keys here: ${valid.join(', ')})`
}

/** Levenshtein distance; keys are short, so the plain O(n*m) table is fine. */
function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost)
    }
    prev = row
  }
  return prev[b.length] ?? 0
}
