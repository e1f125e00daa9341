// baton/backend's sockets on disk and in the abstract namespace, with real processes, with the addon
// (handoff) and without it (relay: a stream socket with PROXY v2): '@name' stays abstract, a socket file is
// 0600 even under umask 0, a SIGKILLed back end's stale file does not block its restart, a live back end's
// socket is never taken, and nothing is left behind: no file, no directory, no descriptor, no timer.
import { execFile, fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { native } from '../../src/native/binding'
import { exchange, harness, ROOT, waitFor, type Harness } from '../helpers/cluster'
import { boundNames, getRelayed, unixNames } from '../helpers/unix-sockets'

const linux = process.platform === 'linux'
let seq = 0

const CHILD = `const http = require('node:http'), fs = require('node:fs')
const { acceptHandoffs } = require(${JSON.stringify(path.join(ROOT, 'dist/src/backend/index.js'))})
const opts = JSON.parse(process.argv[2])
if (opts.umask !== undefined) process.umask(opts.umask)
const fds = () => fs.readdirSync('/proc/self/fd').length
let before = 0
const server = http.createServer((req, res) => { res.setHeader('x-baton-backend', opts.name); res.end('hello from ' + opts.name) })
// Warm up: libuv keeps a spare fd (/dev/null) from the first listen on, Node opens a few more lazily.
const warm = require('node:net').createServer().listen('\0baton-warm-' + process.pid, () => warm.close(() => setTimeout(start, 20)))
const start = () => { before = fds(); acceptHandoffs(server, opts.mode === undefined ? { path: opts.path } : { path: opts.path, mode: opts.mode }).then((handle) => {
  process.send({ ready: handle.mode })
  process.on('message', async () => {
    await handle.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await new Promise((resolve) => setTimeout(resolve, 50))
    process.send({ closed: true, before, after: fds(), timers: process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length })
    process.disconnect()
  })
}, (err) => { process.send({ error: err.code, message: err.message, listening: server.listening }); process.disconnect() }) }`

interface Child { readonly proc: ChildProcess; readonly tmp: string; readonly cwd: string; readonly first: Record<string, unknown> }

/** Each kind of back end these tests run: with the addon (if it loaded here) and without. */
const KINDS = [...(native.available ? ['handoff'] : []), 'relay'] as const

// In this process (the addon is loaded here): attach, take a channel, close; and the failures. Descriptors
// and timers are counted before and after; the private tracking directory must never outlive the call.
describe.runIf(linux && native.available)('acceptHandoffs in process', () => {
  const fdCount = (): number => fs.readdirSync('/proc/self/fd').length
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  let dir = ''
  let tmp = ''
  const savedTmp = process.env.TMPDIR
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-inproc-'))
    tmp = fs.mkdtempSync(path.join(dir, 'tmp-'))
    process.env.TMPDIR = tmp // os.tmpdir() of ensureTracking
  })
  afterAll(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = savedTmp
    fs.rmSync(dir, { recursive: true, force: true })
  })

  async function settled (fds: number, t: number): Promise<void> {
    for (let i = 0; i < 50 && (fdCount() !== fds || timers() !== t); i++) await new Promise((r) => setTimeout(r, 20))
    expect(fdCount()).toBe(fds)
    expect(timers()).toBe(t)
  }

  it('close() leaves no descriptor, timer, socket file or directory', async () => {
    const { acceptHandoffs } = await import('../../src/backend/index')
    const http = await import('node:http')
    const file = path.join(dir, 'in.sock')
    const fds = fdCount()
    const t = timers()
    const server = http.createServer((_req, res) => res.end('ok'))
    const handle = await acceptHandoffs(server, { path: file })
    expect(server.listening).toBe(true)
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(tmp)).toEqual([])
    const chan = native.seqpacketConnect(file)
    await waitFor(() => handle.channels === 1)
    await handle.close()
    await handle.close() // idempotent
    native.close(chan)
    await new Promise((resolve) => server.close(resolve))
    expect(fs.existsSync(file)).toBe(false)
    expect(fs.readdirSync(dir)).toEqual([path.basename(tmp)])
    expect(fs.readdirSync(tmp)).toEqual([])
    await settled(fds, t)
  })

  it('a failed attach (path in use, not a socket, bad mode) undoes everything it started', async () => {
    const { acceptHandoffs } = await import('../../src/backend/index')
    const http = await import('node:http')
    const file = path.join(dir, 'held.sock')
    const held = native.seqpacketListen(file, 4)
    const plain = path.join(dir, 'plain')
    fs.writeFileSync(plain, 'x')
    const fds = fdCount()
    const t = timers()
    for (const [opts, reason] of [
      [{ path: file }, 'another process is listening on it'],
      [{ path: plain }, 'not a socket'],
      [{ path: path.join(dir, 'm.sock'), mode: 0o1666 }, 'mode must be'],
      [{ path: path.join(dir, 'no/such/dir.sock') }, 'ENOENT'],
    ] as const) {
      const server = http.createServer()
      const err = await acceptHandoffs(server, opts).then(() => undefined, (e: unknown) => e)
      expect(err).toMatchObject({ code: 'BATON_ERR_BACKEND_ATTACH' })
      expect((err as Error).message).toContain(opts.path)
      expect((err as Error).message).toContain(reason)
      expect(server.listening).toBe(false)
    }
    expect(fs.readdirSync(tmp)).toEqual([])
    expect(fs.readdirSync(dir).sort()).toEqual(['held.sock', 'plain', path.basename(tmp)].sort())
    await settled(fds, t)
    native.close(held)
  })
})

