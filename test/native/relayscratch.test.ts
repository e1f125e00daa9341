import { it } from 'vitest'
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { createSpliceForwarder } from '../../src/forward/splice'
import { createPipeForwarder } from '../../src/forward/pipe'
import { loadRelay } from '../../src/native/relay'
import { FdListener, connOf, targetOf, recorder } from '../integration/relay-helpers'
const mod = loadRelay()!
function peer (args: string[]) { const c = spawn(process.execPath, ['/tmp/rb/peer.js', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }); const l = readline.createInterface({ input: c.stdout! })[Symbol.asyncIterator](); return { c, next: async () => String((await l.next()).value) } }
import fs from 'node:fs'
function threads () { const out: Record<string, number> = {}; for (const t of fs.readdirSync('/proc/self/task')) { try { const st = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8'); const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')); const f = st.slice(st.lastIndexOf(')') + 2).split(' '); const k = name.startsWith('baton-relay') ? 'relay' : t === String(process.pid) ? 'main' : 'other'; out[k] = (out[k] ?? 0) + (Number(f[11]) + Number(f[12])) * 10 } catch {} } return out }
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3 }
it('measure', async () => {
  const lis = new FdListener(mod); const port = await lis.listen()
  const GiB = 1 << 30
  for (const name of [] as string[]) {
    const fwd = name === 'splice' ? createSpliceForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0 }) : createPipeForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0 })
    for (const dir of ['down', 'up']) {
      const srv = peer(['server', String(dir === 'down' ? GiB : 0)]); const sport = Number(await srv.next())
      const cl = peer(['bulk', String(port), String(dir === 'up' ? GiB : 0)])
      const a = await lis.next(); const c0 = cpu(); const t0 = Date.now(); const rec = recorder()
      fwd.forward(connOf(a), targetOf(sport), rec)
      await cl.next(); await rec.done
      console.log(`${name} ${dir}: ${(Date.now() - t0)} ms, dispatcher CPU ${(cpu() - c0).toFixed(0)} ms per GiB`)
      srv.c.kill(); cl.c.kill()
    }
    await fwd.close()
  }
  const echo = peer(['echo']); const eport = Number(await echo.next())
  const N = 5000
  let stale = 0
  for (const name of ['none', 'splice', 'pipe', 'splice']) {
    const fwd = name === 'splice' ? createSpliceForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0 }) : createPipeForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0 })
    const gen = stale
    const cl = peer(['conns', String(port), String(N), '20'])
    const c0 = cpu(); const th0 = threads(); let done = 0
    const all = new Promise<void>((resolve) => {
      const loop = async () => { while (done < N) { if (stale !== gen) return; const a = await lis.next(); if (name === 'none') { mod.closeFd(a.fd); if (++done === N) resolve(); continue }
        fwd.forward(connOf(a), targetOf(eport), { taken () {}, failed (e) { console.log('FAILED', e.message); if (++done === N) resolve() }, closed () { if (++done === N) resolve() } }) } }
      void loop()
    })
    await all; const ms = await cl.next(); const th1 = threads(); stale++
    console.log(name, Object.fromEntries(Object.entries(th1).map(([k, v]) => [k, ((v - (th0[k] ?? 0)) * 1000 / N).toFixed(1)])))
    console.log(`${name}: ${N} conns, ${ms}, dispatcher CPU ${((cpu() - c0) * 1000 / N).toFixed(1)} us/conn`)
    await fwd.close()
  }
  echo.c.kill(); await lis.close()
}, 300000)
