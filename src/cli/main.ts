#!/usr/bin/env node
// The `baton` command: the only place that reads process.argv or calls process.exit.
// Exit codes: 0 ok, 1 `check` found issues, the switch failed to start, a second stop signal, or `ctl` was
// refused or could not reach the admin API; 2 usage or (start/demo) bad config.

import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfigFile } from '../config/load'
import type { BatonOptions } from '../baton'
import type { Config } from '../config/types'
import { BatonError, ConfigError, formatIssue } from '../errors'
import { getScheduler, schedulerNames } from '../schedulers/registry'

const DEFAULT_CONFIG = 'config/baton.yaml'

const USAGE = `Usage: baton <command> [options]

Commands:
  start [-c FILE] [--takeover] [--takeover-timeout MS] [--takeover-servers-timeout MS]
                      run the switch (default config: ${DEFAULT_CONFIG}); SIGHUP reloads the file,
                      SIGTERM or SIGINT stops gracefully (a second one exits at once); --takeover
                      takes the listening sockets of the Baton running with the same admin.socket
                      over (zero-downtime restart or upgrade): that one finishes its work and exits 0
  check FILE          validate a config; print each issue as file:line:col: message
  ctl COMMAND ...     change a running switch through its admin API (baton ctl --help)
  agent --listen HOST:PORT --secret-file FILE --vip VIP:PORT --handoff PATH
                      on a real server's host: take migrated connections (forward: migrate) from
                      the dispatcher and hand them to the local back end (baton agent --help)
  host dispatcher|realserver --vip IP [--dry-run | --remove]
                      set up this host for migrate forwarding (baton host --help)
  schema              print the config's JSON Schema (for editors: see the README)
  demo [-c FILE]      run the built-in demo: back ends and the switch (default: ${DEFAULT_CONFIG})
  help                show this help

Options:
  -c, --config FILE   the config file for start and demo
  -h, --help          show this help
      --version       print the version
      --list-schedulers
                      list the schedulers, with a description of each
      --takeover-timeout MS
                      start: each wait for the other process of a takeover (default 10000). The new
                      process waits this long for the running one's sockets (then exits 1) and, after
                      it took over, for the admin socket (then warns and serves meanwhile); a running
                      process waits this long for a new one's GO (then keeps its sockets)
      --takeover-servers-timeout MS
                      start --takeover: how long to wait for the servers to be up before taking over
                      with some still down (default 5000; keep it below the running one's
                      --takeover-timeout)
`

class UsageError extends Error {}

async function main (argv: readonly string[]): Promise<number> {
  if (argv[0] === 'agent') {
    const { agent } = await import('./agent')
    return agent(argv.slice(1), (s) => { process.stderr.write(s) })
  }
  if (argv[0] === 'ctl') {
    const { ctl } = await import('./ctl')
    return ctl(argv.slice(1), process.env, (s) => { process.stdout.write(s) }, (s) => { process.stderr.write(s) })
  }
  if (argv[0] === 'host') {
    const { host } = await import('./host')
    return host(argv.slice(1), (s) => { process.stdout.write(s) }, (s) => { process.stderr.write(s) })
  }
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
        'list-schedulers': { type: 'boolean' },
        takeover: { type: 'boolean' },
        'takeover-timeout': { type: 'string' },
        'takeover-servers-timeout': { type: 'string' },
      },
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const { values, positionals } = parsed
  const [command, ...rest] = positionals
  if (values.help === true || command === 'help') return print(USAGE)
  if (values.version === true) return print(`${version()}\n`)
  if (values['list-schedulers'] === true) return listSchedulers()
  const file = values.config
  switch (command) {
    case 'check':
      if (rest.length > 1 || (rest.length === 1 && file !== undefined)) throw new UsageError('check takes one FILE')
      return check(rest[0] ?? file ?? DEFAULT_CONFIG)
    case 'start': {
      noArgs(rest, command)
      const timeoutMs = ms(values['takeover-timeout'], '--takeover-timeout', 100)
      const serversMs = ms(values['takeover-servers-timeout'], '--takeover-servers-timeout', 0)
      return start(file ?? DEFAULT_CONFIG, {
        takeover: values.takeover === true,
        ...(timeoutMs === undefined ? {} : { takeoverTimeoutMs: timeoutMs }),
        ...(serversMs === undefined ? {} : { takeoverServersMs: serversMs }),
      })
    }
    case 'demo':
      noArgs(rest, command)
      return demo(file ?? DEFAULT_CONFIG)
    case 'schema':
      noArgs(rest, command)
      return schema()
    case undefined:
      throw new UsageError('missing command')
    default:
      throw new UsageError(`unknown command "${command}"`)
  }
}

function noArgs (rest: readonly string[], command: string): void {
  if (rest.length > 0) throw new UsageError(`${command} takes no arguments (use -c FILE), got "${rest.join(' ')}"`)
}

/** A whole number of milliseconds, min..3600000, from an option; undefined when not given. */
function ms (text: string | undefined, option: string, min: number): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!/^\d+$/.test(text) || n < min || n > 3_600_000) throw new UsageError(`${option} must be milliseconds, ${min}..3600000, got "${text}"`)
  return n
}

