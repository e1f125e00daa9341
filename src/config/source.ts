// The YAML side of config loading: parse text into plain data, report syntax errors with their positions,
// and map a dotted config path back to the line:col of the node it names. Knows nothing of Baton's keys.

import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml'
import type { ConfigIssue } from '../errors'

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
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true })
  const position = (offset: number): { line: number, col: number } => {
    const { line, col } = lineCounter.linePos(offset)
    return { line, col }
  }
  const syntaxIssues: ConfigIssue[] = doc.errors.map((err) => ({
    path: '',
    message: `YAML: ${firstLine(err.message)}`,
    file,
    ...position(err.pos[0]),
  }))
  const locate = (issue: RawIssue): ConfigIssue => {
    const node = findNode(doc, issue.path, issue.key === true)
    const offset = node?.range?.[0] ?? 0
    return { path: issue.path.join('.'), message: issue.message, file, ...position(offset) }
  }
  const data = syntaxIssues.length === 0 ? doc.toJS({ maxAliasCount: 100 }) as unknown : undefined
  return { data, syntaxIssues, locate }
}

/** yaml's messages carry a source excerpt after the first line; the position already says where. */
function firstLine (message: string): string {
  const end = message.indexOf('\n')
  return (end === -1 ? message : message.slice(0, end)).replace(/ at line \d+, column \d+:?$/, '')
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
