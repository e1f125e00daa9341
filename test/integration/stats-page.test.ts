// The stats page (GET / on the admin listener) and its JSON (GET /stats.json): over plain HTTP, then
// loaded in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core), which must show every
// server of both services with its state, follow a state change within its one-second refresh, compute a
// connection rate, and run under its Content-Security-Policy without a violation. The screenshot goes to
// test-output/stats-page.png (gitignored).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STATS_PAGE_HTML } from '../../src/admin/stats-page'
import { native } from '../../src/native/binding'
import { exchange, harness, ROOT, type Harness } from '../helpers/cluster'

const CHROMIUM = '/usr/bin/chromium'
const hasChromium = fs.existsSync(CHROMIUM)
const linux = process.platform === 'linux' && native.available

type Baton = Awaited<ReturnType<Harness['baton']>>

/** Two services, four servers; a2 drained and b2 in maintenance through the operator's verb. */
async function start (h: Harness): Promise<Baton> {
  for (const name of ['a1', 'a2', 'b1', 'b2']) await h.backend(name)
  const server = (name: string, weight: number): string => `{ name: ${name}, handoff: ${h.sock(name)}, weight: ${weight} }`
  const b = await h.baton([
    'listen: 127.0.0.1:0',
    'admin: { listen: 127.0.0.1:0 }',
    'services:',
    `  - { name: s1, scheduler: wlc, servers: [ ${server('a1', 3)}, ${server('a2', 1)} ] }`,
    `  - { name: s2, scheduler: rr, servers: [ ${server('b1', 2)}, ${server('b2', 2)} ] }`,
  ].join('\n') + '\n')
  b.setState('s1', 'a2', 'drain')
  b.setState('s2', 'b2', 'maint')
  return b
}

describe.runIf(linux)('stats page over HTTP', () => {
  let h: Harness
  let base: string

  beforeAll(async () => {
    h = harness()
    const b = await start(h)
    base = `http://${b.admin!}`
    await exchange(b.ports[0]!, 'GET /x HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n', { expect: 1 })
  })
  afterAll(async () => { await h.close() })

  it('serves GET / as one self-contained HTML page under a strict Content-Security-Policy', async () => {
    const res = await request(`${base}/`)
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8')
    const csp = String(res.headers['content-security-policy'])
    expect(csp).toContain("default-src 'none'")
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*'/)
    expect(csp).toMatch(/style-src 'sha256-[A-Za-z0-9+/]+=*'/)
    expect(csp).toContain("connect-src 'self'")
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    const html = await res.body.text()
    expect(html).toBe(STATS_PAGE_HTML)
    expect(html).not.toMatch(/\b(src|href)=/) // no external assets
    expect(html).not.toContain('innerHTML')
    const head = await request(`${base}/`, { method: 'HEAD' })
    expect(head.statusCode).toBe(200)
    expect(await head.body.text()).toBe('')
  })

  it('serves GET /stats.json with the servers, outcomes, pending counts and the time', async () => {
    const res = await request(`${base}/stats.json`)
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('application/json')
    const body = await res.body.json() as {
      servers: Array<{ service: string, id: string, state: string, weight: number }>,
      outcomes: Record<string, number>, pending: Record<string, number>, time: number
    }
    expect(body.servers.map((s) => [s.service, s.id, s.state])).toEqual([
      ['s1', 'a1', 'up'], ['s1', 'a2', 'drain'], ['s2', 'b1', 'up'], ['s2', 'b2', 'maint'],
    ])
    expect(body.outcomes['handoff']).toBeGreaterThanOrEqual(1)
    expect(body.pending).toEqual({ head: 0, drain: 0, shed: 0 })
    expect(Math.abs(body.time - Date.now())).toBeLessThan(10_000)
  })
})

describe.runIf(linux && hasChromium)(hasChromium
  ? 'stats page in headless Chromium'
  : `stats page in headless Chromium (skipped: ${CHROMIUM} is missing; apt-get install chromium)`, () => {
  let h: Harness
  let b: Baton
  let profile: string
  let context: BrowserContext | undefined
  let page: Page
  const problems: string[] = []

  beforeAll(async () => {
    h = harness()
    b = await start(h)
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-chromium-'))
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      viewport: { width: 1000, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    })
    page = context.pages()[0] ?? await context.newPage()
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`))
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`) })
  }, 60_000)
  afterAll(async () => {
    await context?.close()
    if (profile !== undefined) fs.rmSync(profile, { recursive: true, force: true })
    await h.close()
  }, 30_000)

  /** Every server row on the page: its table's service, its id, its class and its cells' text. */
  const rows = (): Promise<Array<{ service: string, id: string, cls: string, cells: string[] }>> => page.$$eval('tr.server', (trs) =>
    trs.map((tr) => ({
      service: (tr.closest('table') as HTMLElement).dataset['service'] ?? '',
      id: (tr as HTMLElement).dataset['server'] ?? '',
      cls: tr.className,
      cells: [...tr.children].map((td) => td.textContent ?? ''),
    })))

  it('shows one table per service with every server, its state as a class, weights and connections', async () => {
    await page.goto(`http://${b.admin!}/`, { timeout: 30_000 })
    await page.waitForSelector('table[data-service="s2"] tr[data-server="b2"]', { timeout: 15_000 })
    expect(await rows()).toEqual([
      { service: 's1', id: 'a1', cls: 'server state-up', cells: ['a1', 'up', 'handoff', '3', '3', '0', '0', '', ''] },
      { service: 's1', id: 'a2', cls: 'server state-drain', cells: ['a2', 'drain', 'handoff', '0', '1', '0', '0', '', ''] },
      { service: 's2', id: 'b1', cls: 'server state-up', cells: ['b1', 'up', 'handoff', '2', '2', '0', '0', '', ''] },
      { service: 's2', id: 'b2', cls: 'server state-maint', cells: ['b2', 'maint', 'handoff', expect.any(String), '2', '0', '0', '', ''] },
    ])
    const totals = await page.$$eval('table.service tr.total', (trs) => trs.map((tr) => tr.children[1]?.textContent))
    expect(totals).toEqual(['1/2 up', '1/2 up'])
    expect(problems).toEqual([])
  })

  it('follows a state change and computes a connection rate from successive polls', async () => {
    b.setState('s1', 'a1', 'maint')
    await page.waitForSelector('tr[data-server="a1"].state-maint', { timeout: 10_000 })
    b.setState('s1', 'a1', 'up')
    await page.waitForSelector('tr[data-server="a1"].state-up', { timeout: 10_000 })
    for (let i = 0; i < 3; i++) await exchange(b.ports[0]!, 'GET /x HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n', { expect: 1 })
    await page.waitForFunction(() => document.querySelector('#conn-rate')?.children[1]?.textContent === '3', undefined, { timeout: 10_000 })
    await page.waitForFunction(() => /^\d+\.\d$/.test(document.querySelector('#conn-rate')?.children[2]?.textContent ?? ''),
      undefined, { timeout: 10_000 })
    const file = path.join(ROOT, 'test-output', 'stats-page.png')
    fs.mkdirSync(path.dirname(file), { recursive: true })
    await page.screenshot({ path: file, fullPage: true })
    console.log(`stats page screenshot: ${file}`)
    expect(problems).toEqual([])
  })
})
