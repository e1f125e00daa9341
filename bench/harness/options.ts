// Command-line options of `npm run bench -- ...`. Parsing only; run.ts decides what to do with them.

export const TARGETS = [
  'direct', 'baton-handoff', 'baton-splice', 'baton-pipe', 'baton-splice-sticky', 'baton-pipe-sticky',
  'haproxy-http', 'haproxy-tcp', 'nginx'
] as const
export type TargetName = typeof TARGETS[number]

export const SCENARIOS = ['ka-small', 'close', 'ka-64k', 'stream', 'idle'] as const
export type ScenarioName = typeof SCENARIOS[number]

const ALIASES: Readonly<Record<string, readonly TargetName[]>> = {
  handoff: ['baton-handoff'],
  splice: ['baton-splice'],
  pipe: ['baton-pipe'],
  // The relays with keepAlive: sticky (later requests not watched), beside the default reroute rows.
  sticky: ['baton-splice-sticky', 'baton-pipe-sticky'],
  baton: ['baton-handoff', 'baton-splice', 'baton-pipe'],
  haproxy: ['haproxy-http', 'haproxy-tcp']
}

export interface Options {
  readonly quick: boolean
  readonly micro: boolean
  readonly help: boolean
  readonly targets: readonly TargetName[]
  readonly scenarios: readonly ScenarioName[]
  readonly rounds: number
  /** Seconds of load per row (ka-small, close, ka-64k, stream). */
  readonly durationS: number
  /** Concurrent client connections for the load scenarios. */
  readonly connections: number
  /** Connections held open by the idle scenario. */
  readonly idleConns: number
  /** Body size of each stream request. */
  readonly streamBytes: number
  /** The client for keep-alive scenarios; close always uses wrk. */
  readonly client: 'autocannon' | 'wrk'
  /** Run inside a private network namespace when permitted. */
  readonly netns: boolean
  /** The argv as given, for RESULTS.md. */
  readonly argv: readonly string[]
  /** True when a filter (--only, --scenario) was given. */
  readonly partial: boolean
}

export const USAGE = `usage: npm run bench -- [options]
  --quick               every row ~2 s, 1 round, 64 MiB stream, 1,000 idle connections (CI)
  --only=T,...          targets: ${TARGETS.join(', ')}
                        (aliases: baton, handoff, splice, pipe, sticky, haproxy)
  --scenario=S,...      scenarios: ${SCENARIOS.join(', ')}
  --rounds=N            interleaved rounds, medians reported (default 3; --quick 1)
  --duration=S          seconds per row (default 10; --quick 2)
  --connections=N       client connections (default 50)
  --idle=N              idle keep-alive connections (default 10000; --quick 1000)
  --stream-mib=N        size of one stream response in MiB (default 1024; --quick 64)
  --client=wrk          drive keep-alive scenarios with wrk instead of autocannon
  --no-netns            do not run inside a private network namespace
  --micro               run the micro-benchmarks (dist/bench/micro/*.js) instead
`

function list<T extends string> (value: string, allowed: readonly T[], what: string, aliases = {} as Readonly<Record<string, readonly T[]>>): T[] {
  const out: T[] = []
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const expanded = aliases[item] ?? ((allowed as readonly string[]).includes(item) ? [item as T] : undefined)
    if (expanded === undefined) throw new Error(`unknown ${what} "${item}"; known: ${allowed.join(', ')}`)
    for (const e of expanded) if (!out.includes(e)) out.push(e)
  }
  return allowed.filter((a) => out.includes(a))
}

function positive (value: string, name: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${value}"`)
  return n
}

/** Throws an Error with a message meant for the user on a bad option. */
export function parseOptions (argv: readonly string[]): Options {
  const raw = new Map<string, string>()
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg)
    if (m === null || m[1] === undefined) throw new Error(`unexpected argument "${arg}"\n${USAGE}`)
    raw.set(m[1], m[2] ?? 'true')
  }
  const known = ['quick', 'micro', 'help', 'only', 'scenario', 'rounds', 'duration', 'connections', 'idle',
    'stream-mib', 'client', 'no-netns']
  for (const key of raw.keys()) if (!known.includes(key)) throw new Error(`unknown option --${key}\n${USAGE}`)
  const quick = raw.has('quick')
  const get = (k: string): string | undefined => raw.get(k)
  const client = get('client') ?? 'autocannon'
  if (client !== 'autocannon' && client !== 'wrk') throw new Error(`--client must be autocannon or wrk, got "${client}"`)
  const only = get('only')
  const scenario = get('scenario')
  return {
    quick,
    micro: raw.has('micro'),
    help: raw.has('help'),
    targets: only !== undefined ? list(only, TARGETS, 'target', ALIASES) : TARGETS,
    scenarios: scenario !== undefined ? list(scenario, SCENARIOS, 'scenario') : SCENARIOS,
    rounds: Math.round(positive(get('rounds') ?? (quick ? '1' : '3'), '--rounds')),
    durationS: positive(get('duration') ?? (quick ? '2' : '10'), '--duration'),
    connections: Math.round(positive(get('connections') ?? '50', '--connections')),
    idleConns: Math.round(positive(get('idle') ?? (quick ? '1000' : '10000'), '--idle')),
    streamBytes: Math.round(positive(get('stream-mib') ?? (quick ? '64' : '1024'), '--stream-mib') * 1024 * 1024),
    client,
    netns: !raw.has('no-netns'),
    argv,
    partial: only !== undefined || scenario !== undefined
  }
}
