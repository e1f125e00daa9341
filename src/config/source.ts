// The YAML side of config loading: parse text into plain data, report syntax errors with their positions,
// and map a dotted config path back to the line:col of the node it names. Knows nothing of Baton's keys.

import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type YAMLError } from 'yaml'
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
  const locateIn = (doc: Document | undefined) => (issue: RawIssue): ConfigIssue => {
    const node = doc === undefined ? undefined : findNode(doc, issue.path, issue.key === true)
    return { ...at(node?.range?.[0] ?? 0, issue.message), path: issue.path.join('.') }
  }
  const issues: ConfigIssue[] = []
  const bad = NOT_PRINTABLE.exec(text)
  if (bad !== null) issues.push(at(bad.index, `YAML: character ${codePoint(bad[0])} is not allowed in YAML (write it as an escape in a double-quoted string)`))
  let doc: Document
  try {
    doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: true })
  } catch (err) {
    return { data: undefined, syntaxIssues: [...issues, at(0, `YAML: ${thrownMessage(err)}`)], locate: locateIn(undefined) }
  }
  for (const err of doc.errors) issues.push(at(err.pos[0], `YAML: ${yamlMessage(err, text)}`))
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

/** yaml's message, first line only, with the key named for a duplicate and plain words for a stack overflow. */
function yamlMessage (err: YAMLError, text: string): string {
  if (err.code === 'DUPLICATE_KEY') {
    const key = /^("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^\n]*?)[ \t]*:(?:[ \t\n]|$)/.exec(text.slice(err.pos[0], err.pos[0] + 256))?.[1]
    return key === undefined || key === '' ? 'duplicate key (map keys must be unique)' : `duplicate key ${/^["']/.test(key) ? key : JSON.stringify(key)} (map keys must be unique)`
  }
  return thrownMessage(err)
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

/** The deepest node along `path`; with `wantKey`, the key node of the last segment if it exists. */
function findNode (doc: Document, path: readonly PathSegment[], wantKey: boolean): Node | undefined {
  let node: Node | undefined = doc.contents ?? undefined
  for (let i = 0; i < path.length && node !== undefined; i++) {
    const seg = path[i]
    const last = i === path.length - 1
    let next: Node | undefined
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : p.key) === String(seg))
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
