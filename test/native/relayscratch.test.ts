import { it } from 'vitest'
import { spawn } from 'node:child_process'
import readline from 'node:readline'
import { createSpliceForwarder } from '../../src/forward/splice'
import { createPipeForwarder } from '../../src/forward/pipe'
import { loadRelay } from '../../src/native/relay'
import { FdListener, connOf, targetOf, recorder } from '../integration/relay-helpers'
const mod = loadRelay()!
function peer (args: string[]) { const c = spawn(process.execPath, ['/tmp/rb/peer.js', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }); const l = readline.createInterface({ input: c.stdout! })[Symbol.asyncIterator](); return { c, next: async () => String((await l.next()).value) } }
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3 }
it('measure', async () => {
  const lis = new FdListener(mod); const port = await lis.listen()
  const GiB = 1 << 30
  for (const name of ['splice', 'pipe', 'splice', 'pipe']) {
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
  for (const name of ['none', 'splice', 'pipe', 'none', 'splice', 'pipe']) {
    const fwd = name === 'splice' ? createSpliceForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0 }) : createPipeForwarder({ connectTimeoutMs: 2000, idleTimeoutMs: 0 })
    const cl = peer(['conns', String(port), String(N), '20'])
    const c0 = cpu(); let done = 0
    const all = new Promise<void>((resolve) => {
      const loop = async () => { while (done < N) { const a = await lis.next(); if (name === 'none') { mod.closeFd(a.fd); if (++done === N) resolve(); continue }
        fwd.forward(connOf(a), targetOf(eport), { taken () {}, failed () { throw new Error('f') }, closed () { if (++done === N) resolve() } }) } }
      void loop()
    })
    await all; const ms = await cl.next()
    console.log(`${name}: ${N} conns, ${ms}, dispatcher CPU ${((cpu() - c0) * 1000 / N).toFixed(1)} us/conn`)
    await fwd.close()
  }
  echo.c.kill(); await lis.close()
}, 300000)