describe.runIf(linux)('back-end sockets', () => {
  let h: Harness
  let script = ''
  const children: ChildProcess[] = []
  beforeAll(() => {
    h = harness()
    fs.chmodSync(h.dir, 0o755) // so that only the socket's own mode keeps other uids out
    script = path.join(h.dir, 'child.js')
    fs.writeFileSync(script, CHILD)
  })
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await h.close()
  })

  /** A back end in its own process, with its own cwd and TMPDIR (both must stay empty). */
  async function backend (kind: string, opts: { path: string, mode?: number, umask?: number }): Promise<Child> {
    const cwd = fs.mkdtempSync(path.join(h.dir, 'cwd-'))
    const tmp = fs.mkdtempSync(path.join(h.dir, 'tmp-'))
    const env = { ...process.env, TMPDIR: tmp, ...(kind === 'relay' ? { BATON_NO_NATIVE: '1' } : {}) }
    const proc = fork(script, [JSON.stringify({ name: `be${++seq}`, ...opts })], { cwd, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(proc)
    const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
      proc.once('message', (m) => resolve(m as Record<string, unknown>))
      proc.once('exit', (code) => reject(new Error(`back end exited ${code}`)))
    })
    if (first.ready !== undefined) expect(first.ready).toBe(kind)
    return { proc, tmp, cwd, first }
  }

  /** close() in the child, then its own count of descriptors and timers. */
  async function closeChild (c: Child): Promise<void> {
    const report = new Promise<Record<string, unknown>>((resolve) => c.proc.once('message', (m) => resolve(m as Record<string, unknown>)))
    c.proc.send('close')
    const r = await report
    expect(r.after).toBe(r.before)
    expect(r.timers).toBe(0)
    await new Promise((resolve) => c.proc.once('exit', resolve))
  }

  /** One request to the back end at `where`: through a real dispatcher (handoff), or over its stream socket. */
  async function get (kind: string, where: string): Promise<string> {
    if (kind === 'relay') return getRelayed(where)
    const b = await h.baton(`listen: 127.0.0.1:0\nservices: [ { name: s, scheduler: rr, servers: [ { name: x, handoff: "${where}" } ] } ]\n`)
    let body = ''
    await waitFor(() => b.servers()[0]?.up === true, 3000)
    const r = await exchange(b.ports[0]!, 'GET / HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n')
    body = r.responses[0]?.body ?? `status ${r.responses[0]?.status}`
    await b.close()
    return body
  }

  /** No way in for another process: each name is the handoff's own, or a path no longer on disk. */
  function expectOnlyReachableAt (pid: number, handoff: string): void {
    for (const name of boundNames(pid)) {
      if (name === handoff) continue
      expect(name.startsWith('@'), `abstract name ${name}`).toBe(false)
      expect(fs.existsSync(name), `socket file ${name}`).toBe(false)
    }
  }

  describe.each(KINDS)('%s', (kind) => {
    it.runIf(kind === 'handoff')('keeps "@name" abstract: no file in the cwd or TMPDIR, nothing else bound, served, gone after close()', async () => {
      const name = `@baton-sockets-${process.pid}-${++seq}`
      const be = await backend(kind, { path: name, umask: 0 })
      expect(fs.readdirSync(be.cwd)).toEqual([])
      expect(fs.readdirSync(be.tmp)).toEqual([])
      expect(unixNames()).toContain(name)
      expect(unixNames().filter((n) => n.includes(name.slice(1)) && n !== name)).toEqual([])
      expectOnlyReachableAt(be.proc.pid!, name)
      expect(await get(kind, name)).toMatch(/^hello from be\d+$/)
      await closeChild(be)
      expect(unixNames()).not.toContain(name)
      expect(fs.readdirSync(be.cwd)).toEqual([])
    })

    // Without SO_PEERCRED an abstract name would let every local uid in (and forge PROXY addresses).
    it.runIf(kind === 'relay')('refuses "@name" without the addon, creating nothing', async () => {
      const name = `@baton-sockets-${process.pid}-${++seq}`
      const be = await backend(kind, { path: name, umask: 0 })
      expect(be.first).toMatchObject({ error: 'BATON_ERR_BACKEND_ATTACH', listening: false })
      expect(be.first.message).toMatch(/^cannot listen on @baton-sockets-\d+-\d+: an abstract name needs the native addon/)
      expect(fs.readdirSync(be.cwd)).toEqual([])
      expect(fs.readdirSync(be.tmp)).toEqual([])
      expect(unixNames().filter((n) => n.includes(name.slice(1)))).toEqual([])
    })

    it('creates a socket file 0600 under umask 0, keeps an explicit mode, and removes it on close()', async () => {
      const file = path.join(h.dir, `m${++seq}.sock`)
      const be = await backend(kind, { path: file, umask: 0 })
      const st = fs.statSync(file)
      expect(st.isSocket()).toBe(true)
      expect(st.mode & 0o777).toBe(0o600)
      expect(fs.readdirSync(be.tmp)).toEqual([])
      expect(fs.readdirSync(h.dir).filter((n) => n.startsWith('.baton-'))).toEqual([])
      expectOnlyReachableAt(be.proc.pid!, file)
      const group = path.join(h.dir, `g${++seq}.sock`)
      const be2 = await backend(kind, { path: group, umask: 0, mode: 0o660 })
      expect(fs.statSync(group).mode & 0o777).toBe(0o660)
      await closeChild(be)
      await closeChild(be2)
      expect(fs.existsSync(file)).toBe(false)
      expect(fs.existsSync(group)).toBe(false)
    })

    it('replaces the stale file of a SIGKILLed back end, and the new one serves', async () => {
      const file = path.join(h.dir, `k${++seq}.sock`)
      const first = await backend(kind, { path: file })
      first.proc.kill('SIGKILL')
      await new Promise((resolve) => first.proc.once('exit', resolve))
      expect(fs.statSync(file).isSocket()).toBe(true) // stale: nobody could remove it
      const second = await backend(kind, { path: file })
      expect(second.first.ready).toBe(kind)
      expect(await get(kind, file)).toMatch(/^hello from be\d+$/)
      await closeChild(second)
      expect(fs.existsSync(file)).toBe(false)
    })

    it('never takes a live back end\'s socket: BATON_ERR_BACKEND_ATTACH naming the path, the first one still serves', async () => {
      const abstract = kind === 'handoff' ? [`@baton-sockets-live-${process.pid}-${++seq}`] : []
      for (const where of [path.join(h.dir, `l${++seq}.sock`), ...abstract]) {
        const live = await backend(kind, { path: where })
        const ino = where.startsWith('@') ? 0 : fs.statSync(where).ino
        const second = await backend(kind, { path: where })
        expect(second.first).toMatchObject({ error: 'BATON_ERR_BACKEND_ATTACH', listening: false })
        expect(second.first.message).toContain(where)
        expect(fs.readdirSync(second.tmp)).toEqual([])
        if (ino !== 0) expect(fs.statSync(where).ino).toBe(ino)
        expect(await get(kind, where)).toMatch(/^hello from be\d+$/)
        await closeChild(live)
      }
    })

    it('leaves a path that is not a socket alone', async () => {
      const file = path.join(h.dir, `plain${++seq}`)
      fs.writeFileSync(file, 'keep me')
      const be = await backend(kind, { path: file })
      expect(be.first).toMatchObject({ error: 'BATON_ERR_BACKEND_ATTACH' })
      expect(be.first.message).toContain('not a socket')
      expect(fs.readFileSync(file, 'utf8')).toBe('keep me')
    })
  })

  // As root: another uid reaches nothing of a back end running under umask 0 (the fault this fixes: a
  // world-writable '<path>.http' tracking socket answered 200 past routing and SO_PEERCRED).
  it.runIf(process.getuid?.() === 0)('another uid cannot connect to anything a back end binds (needs root)', async () => {
    const file = path.join(h.dir, `u${++seq}.sock`)
    const abstract = `@baton-sockets-uid-${process.pid}-${++seq}`
    const be = [await backend(KINDS[0], { path: file, umask: 0 }), await backend(KINDS[0], { path: abstract, umask: 0 })]
    const names = be.flatMap((b) => boundNames(b.proc.pid!))
    expect(names).toContain(file)
    const probe = `const net = require('node:net'); process.setgid(65534); process.setuid(65534)
const names = ${JSON.stringify(names.filter((n) => n !== abstract))}
Promise.all(names.map((n) => new Promise((resolve) => { const s = net.connect(n.startsWith('@') ? '\\0' + n.slice(1) : n)
  s.on('connect', () => { s.destroy(); resolve(n + ' connected') }); s.on('error', (e) => resolve(n + ' ' + e.code)) })))
  .then((r) => console.log(JSON.stringify(r)))`
    const out = await new Promise<string>((resolve) => execFile(process.execPath, ['-e', probe], (_e, stdout) => resolve(stdout)))
    const results = JSON.parse(out) as string[]
    expect(results.length).toBeGreaterThan(0)
    for (const r of results) expect(r).toMatch(/ (EACCES|ENOENT)$/)
    for (const b of be) await closeChild(b)
  })
})