function print (text: string): number {
  process.stdout.write(text)
  return 0
}

function version (): string {
  // dist/src/cli/main.js or src/cli/main.ts: the package root is the first parent with package.json.
  for (let dir = __dirname; dir !== dirname(dir); dir = dirname(dir)) {
    try {
      return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version
    } catch {}
  }
  return 'unknown'
}

function listSchedulers (): number {
  const names = schedulerNames()
  const width = Math.max(...names.map((n) => n.length))
  for (const name of names) {
    const lines = (getScheduler(name)?.description ?? '').split('\n')
    const text = lines.map((line, i) => (i === 0 ? line : `${' '.repeat(width + 2)}${line.trim()}`)).join('\n')
    process.stdout.write(`${name.padEnd(width)}  ${text}\n`)
  }
  return 0
}

/** Loads a config, printing its issues; undefined = it was not valid. */
function load (file: string): Config | undefined {
  try {
    return loadConfigFile(file)
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`)
      return undefined
    }
    if (err instanceof BatonError && err.code === 'BATON_ERR_CONFIG_READ') {
      process.stderr.write(`${err.message}\n`)
      return undefined
    }
    // Not a config issue but a failure while checking one (a bug): still one positioned line, no stack.
    process.stderr.write(`${file}:1:1: cannot check the configuration: ${err instanceof Error ? err.message : String(err)}\n`)
    return undefined
  }
}

function check (file: string): number {
  if (load(file) === undefined) return 1
  process.stdout.write(`${file}: ok\n`)
  return 0
}

async function start (file: string, options: BatonOptions): Promise<number> {
  const takeover = options.takeover === true
  const config = load(file)
  if (config === undefined) return 2
  if (takeover) {
    const { native } = await import('../native/binding')
    const why = config.admin?.socket === undefined
      ? `${file}: --takeover needs admin.socket (the running Baton offers its listening sockets at <admin.socket>.takeover)`
      : !native.available ? `--takeover needs the native addon: ${native.loadError?.message ?? 'not loaded'}` : undefined
    if (why !== undefined) {
      process.stderr.write(`baton: ${why}\n`)
      return 1
    }
  }
  const { startBaton } = await import('../baton')
  let instance
  try {
    instance = await startBaton(config, options)
  } catch (err) {
    if (!takeover) throw err
    process.stderr.write(`baton: ${(err as Error).message}\n`) // the running Baton goes on as it was
    return 1
  }
  const running = instance
  process.on('SIGHUP', () => { running.reloadFile('SIGHUP') }) // never throws: a bad file is logged
  // A later `baton start --takeover` took the sockets over: finish the work in flight and exit 0.
  const handedOver = running.handedOver.then(async () => { await running.shutdown(); return 0 })
  return Promise.race([untilSignal(() => running.shutdown()), handedOver])
}

async function schema (): Promise<number> {
  const { configJsonSchema } = await import('../config/json-schema')
  return print(`${JSON.stringify(configJsonSchema(), null, 2)}\n`)
}

async function demo (file: string): Promise<number> {
  const { runDemo } = await import('../demo/index')
  const running = await runDemo(file)
  return untilSignal(() => running.close())
}

/** Resolves 0 after SIGINT or SIGTERM and a clean close; a second signal exits at once with 1. */
function untilSignal (close: () => Promise<void>): Promise<number> {
  return new Promise((resolve, reject) => {
    const onSignal = (): void => {
      process.on('SIGINT', () => { resolve(1) })
      process.on('SIGTERM', () => { resolve(1) })
      close().then(() => { resolve(0) }, reject)
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
}

/** Exits once stdout and stderr have taken everything written (a pipe may still hold queued writes). */
function exit (code: number): void {
  let pending = 2
  const done = (): void => { if (--pending === 0) process.exit(code) }
  process.stdout.write('', done)
  process.stderr.write('', done)
}

main(process.argv.slice(2)).then(
  (code) => { exit(code) },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`baton: ${err.message}\n\n${USAGE}`)
      exit(2)
      return
    }
    if (err instanceof Error && err.name === 'CtlUsageError') {
      process.stderr.write(`baton ctl: ${err.message}\n\nRun baton ctl --help for the commands.\n`)
      exit(2)
      return
    }
    if (err instanceof ConfigError) {
      for (const issue of err.issues) process.stderr.write(`${formatIssue(issue)}\n`)
      exit(2)
      return
    }
    if (err instanceof BatonError && err.code === 'BATON_ERR_MIGRATE_UNAVAILABLE') { // a host that cannot migrate
      process.stderr.write(`baton: ${err.message} (${err.code})\n`)
      exit(1)
      return
    }
    if (err instanceof BatonError && err.code === 'BATON_ERR_CONFIG_READ') { // demo's own load
      process.stderr.write(`${err.message}\n`)
      exit(2)
      return
    }
    process.stderr.write(`baton: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    exit(1)
  },
)
