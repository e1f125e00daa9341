// Micro-benchmark: picks per second for every registered scheduler at 10, 100 and 1000 real servers,
// and heap bytes allocated per pick. Plain Node script (tsc -> dist/bench/micro/schedulers.js):
//   node --expose-gc dist/bench/micro/schedulers.js
// Without --expose-gc the allocation column reads "n/a". Best of 3 runs. Keys cycle through 1024 paths and 1024 client
// addresses, so lblc/lblcr measure the cached-key path. "cycle" rows measure pick + bind + close through
// the cluster (the counter updates that keep the least-connection index current).
import { createService } from '../../src/cluster/service'
import type { ServerConfig } from '../../src/config/types'
import { getScheduler, schedulerNames } from '../../src/schedulers/registry'
import type { PickContext, RealServer, Scheduler } from '../../src/schedulers/types'

const SIZES = [10, 100, 1000]
const PICKS = 1_000_000

interface Ctx { clientAddress: string, clientPort: number, hashKey: string | undefined, avoid: undefined, now: number }

function makeServers (n: number): RealServer[] {
  return Array.from({ length: n }, (_, i) => {
    const weight = 1 + (i % 5)
    return {
      id: `s${i}`, index: i, host: `10.1.${i >> 8}.${i & 255}`, port: 8080, weight, lastWeight: weight,
      up: true, overloaded: false, maxConns: 0, minConns: 0,
      conns: { active: (i * 7) % 13, inactive: (i * 3) % 11 },
    }
  })
}

const KEYS = Array.from({ length: 1024 }, (_, i) => `/static/img/${i * 7919}.png`)
const CLIENTS = Array.from({ length: 1024 }, (_, i) => `192.168.${i >> 8}.${i & 255}`)

function gc (): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) g()
}

/** Runs `loop(count)` three times: best ops/s (the machine may be shared), heap bytes per op of the first run. */
function measure (loop: (count: number) => void, count: number): [number, number] {
  loop(Math.min(count, 200_000))                    // warm up, let the JIT settle
  const hasGc = typeof (globalThis as { gc?: unknown }).gc === 'function'
  let best = 0
  let bytes = NaN
  for (let run = 0; run < 3; run++) {
    gc()
    const before = process.memoryUsage().heapUsed
    const t0 = process.hrtime.bigint()
    loop(count)
    const ns = Number(process.hrtime.bigint() - t0)
    const after = process.memoryUsage().heapUsed
    if (run === 0 && hasGc) bytes = Math.max(0, after - before) / count
    best = Math.max(best, count / (ns / 1e9))
  }
  return [best, bytes]
}

function pickLoop (s: Scheduler, c: Ctx): (count: number) => void {
  return (count) => {
    for (let i = 0; i < count; i++) {
      c.hashKey = KEYS[i & 1023]
      c.clientAddress = CLIENTS[(i >> 3) & 1023]!
      c.now = i
      s.pick(c as PickContext)
    }
  }
}

function cycleLoop (name: string, n: number): (count: number) => void {
  const servers: ServerConfig[] = Array.from({ length: n }, (_, i) => ({
    name: `s${i}`, address: { host: '10.0.0.1', port: 8000 + i }, forward: 'pipe', weight: 1 + (i % 5), maxConns: 0, minConns: 0,
  }))
  const factory = getScheduler(name)!
  const pool = createService({ name: 'bench', scheduler: name, schedulerOptions: factory.parseOptions(undefined, 'x'), key: { kind: 'path' }, slowStartS: 0, quiescent: false, keepAlive: 'reroute', servers })
  const c: Ctx = { clientAddress: '10.0.0.1', clientPort: 1, hashKey: '/', avoid: undefined, now: 0 }
  return (count) => {
    for (let i = 0; i < count; i++) {
      c.hashKey = KEYS[i & 1023]
      const s = pool.pick(c as PickContext)
      if (s === null) continue
      pool.bind(s)
      pool.feedback(s, -1, 0, 1)
    }
  }
}

function fmt (v: number): string {
  if (Number.isNaN(v)) return 'n/a'
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : `${(v / 1e3).toFixed(0)}k`
}

export async function main (): Promise<void> {
  const rows: string[][] = [['scheduler', ...SIZES.map((n) => `n=${n} picks/s`), 'B/pick (n=1000)']]
  const run = (label: string, make: (n: number) => (count: number) => void, count: number): void => {
    const row = [label]
    let bytes = NaN
    for (const n of SIZES) {
      const [ops, b] = measure(make(n), count)
      row.push(fmt(ops))
      if (n === 1000) bytes = b
    }
    row.push(Number.isNaN(bytes) ? 'n/a' : bytes.toFixed(2))
    rows.push(row)
  }
  for (const name of schedulerNames()) {
    const f = getScheduler(name)!
    const picks = name === 'twos' || name === 'fo' || name === 'ovf' ? PICKS / 10 : PICKS
    run(name, (n) => pickLoop(f.create(makeServers(n), f.parseOptions(undefined, 'x')),
      { clientAddress: '', clientPort: 1234, hashKey: undefined, avoid: undefined, now: 0 }), picks)
  }
  for (const name of ['lc', 'wlc', 'sed', 'nq']) run(`${name} cycle`, (n) => cycleLoop(name, n), PICKS / 2)
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  console.log(`node ${process.version}, ${process.arch}`)
  for (const r of rows) console.log(r.map((cell, i) => cell.padStart(widths[i]!)).join('  '))
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err)
    process.exitCode = 1
  })
}
