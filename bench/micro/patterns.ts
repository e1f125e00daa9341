// ns per match of an operator pattern (route pathRegex, header regex) with re2js, the linear-time engine
// config/pattern.ts compiles them with, next to native RegExp on the same typical patterns and inputs,
// and ns and heap bytes per Router.match for routes with and without a pathRegex. Run:
//   npx tsc -p tsconfig.json && node --expose-gc dist/bench/micro/patterns.js
import { compilePattern, type Pattern } from '../../src/config/pattern'
import type { RouteConfig, RouteMatch } from '../../src/config/types'
import { Router } from '../../src/request/route'
import type { RequestHead } from '../../src/request/types'

const CASES: ReadonlyArray<readonly [string, string]> = [
  ['^/c/[0-9]+$', '/c/1234567'],
  ['^/t/(?<tenant>[a-z0-9-]+)/', '/t/acme-corp/orders/17'],
  ['^/api/v[0-9]+/(users|orders)/[0-9]+$', '/api/v1/orders/991'],
  ['^/api/', '/static/js/app.3f9c1b2e.js'], // a miss, the common case for all routes but one
  ['^multipart/', 'multipart/form-data; boundary=----x'], // a header regex
  ['(?i)^bearer ', 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo'],
]

function pattern (source: string): Pattern {
  const p = compilePattern(source)
  if (typeof p === 'string') throw new Error(`${source}: ${p}`)
  return p
}

/** Best of 7 runs of `n` calls (the minimum is the least noisy on a shared machine), after a warm-up. */
function best (f: () => unknown, n = 200_000): number {
  let sink = 0
  for (let i = 0; i < 50_000; i++) if (f() !== null) sink++
  let min = Infinity
  for (let k = 0; k < 7; k++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) if (f() !== null) sink++
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / n)
  }
  if (sink < 0) throw new Error('unreachable')
  return min
}

/** Heap bytes per call over `n` calls (few enough that no scavenge runs), after a forced collection; NaN without --expose-gc. */
function bytesPer (f: () => unknown, n = 10_000): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) return NaN
  gc()
  const before = process.memoryUsage().heapUsed
  for (let i = 0; i < n; i++) f()
  return Math.max(0, process.memoryUsage().heapUsed - before) / n
}

function head (path: string): RequestHead {
  return { method: 'GET', target: path, path, query: '', host: 'www.example.com', versionMajor: 1, versionMinor: 1,
    headers: ['Host', 'www.example.com', 'Accept', '*/*'], headBytes: 60 }
}

function routerOf (...matches: RouteMatch[]): Router<string> {
  return new Router(matches.map((match, i): RouteConfig => ({ name: `r${i}`, match, service: `s${i}` })), (s) => s)
}

function patternRows (): void {
  console.log(`${'pattern'.padEnd(42)} ${'RegExp test'.padStart(11)} ${'re2js test'.padStart(10)} ` +
    `${'RegExp exec'.padStart(11)} ${'re2js exec'.padStart(10)} ${'+group(1)'.padStart(9)}`)
  for (const [source, input] of CASES) {
    const native = new RegExp(source.replace('(?i)', ''), source.startsWith('(?i)') ? 'i' : '')
    const re2 = pattern(source)
    const cols = [
      best(() => native.test(input) ? 1 : null), best(() => re2.test(input) ? 1 : null),
      best(() => native.exec(input)), best(() => re2.exec(input)),
      best(() => re2.exec(input)?.group(1) ?? null),
    ]
    console.log(`${source.padEnd(42)} ${cols.map((ns, i) => `${ns.toFixed(0)} ns`.padStart(i === 0 || i === 2 ? 11 : i === 4 ? 9 : 10)).join(' ')}`)
  }
}

function routerRows (): void {
  const plain = routerOf({ path: '/api/' }, { pathExact: '/health' }, { path: '/static/' })
  const regex = routerOf({ path: '/api/' }, { pathExact: '/health' }, { pathRegex: pattern('^/static/(js|css)/') })
  const h = head('/static/js/app.3f9c1b2e.js')
  for (const [name, r] of [['3 routes, no regex', plain], ['3 routes, pathRegex last', regex]] as const) {
    if (r.match(h) === null) throw new Error(`${name}: no match`)
    const ns = best(() => r.match(h))
    const bytes = bytesPer(() => r.match(h))
    console.log(`Router.match ${name.padEnd(26)} ${ns.toFixed(0).padStart(5)} ns  ${Number.isNaN(bytes) ? 'n/a' : bytes.toFixed(0)} B/match`)
  }
}

export async function main (): Promise<void> {
  console.log(`route patterns: re2js vs RegExp, node ${process.version}, ${process.arch}; best of 7 x 200k calls`)
  patternRows()
  routerRows()
}

if (require.main === module) {
  main().catch((err: unknown) => { console.error(err); process.exitCode = 1 })
}
