// `npm run bench:reload`: what a config reload costs. An in-process Baton (src/baton.ts) with S services × N
// relayed servers (`address:` at closed 127.0.0.1 ports, no health checks, no traffic: only the reload's own
// work is timed). Three changes, each reloaded R times, alternating between the base config and the variant
// so that every timed reload applies the change (identical: base to base):
//   identical   the same file again
//   weights     every server's weight changed
//   replace10   10% of the servers (every tenth) replaced by new ones (new name, new port)
// Timed separately: loadConfigFile (read, YAML parse, validate, freeze) of the file to load, and
// baton.reload(config) (the cluster diff, routing switch). Median and max over the R reloads.
//   npm run bench:reload -- [--services=100] [--servers=10] [--reloads=20] [--write]
// --write replaces the "Reload time" section of bench/RESULTS.md with this run's table.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { startBaton } from '../src/baton'
import { loadConfigFile } from '../src/config/load'
import { replaceSection, sectionNotes, sectionOf } from './harness/output'

const REPO_ROOT = path.resolve(__dirname, '../..')
const SECTION = '## Reload time'

interface Options { services: number; servers: number; reloads: number; write: boolean }
type Variant = 'identical' | 'weights' | 'replace10'
interface Row { variant: Variant; loadMs: number[]; reloadMs: number[]; diff: string }

function options (): Options {
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '100' }, servers: { type: 'string', default: '10' },
      reloads: { type: 'string', default: '20' }, write: { type: 'boolean', default: false },
    },
  })
  const n = (v: string | undefined, name: string): number => {
    const x = Number(v)
    if (!Number.isInteger(x) || x <= 0) throw new Error(`--${name} must be a positive integer, got ${String(v)}`)
    return x
  }
  return { services: n(values.services, 'services'), servers: n(values.servers, 'servers'), reloads: n(values.reloads, 'reloads'), write: values.write }
}

/** Ports 20000 and up on 127.0.0.1: nothing listens there in a bench run, and nothing connects (no traffic, no checks). */
function configYaml (o: Options, variant: Variant | 'base'): string {
  const lines = ['listen: 127.0.0.1:0', 'log: { level: warn }', 'services:']
  for (let s = 0; s < o.services; s++) {
    lines.push(`  - name: svc${s}`, '    scheduler: wlc', '    servers:')
    for (let i = 0; i < o.servers; i++) {
      const k = s * o.servers + i
      const replaced = variant === 'replace10' && k % 10 === 0
      const name = replaced ? `n${s}-${i}` : `s${s}-${i}`
      const port = 20000 + (replaced ? o.services * o.servers + k : k)
      const weight = variant === 'weights' ? 2 + (k % 5) : 1
      lines.push(`      - { name: ${name}, address: 127.0.0.1:${port}, forward: pipe, weight: ${weight} }`)
    }
  }
  return lines.join('\n') + '\n'
}

function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function main (): Promise<void> {
  const o = options()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-bench-reload-'))
  const file = (v: Variant | 'base'): string => path.join(dir, `${v}.yaml`)
  try {
    for (const v of ['base', 'identical', 'weights', 'replace10'] as const) fs.writeFileSync(file(v), configYaml(o, v))
    const base = loadConfigFile(file('base'))
    const baton = await startBaton(base)
    const rows: Row[] = []
    try {
      // Warm-up: one round of every variant, untimed (JIT, first-time allocations).
      for (const v of ['identical', 'weights', 'replace10'] as const) { baton.reload(loadConfigFile(file(v))); baton.reload(base) }
      for (const variant of ['identical', 'weights', 'replace10'] as const) {
        const row: Row = { variant, loadMs: [], reloadMs: [], diff: '' }
        for (let r = 0; r < o.reloads; r++) {
          const t0 = performance.now()
          const next = loadConfigFile(file(variant))
          const t1 = performance.now()
          const diff = baton.reload(next)
          const t2 = performance.now()
          row.loadMs.push(t1 - t0)
          row.reloadMs.push(t2 - t1)
          if (r === 0) row.diff = JSON.stringify(diff, (_k, x: unknown) => (Array.isArray(x) ? x.length : x))
          baton.reload(base) // back, untimed: the next timed reload applies the change again
        }
        rows.push(row)
      }
    } finally {
      await baton.close()
    }
    const n = o.services * o.servers
    console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}; ${o.services} services × ${o.servers} servers ` +
      `(${n}), ${o.reloads} reloads each, ${fs.statSync(file('base')).size} bytes of YAML`)
    for (const r of rows) {
      console.log(`${r.variant.padEnd(10)} loadConfigFile median ${median(r.loadMs).toFixed(2)} ms max ${Math.max(...r.loadMs).toFixed(2)} ms; ` +
        `reload median ${median(r.reloadMs).toFixed(2)} ms max ${Math.max(...r.reloadMs).toFixed(2)} ms; diff ${r.diff}`)
    }
    if (o.write) writeSection(o, rows)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

const TITLES: Record<Variant, string> = {
  identical: 'identical',
  weights: 'every weight changed',
  replace10: '10% of servers replaced',
}

/** Replaces (or adds, before "Generated configs") the section of RESULTS.md; notes under the table ("- ") are kept. */
function writeSection (o: Options, rows: readonly Row[]): void {
  const md = path.join(REPO_ROOT, 'bench', 'RESULTS.md')
  const notes = sectionNotes(sectionOf(fs.readFileSync(md, 'utf8'), SECTION))
  const date = new Date().toISOString().slice(0, 10)
  const ms = (x: number): string => `${x.toFixed(1)} ms`
  const section = `${SECTION}

\`npm run bench:reload\` (bench/reload.ts): an in-process Baton with ${o.services} services × ${o.servers} relayed servers
(no health checks, no traffic); each change reloaded ${o.reloads} times, alternating with the base config so every
reload applies it. loadConfigFile = read + YAML parse + validate + freeze; reload = \`baton.reload(config)\`
(the cluster diff and the routing switch). ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'}.

| date | change | loadConfigFile median | max | reload median | max |
| --- | --- | ---: | ---: | ---: | ---: |
${rows.map((r) => `| ${date} | ${TITLES[r.variant]} | ${ms(median(r.loadMs))} | ${ms(Math.max(...r.loadMs))} | ` +
    `${ms(median(r.reloadMs))} | ${ms(Math.max(...r.reloadMs))} |`).join('\n')}
${notes.length > 0 ? `\n${notes.join('\n')}\n` : ''}`
  replaceSection(md, SECTION, section)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
