// Operator-supplied regular expressions (a route's pathRegex, a header predicate's regex), compiled once
// at config time with re2js, a pure-JavaScript port of RE2/J. Matching runs in time linear in the input
// whatever the pattern, so no request can stall the event loop (a backtracking RegExp needs seconds for
// `^/re/(a+)+$` against thirty characters). The syntax is RE2's: no backreferences, no lookaround; flags
// are written inline, e.g. `(?i)`. docs/config.md has the details.
import { type Matcher, RE2JS } from 're2js'

/** The groups of one match. */
export interface Captures {
  /**
   * Group `g`: 0 is the whole match, then numbered or named groups. undefined when the group did not take
   * part in the match or the pattern has no such group. The first call may run the engine again (linear).
   */
  group (g: number | string): string | undefined
}

export interface Pattern {
  /** The pattern as written in the config. */
  readonly source: string
  /** Capture groups, not counting group 0. */
  readonly groupCount: number
  readonly groupNames: readonly string[]
  /** True when the pattern matches somewhere in `s` (unanchored, like RegExp#test). Stateless. */
  test (s: string): boolean
  /** The leftmost match in `s` (as RegExp#exec), or null. Stateless: each call has its own Captures. */
  exec (s: string): Captures | null
}

class MatcherCaptures implements Captures {
  readonly #matcher: Matcher
  readonly #pattern: Re2Pattern

  constructor (matcher: Matcher, pattern: Re2Pattern) {
    this.#matcher = matcher
    this.#pattern = pattern
  }

  group (g: number | string): string | undefined {
    const known = typeof g === 'number'
      ? Number.isInteger(g) && g >= 0 && g <= this.#pattern.groupCount
      : this.#pattern.groupNames.includes(g)
    return known ? this.#matcher.group(g) ?? undefined : undefined
  }
}

class Re2Pattern implements Pattern {
  readonly source: string
  readonly groupCount: number
  readonly groupNames: readonly string[]
  // Private: deepFreeze must not reach the engine, which keeps caches (DFA states, machines) inside.
  readonly #re: RE2JS

  constructor (source: string, re: RE2JS) {
    this.source = source
    this.#re = re
    this.groupCount = re.groupCount()
    this.groupNames = Object.keys(re.namedGroups())
  }

  test (s: string): boolean {
    return this.#re.test(s)
  }

  exec (s: string): Captures | null {
    const m = this.#re.matcher(s)
    return m.find() ? new MatcherCaptures(m, this) : null
  }

  toString (): string {
    return this.source
  }
}

/** The compiled pattern, or the engine's reason for refusing it (for a config issue). Config time only. */
export function compilePattern (source: string): Pattern | string {
  try {
    return new Re2Pattern(source, RE2JS.compile(source))
  } catch (err) {
    return explain(err instanceof Error ? err.message : String(err))
  }
}

/** RE2's message without its prefix, with a hint where a JavaScript habit is the likely cause. */
function explain (message: string): string {
  const reason = message.replace(/^error parsing regexp: /, '')
  if (/`\(\?<[=!]/.test(reason)) return `lookbehind is not supported: ${reason.replace(/^[^`]*/, '')}`
  if (/`\(\?[=!]`/.test(reason)) return `${reason} (RE2 has no lookahead)`
  if (/`\\[1-9k]`/.test(reason)) return `${reason} (RE2 has no backreferences)`
  if (/`\\u`/.test(reason)) return `${reason} (write \\x{263A} for a code point)`
  return reason
}
