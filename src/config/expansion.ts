// Bounds what a parsed YAML document expands to before anything turns it into data. Aliases share one
// node in yaml's output, but everything after it (merge keys, the schema, the checks) walks the expanded
// tree, so a billion-laughs file (`b: [*a, *a, ...]`, `c: [*b, *b, ...]`) or a `<<` merge bomb costs
// 10^depth. This pass counts the expanded size exactly, in one iterative walk over the document (no
// recursion, so no stack to exhaust), and also refuses what yaml's toJS would throw on without a position:
// an alias with no anchor before it, an alias inside its own anchor (a cycle), a merge source that is not
// a map, and nesting deeper than any Baton config needs.

import { isAlias, isCollection, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml'

/** Nodes that aliases may add to the document (each alias adds its anchor's expanded size). */
export const MAX_ALIAS_EXPANSION = 100_000
/** Levels of nesting, counted through aliases (a Baton config needs about 6). */
export const MAX_DEPTH = 64

export interface ExpansionIssue { readonly offset: number; readonly message: string }

interface Frame { readonly node: Node; readonly depth: number; readonly exit: boolean }

/** The first problem in document order, or undefined. Runs on a document without syntax errors. */
export function checkExpansion (doc: Document): ExpansionIssue | undefined {
  const root = doc.contents
  if (root === null) return undefined
  const anchors = new Map<string, Node>()
  const open = new Set<Node>()                   // anchored nodes being walked: an alias to one is a cycle
  const size = new Map<Node, number>()           // expanded node count, once a node is done
  const height = new Map<Node, number>()         // expanded levels below and including the node
  const targetOf = new Map<Node, Node>()         // alias -> the anchored node it stands for
  let added = 0
  const stack: Frame[] = [{ node: root, depth: 1, exit: false }]
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const { node, depth } = frame
    const at = offsetOf(node)
    if (frame.exit) {
      const kids = children(node)
      size.set(node, kids.reduce((n, k) => n + (size.get(k) ?? 1), 1))
      height.set(node, kids.reduce((h, k) => Math.max(h, (height.get(k) ?? 1) + 1), 1))
      open.delete(node)
      const bad = badMergeSource(node, targetOf)
      if (bad !== undefined) return { offset: offsetOf(bad), message: 'YAML: a merge key (<<) takes a map, an alias of a map, or a list of those' }
      continue
    }
    if (depth > MAX_DEPTH) return { offset: at, message: `YAML: nesting deeper than ${MAX_DEPTH} levels` }
    if (isAlias(node)) {
      const target = anchors.get(node.source)
      if (target === undefined) return { offset: at, message: `YAML: alias *${node.source} has no anchor &${node.source} before it` }
      if (open.has(target)) return { offset: at, message: `YAML: alias *${node.source} is inside its own anchor (a recursive structure)` }
      const n = size.get(target) ?? 1
      const h = height.get(target) ?? 1
      added += n
      if (added > MAX_ALIAS_EXPANSION) {
        return { offset: at, message: `YAML: too many alias expansions (more than ${MAX_ALIAS_EXPANSION} nodes by *${node.source}): possible billion laughs` }
      }
      if (depth - 1 + h > MAX_DEPTH) return { offset: at, message: `YAML: nesting deeper than ${MAX_DEPTH} levels (through alias *${node.source})` }
      size.set(node, n)
      height.set(node, h)
      targetOf.set(node, target)
      continue
    }
    if (node.anchor !== undefined) {
      anchors.set(node.anchor, node)
      if (isCollection(node)) open.add(node)
    }
    if (!isCollection(node)) continue
    stack.push({ node, depth, exit: true })
    const kids = children(node)
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ node: kids[i]!, depth: depth + 1, exit: false })
  }
  return undefined
}

/** A collection's child nodes in document order: a map's keys and values, a sequence's items. */
function children (node: Node): Node[] {
  if (!isCollection(node)) return []
  const out: Node[] = []
  for (const item of node.items as unknown[]) {
    if (isPair(item)) {
      if (isNode(item.key)) out.push(item.key)
      if (isNode(item.value)) out.push(item.value)
    } else if (isNode(item)) {
      out.push(item)
    }
  }
  return out
}

/** In a map whose children are walked: the `<<` value (or an item of it) that yaml could not merge. */
function badMergeSource (node: Node, targetOf: ReadonlyMap<Node, Node>): Node | undefined {
  if (!isMap(node)) return undefined
  const resolve = (n: unknown): unknown => (isAlias(n) ? targetOf.get(n) : n)
  for (const pair of node.items) {
    if (!isMergeKey(pair.key)) continue
    const value = pair.value as Node | null
    if (value === null) return pair.key as Node
    const whole = resolve(value)
    const sources = isSeq(whole) ? (whole.items as unknown[]) : [value]
    for (const src of sources) {
      if (!isMap(resolve(src))) return isAlias(value) || !isNode(src) ? value : src
    }
  }
  return undefined
}

/** A plain `<<` key; with `merge: true` yaml resolves it to a Symbol('<<'). */
function isMergeKey (key: unknown): boolean {
  if (!isScalar(key) || (key.type !== undefined && key.type !== 'PLAIN')) return false
  const v = key.value
  return v === '<<' || (typeof v === 'symbol' && v.description === '<<')
}

function isNode (value: unknown): value is Node {
  return isScalar(value) || isCollection(value) || isAlias(value)
}

function offsetOf (node: Node): number {
  return node.range?.[0] ?? 0
}
