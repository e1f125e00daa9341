// Reloading the config file while Baton serves: on SIGHUP, `baton ctl reload` (POST /reload), or a change
// of the file itself (`watch: true`). The file is read and validated first; a file with any issue changes
// nothing: its issues are logged (BATON_ERR_CONFIG_INVALID, every file:line:col line) and returned to
// the caller. A valid one is applied as a diff (Baton.reload). Reloads are counted by result for /metrics.
//
// The watch is on the file's directory, not the file: editors and config managers replace a file by
// renaming another over it (and Kubernetes swaps a symlink), which a watch on the old inode never sees.
// Events are debounced, and a reload only happens when the file changed (inode, size or mtime) since the last attempt.
import fs from 'node:fs'
import path from 'node:path'
import type { ClusterDiff } from '../cluster/cluster'
import { loadConfigFile } from '../config/load'
import type { Config } from '../config/types'
import { BatonError, ConfigError, formatIssue } from '../errors'
import type { Logger } from '../log'

export type ReloadTrigger = 'SIGHUP' | 'admin' | 'watch' | 'api'
export type ReloadResult = 'ok' | 'invalid'

export type ReloadOutcome =
  | { readonly ok: true; readonly diff: ClusterDiff }
  | { readonly ok: false; readonly code: 'BATON_ERR_CONFIG_INVALID' | 'BATON_ERR_CONFIG_READ'; readonly message: string; readonly issues: readonly string[] }

/** Quiet time after the last change event before the file is read (editors write in several steps). */
export const WATCH_DEBOUNCE_MS = 200

export class ConfigReloader {
  readonly #file: string
  readonly #apply: (config: Config) => ClusterDiff
  readonly #log: Logger
  /** Reloads by result, since start. */
  readonly counts = new Map<ReloadResult, number>([['ok', 0], ['invalid', 0]])
  #watcher: fs.FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #lastHash = ''

  /** `file`: the config file Baton started from ('' = an in-memory config: nothing to reload). */
  constructor (file: string, apply: (config: Config) => ClusterDiff, log: Logger) {
    this.#file = file
    this.#apply = apply
    this.#log = log
  }

  /** Reads, validates and applies the file. Never throws: a bad file is logged and returned as ok: false. */
  reload (trigger: ReloadTrigger): ReloadOutcome {
    const outcome = this.#load(trigger)
    this.counts.set(outcome.ok ? 'ok' : 'invalid', (this.counts.get(outcome.ok ? 'ok' : 'invalid') ?? 0) + 1)
    this.#log.flush()
    return outcome
  }

  /** Starts or stops watching the file (`watch:` at start and after each reload). */
  watch (on: boolean): void {
    if (!on || this.#file === '') { this.close(); return }
    if (this.#watcher !== undefined) return
    const dir = path.dirname(this.#file)
    const base = path.basename(this.#file)
    this.#lastHash = hashOf(this.#file)
    try {
      this.#watcher = fs.watch(dir, { persistent: false }, (_event, name) => {
        // null: the platform did not say which file; '..data' and friends: a Kubernetes ConfigMap swap.
        if (name === null || name === base || name.startsWith('..')) this.#changed()
      })
    } catch (err) {
      this.#log.warn({ err: (err as Error).message, file: this.#file }, 'config watch: cannot watch the file; reload with SIGHUP or baton ctl reload')
      return
    }
    this.#watcher.on('error', (err) => {
      this.#log.warn({ err: err.message, file: this.#file }, 'config watch stopped; reload with SIGHUP or baton ctl reload')
      this.close()
    })
    this.#log.info({ file: this.#file }, 'config watch: reloading when the file changes')
  }

  close (): void {
    clearTimeout(this.#debounce)
    this.#debounce = undefined
    this.#watcher?.close()
    this.#watcher = undefined
  }

  #changed (): void {
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined
      if (this.#watcher === undefined) return
      const hash = hashOf(this.#file)
      if (hash === this.#lastHash || hash === '') return // unchanged, or the file is gone for now
      this.reload('watch')
    }, WATCH_DEBOUNCE_MS)
    this.#debounce.unref()
  }

  #load (trigger: ReloadTrigger): ReloadOutcome {
    if (this.#file === '') {
      const message = 'this switch was built from an in-memory config: there is no file to reload'
      this.#log.error({ code: 'BATON_ERR_CONFIG_READ', trigger }, message)
      return { ok: false, code: 'BATON_ERR_CONFIG_READ', message, issues: [message] }
    }
    this.#lastHash = hashOf(this.#file)
    let config: Config
    try {
      config = loadConfigFile(this.#file)
    } catch (err) {
      const failed = refusal(err, this.#file)
      this.#log.error({ code: failed.code, trigger, file: this.#file, issues: failed.issues },
        `config reload refused, nothing changed:\n${failed.issues.join('\n')}`)
      return failed
    }
    const diff = this.#apply(config)
    this.#log.info({ trigger, file: this.#file, ...diff }, 'config reloaded')
    return { ok: true, diff }
  }
}

function refusal (err: unknown, file: string): Extract<ReloadOutcome, { ok: false }> {
  if (err instanceof ConfigError) {
    return { ok: false, code: 'BATON_ERR_CONFIG_INVALID', message: err.message, issues: err.issues.map(formatIssue) }
  }
  if (err instanceof BatonError && err.code === 'BATON_ERR_CONFIG_READ') {
    return { ok: false, code: 'BATON_ERR_CONFIG_READ', message: err.message, issues: [err.message] }
  }
  // A failure while checking (a bug): still one positioned line, like `baton check`.
  const message = `${file}:1:1: cannot check the configuration: ${err instanceof Error ? err.message : String(err)}`
  return { ok: false, code: 'BATON_ERR_CONFIG_INVALID', message, issues: [message] }
}

/** The file's identity and version (inode, size, mtime; through symlinks); '' when it is missing (mid-rename). */
function hashOf (file: string): string {
  try {
    const st = fs.statSync(file, { bigint: true })
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`
  } catch {
    return ''
  }
}

/** Keys a reload does not apply: listen addresses and the admin API are bound at start. */
export function restartOnlyChanges (running: Config, next: Config): string[] {
  const changed: string[] = []
  if (JSON.stringify(running.listen) !== JSON.stringify(next.listen)) changed.push('listen')
  if (JSON.stringify(running.admin) !== JSON.stringify(next.admin)) changed.push('admin')
  return changed
}
