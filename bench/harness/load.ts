// The two HTTP load clients: autocannon as a library (keep-alive scenarios) and wrk as a child process
// where autocannon is not faithful: one connection per request (it writes onto closing sockets:
// research/benchmarking.md) and the long stream (it concatenates every response body into a JS string,
// which is slow and throws "Invalid string length" past 512 MiB).
// Both are bounded in time: a run that does not end by itself is stopped and reported as failed.
import { spawn } from 'node:child_process'
import { LatencyHistogram } from './histogram'
import { which } from './process'

export interface LoadResult {
  /** Completed requests with a 2xx status. */
  readonly requests: number
  readonly durationS: number
  /** Response bytes (autocannon: headers and body; wrk: as it reports). */
  readonly bytes: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Connection errors, timeouts and non-2xx responses. */
  readonly errors: number
  readonly errorDetail: string
}

export type Progress = (elapsedS: number, requests: number) => void

export interface LoadSpec {
  readonly port: number
  readonly path: string
  readonly connections: number
  readonly durationS: number
  readonly timeoutS?: number
  /** wrk only: threads (default 1). */
  readonly threads?: number
  /** wrk only: a Lua script (-s) that makes the requests, e.g. alternating paths. */
  readonly script?: string
}

interface AutocannonResult {
  readonly duration: number
  readonly errors: number
  readonly timeouts: number
  readonly non2xx: number
  readonly resets: number
  readonly requests: { readonly total: number }
}
interface AutocannonInstance {
  on (ev: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void
  on (ev: 'tick', fn: () => void): void
  stop (): void
}
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, res: AutocannonResult) => void) => AutocannonInstance
const autocannon = require('autocannon') as Autocannon

export async function runAutocannon (spec: LoadSpec, progress: Progress): Promise<LoadResult> {
  const hist = new LatencyHistogram()
  let ok = 0
  let bytes = 0
  const started = Date.now()
  const bound = (spec.durationS + (spec.timeoutS ?? 10) + 10) * 1000
  return await new Promise((resolve, reject) => {
    const opts: Record<string, unknown> = {
      url: `http://127.0.0.1:${spec.port}${spec.path}`,
      connections: spec.connections,
      pipelining: 1,
      timeout: spec.timeoutS ?? 10,
      duration: spec.durationS
    }
    let killer: NodeJS.Timeout | undefined
    const instance = autocannon(opts, (err, res) => {
      clearTimeout(killer)
      if (err !== null) { reject(err); return }
      const bad = res.errors + res.non2xx
      resolve({
        requests: ok,
        durationS: (Date.now() - started) / 1000,
        bytes,
        p50Ms: hist.quantileMs(0.5),
        p99Ms: hist.quantileMs(0.99),
        errors: bad,
        errorDetail: bad === 0 ? '' : `autocannon: ${res.errors} errors (${res.timeouts} timeouts), ${res.non2xx} non-2xx, ${res.resets} resets`
      })
    })
    killer = setTimeout(() => { instance.stop(); reject(new Error(`autocannon did not finish within ${bound / 1000} s`)) }, bound)
    instance.on('response', (_c, status, n, ms) => {
      if (status < 200 || status > 299) return
      ok++
      bytes += n
      hist.record(ms)
    })
    instance.on('tick', () => progress((Date.now() - started) / 1000, ok))
  })
}

const UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000 }

function parseMs (text: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? '')
  return m?.[1] !== undefined && m[2] !== undefined ? Number(m[1]) * (UNIT_MS[m[2]] ?? NaN) : NaN
}

const SIZE: Readonly<Record<string, number>> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }

/** Parses wrk's report (with --latency). Exported for a unit check. */
export function parseWrk (out: string): LoadResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB|TB) read/.exec(out)
  if (total === null) throw new Error(`could not parse wrk output:\n${out}`)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  const errs = sock === null ? [0, 0, 0, 0] : sock.slice(1, 5).map(Number)
  const [connect = 0, read = 0, write = 0, timeout = 0] = errs
  const requests = Number(total[1])
  return {
    requests: requests - non2xx,
    durationS: parseMs(`${total[2] ?? ''}${total[3] ?? ''}`) / 1000,
    bytes: Number(total[4]) * (SIZE[total[5] ?? 'B'] ?? 1),
    p50Ms: parseMs(/\s50%\s+(\S+)/.exec(out)?.[1]),
    p99Ms: parseMs(/\s99%\s+(\S+)/.exec(out)?.[1]),
    errors: connect + read + write + timeout + non2xx,
    errorDetail: connect + read + write + timeout + non2xx === 0
      ? ''
      : `wrk: socket errors connect ${connect}, read ${read}, write ${write}, timeout ${timeout}; ${non2xx} non-2xx`
  }
}

/** wrk -t1 (one thread, unpinned: the research's best setting on 2 cores) unless spec.threads says otherwise. */
export function wrkCommand (spec: LoadSpec, close: boolean): string[] {
  return ['wrk', `-t${spec.threads ?? 1}`, `-c${spec.connections}`, `-d${spec.durationS}s`, '--latency', '--timeout', `${spec.timeoutS ?? 5}s`,
    ...(close ? ['-H', 'Connection: close'] : []), ...(spec.script !== undefined ? ['-s', spec.script] : []),
    `http://127.0.0.1:${spec.port}${spec.path}`]
}

export async function runWrk (spec: LoadSpec, close: boolean, progress: Progress): Promise<LoadResult> {
  const bin = which('wrk')
  if (bin === undefined) throw new Error('wrk is not installed (apt-get install -y wrk)')
  const args = wrkCommand(spec, close).slice(1)
  const started = Date.now()
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (b: Buffer) => { out += b.toString() })
  child.stderr.on('data', (b: Buffer) => { out += b.toString() })
  const ticker = setInterval(() => progress((Date.now() - started) / 1000, NaN), 500)
  const killer = setTimeout(() => child.kill('SIGKILL'), (spec.durationS + 15) * 1000)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearInterval(ticker)
  clearTimeout(killer)
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} exited with ${String(code)}:\n${out}`)
  return parseWrk(out)
}
