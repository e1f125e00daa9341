// The YAML side of config loading: parse text into plain data, report syntax errors with their positions,
// and map a dotted config path back to the line:col of the node it names. Knows nothing of Baton's keys.

import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type Pair, type YAMLMap } from 'yaml'
import type { ConfigIssue } from '../errors'
import { checkExpansion, MAX_ALIAS_EXPANSION } from './expansion'

export type PathSegment = string | number

/** An issue before it is located: `key` = point at the key of the last segment, not its value. */
export interface RawIssue {
  readonly path: readonly PathSegment[]
  readonly message: string
  readonly key?: boolean
}

export interface YamlSource {
  /** The document as plain JS (maps are objects); undefined when the document had syntax errors. */
  readonly data: unknown
  /** Syntax errors and duplicate keys, already located. */
  readonly syntaxIssues: readonly ConfigIssue[]
  /** Turns a raw issue into a ConfigIssue with file, line and col (nearest existing node for missing keys). */
  locate (issue: RawIssue): ConfigIssue
}

export function readYaml (text: string, file: string): YamlSource {
  const lineCounter = countLines(text)
  const at = (offset: number, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset)
    return { path: '', message, file, line, col }
  }
  const index = new WeakMap<MapNode, Map<string, PairNode>>()
  const locateIn = (doc: Document | undefined) => (issue: RawIssue): ConfigIssue => {
    const node = doc === undefined ? undefined : findNode(doc, issue.path, issue.key === true, index)
    return { ...at(node?.range?.[0] ?? 0, issue.message), path: issue.path.join('.') }
  }
  const issues: ConfigIssue[] = []
  const bad = NOT_PRINTABLE.exec(text)
  if (bad !== null) issues.push(at(bad.index, `YAML: character ${codePoint(bad[0])} is not allowed in YAML (write it as an escape in a double-quoted string)`))
  let doc: Document
  try {
    // uniqueKeys: yaml compares each new key with every earlier one (a MiB of keys: hours).
    doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false, merge: true })
  } catch (err) {
    return { data: undefined, syntaxIssues: [...issues, at(0, `YAML: ${thrownMessage(err)}`)], locate: locateIn(undefined) }
  }
  for (const err of doc.errors) issues.push(at(err.pos[0], `YAML: ${thrownMessage(err)}`))
  for (const dup of duplicateKeys(doc)) issues.push(at(dup.offset, `YAML: duplicate key ${dup.key} (map keys must be unique)`))
  if (issues.length === 0) {
    const limit = checkExpansion(doc)
    if (limit !== undefined) issues.push(at(limit.offset, limit.message))
  }
  let data: unknown
  if (issues.length === 0) {
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSION })
    } catch (err) {
      issues.push(at(firstAlias(text), `YAML: ${thrownMessage(err)}`))
    }
  }
  issues.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0))
  return { data: issues.length === 0 ? data : undefined, syntaxIssues: issues, locate: locateIn(doc) }
}

/** YAML 1.2 allows tab, LF, CR and printable characters only (c-printable); NUL and C0/C1 controls are not. */
const NOT_PRINTABLE = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x84\x86-\x9F\uFFFE\uFFFF]/

function codePoint (ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`
}

/** Line starts, as yaml's lexer would record them, without parsing (positions stay available if it throws). */
function countLines (text: string): LineCounter {
  const lc = new LineCounter()
  lc.addNewLine(0)
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lc.addNewLine(i + 1)
  return lc
}

/** Repeated scalar keys in any map, in one pass with a Set per map (no recursion: any depth). */
function duplicateKeys (doc: Document): Array<{ offset: number, key: string }> {
  const out: Array<{ offset: number, key: string }> = []
  const stack: unknown[] = [doc.contents]
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (isMap(node)) {
      const seen = new Set<string>()
      for (const pair of node.items) {
        stack.push(pair.value, pair.key)
        const k = pair.key
        if (!isScalar(k) || typeof k.value === 'symbol' || (k.value === '<<' && k.type === 'PLAIN')) continue
        const name = String(k.value)
        if (seen.has(name)) out.push({ offset: k.range?.[0] ?? 0, key: JSON.stringify(name) })
        seen.add(name)
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item)
    }
  }
  return out
}

function thrownMessage (err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  if (err instanceof RangeError || /Maximum call stack size exceeded/.test(message)) return 'nested too deeply to parse (out of stack)'
  return firstLine(message)
}

/** yaml's messages carry a source excerpt after the first line; the position already says where. */
function firstLine (message: string): string {
  const end = message.indexOf('\n')
  return (end === -1 ? message : message.slice(0, end)).replace(/ at line \d+, column \d+:?$/, '')
}

/** Where to point a failure of toJS that carries no position: the first alias, else the start. */
function firstAlias (text: string): number {
  const m = /(^|[\s\[{,:-])\*[^\s,\[\]{}]/.exec(text)
  return m === null ? 0 : m.index + m[1]!.length
}

type MapNode = YAMLMap<unknown, unknown>
type PairNode = Pair<unknown, unknown>

/** A map's pairs by key, built once per map: locating one issue per key of a huge map stays linear. */
function pairsOf (index: WeakMap<MapNode, Map<string, PairNode>>, node: MapNode): Map<string, PairNode> {
  let byKey = index.get(node)
  if (byKey === undefined) {
    byKey = new Map()
    for (const p of node.items) {
      const k = String(isScalar(p.key) ? p.key.value : p.key)
      if (!byKey.has(k)) byKey.set(k, p) // the first of duplicates, as yaml reports them
    }
    index.set(node, byKey)
  }
  return byKey
}

/** The deepest node along `path`; with `wantKey`, the key node of the last segment if it exists. */
function findNode (doc: Document, path: readonly PathSegment[], wantKey: boolean,
  index: WeakMap<MapNode, Map<string, PairNode>>): Node | undefined {
  let node: Node | undefined = doc.contents ?? undefined
  for (let i = 0; i < path.length && node !== undefined; i++) {
    const seg = path[i]
    const last = i === path.length - 1
    let next: Node | undefined
    if (isMap(node)) {
      const pair = pairsOf(index, node).get(String(seg))
      if (pair === undefined) return node
      const key = pair.key as Node | undefined
      const value = pair.value as Node | null
      next = last && wantKey ? key : (value ?? key)
    } else if (isSeq(node)) {
      next = node.items[Number(seg)] as Node | undefined
    }
    if (next === undefined) return node
    node = next
  }
  return node
}
