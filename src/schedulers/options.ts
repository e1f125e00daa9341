// Config-time parsing of scheduler options (parseOptions). Collects every issue, then throws one
// ConfigError whose issues carry `${path}.<option>` and a message naming the option and the bad value.
import { ConfigError, type ConfigIssue } from '../errors'

export class OptionReader {
  readonly #obj: Record<string, unknown>
  readonly #path: string
  readonly #scheduler: string
  readonly issues: ConfigIssue[] = []

  /** `raw` undefined or null = no options. Anything but a plain object, or an unknown key, is an issue. */
  constructor (scheduler: string, raw: unknown, path: string, allowed: readonly string[]) {
    this.#path = path
    this.#scheduler = scheduler
    this.#obj = {}
    if (raw === undefined || raw === null) return
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      this.issues.push({ path, message: `options for scheduler ${scheduler} must be a mapping, got ${show(raw)}` })
      return
    }
    this.#obj = raw as Record<string, unknown>
    for (const key of Object.keys(raw)) {
      if (allowed.includes(key)) continue
      const expected = allowed.length === 0 ? 'it takes no options' : `expected one of ${allowed.join(', ')}`
      this.issues.push({ path: `${path}.${key}`, message: `unknown option ${key} for scheduler ${scheduler}: ${expected}` })
    }
  }

  boolean (key: string, def: boolean): boolean {
    const v = this.#obj[key]
    if (v === undefined) return def
    if (typeof v === 'boolean') return v
    this.#issue(key, `must be true or false, got ${show(v)}`)
    return def
  }

  /** An integer in [min, max]; `allowedValues` narrows it further (mh table sizes). */
  integer (key: string, def: number, min: number, max: number, allowedValues?: readonly number[]): number {
    const v = this.#obj[key]
    if (v === undefined) return def
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.#issue(key, `must be an integer from ${min} to ${max}, got ${show(v)}`)
      return def
    }
    if (allowedValues !== undefined && !allowedValues.includes(v)) {
      this.#issue(key, `must be one of ${allowedValues.join(', ')}, got ${show(v)}`)
      return def
    }
    return v
  }

  /** Throws ConfigError with every issue collected so far. */
  done (): void {
    if (this.issues.length !== 0) throw new ConfigError(this.issues)
  }

  #issue (key: string, what: string): void {
    this.issues.push({ path: `${this.#path}.${key}`, message: `scheduler ${this.#scheduler} option ${key} ${what}` })
  }
}

function show (v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (v === null || typeof v !== 'object') return String(v)
  return Array.isArray(v) ? 'a list' : 'a mapping'
}

/** parseOptions() for schedulers without options: {} or nothing. */
export function parseNoOptions (scheduler: string, raw: unknown, path: string): Record<string, never> {
  new OptionReader(scheduler, raw, path, []).done()
  return {}
}
