// The chart, as SVG written by hand: per scenario, each target's rate as a ratio to direct (a dashed line
// marks 1.0 = the back end reached without a balancer); for the idle scenario, the balancer's peak RSS
// while it holds the connections, since direct has no balancer to compare with.
import type { Options, TargetName } from './options'
import type { Summary } from './report'
import { scenarioInfo } from './scenarios'

const COLORS: Readonly<Record<TargetName, string>> = {
  direct: '#888888',
  'baton-handoff': '#1b6ac9',
  'baton-splice': '#4f9be8',
  'baton-pipe': '#9cc7f2',
  'baton-splice-sticky': '#7fb3ee',
  'baton-pipe-sticky': '#c4ddf7',
  'haproxy-http': '#d9822b',
  'haproxy-tcp': '#f0b36b',
  nginx: '#3a9b4a'
}

const W = 820
const LABEL_W = 130
const BAR_W = 560
const BAR_H = 16
const GAP = 4

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

interface Bar { readonly target: TargetName, readonly value: number, readonly label: string, readonly missing: string }

function panel (title: string, groups: ReadonlyArray<{ name: string, bars: readonly Bar[] }>, max: number, refLine: number | undefined, y0: number): { svg: string[], height: number } {
  const svg: string[] = [`<text x="10" y="${y0 + 16}" font-size="15" font-weight="bold">${esc(title)}</text>`]
  let y = y0 + 30
  const scale = (v: number): number => (Math.min(v, max) / max) * BAR_W
  const top = y
  for (const g of groups) {
    svg.push(`<text x="10" y="${y + 13}" font-size="13" font-weight="bold">${esc(g.name)}</text>`)
    y += 20
    for (const b of g.bars) {
      svg.push(`<text x="${LABEL_W - 6}" y="${y + 12}" font-size="12" text-anchor="end">${esc(b.target)}</text>`)
      if (b.missing !== '') {
        svg.push(`<text x="${LABEL_W + 4}" y="${y + 12}" font-size="12" fill="#999">${esc(b.missing)}</text>`)
      } else {
        const w = Math.max(1, scale(b.value))
        svg.push(`<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${COLORS[b.target]}"/>`)
        svg.push(`<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${y + 12}" font-size="12">${esc(b.label)}</text>`)
      }
      y += BAR_H + GAP
    }
    y += 8
  }
  if (refLine !== undefined) {
    const x = (LABEL_W + scale(refLine)).toFixed(1)
    svg.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${y - 8}" stroke="#444" stroke-dasharray="4 3"/>`)
    svg.push(`<text x="${x}" y="${top - 2}" font-size="11" text-anchor="middle" fill="#444">direct = 1.0</text>`)
  }
  return { svg, height: y - y0 }
}

export function chartSvg (o: Options, rows: readonly Summary[], subtitle: string): string {
  const throughput = o.scenarios.filter((s) => s !== 'idle')
  const bar = (s: Summary, value: number, label: string): Bar =>
    ({ target: s.target, value, label, missing: s.state === 'ok' && Number.isFinite(value) ? '' : s.state === 'ok' ? 'n/a' : s.state })
  const ratioGroups = throughput.map((scen) => ({
    name: `${scen}: ${scenarioInfo(scen, o).title}`,
    bars: rows.filter((r) => r.scenario === scen && r.target !== 'direct')
      .map((r) => bar(r, r.ratio, `${r.ratio.toFixed(2)}×`))
  }))
  const maxRatio = Math.max(1.2, ...rows.filter((r) => r.target !== 'direct' && Number.isFinite(r.ratio)).map((r) => r.ratio * 1.1))
  const parts: string[] = []
  let y = 40
  if (ratioGroups.length > 0) {
    const p = panel('Rate as a ratio to direct (median of rounds; higher is better)', ratioGroups, maxRatio, 1, y)
    parts.push(...p.svg)
    y += p.height + 10
  }
  if (o.scenarios.includes('idle')) {
    const idle = rows.filter((r) => r.scenario === 'idle' && r.target !== 'direct')
    const max = Math.max(1, ...idle.map((r) => (r.balancerRssMiB ?? 0) * 1.15))
    const p = panel(`Balancer peak RSS holding ${o.idleConns.toLocaleString('en-US')} idle connections (MiB; lower is better)`,
      [{ name: 'idle', bars: idle.map((r) => bar(r, r.balancerRssMiB ?? NaN, `${(r.balancerRssMiB ?? NaN).toFixed(1)} MiB`)) }], max, undefined, y)
    parts.push(...p.svg)
    y += p.height + 10
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="sans-serif">`,
    `<rect width="${W}" height="${y}" fill="#fff"/>`,
    `<text x="10" y="22" font-size="17" font-weight="bold">Baton benchmark</text>`,
    `<text x="200" y="22" font-size="12" fill="#555">${esc(subtitle)}</text>`,
    ...parts,
    '</svg>',
    ''
  ].join('\n')
}
