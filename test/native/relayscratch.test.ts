import { it } from 'vitest'
import { spawn } from 'node:child_process'
import path from 'node:path'
import readline from 'node:readline'
import { connectClient, readHash, writePattern } from '../integration/relay-helpers'
it('direct', async () => {
  const bulk = 1 << 30
  const child = spawn(process.execPath, [path.join(__dirname, '../integration/relay-fixture-server.js'), 'hash', String(bulk)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const port = Number(String((await lines.next()).value).split(' ')[1])
  const client = await connectClient(port)
  const t0 = Date.now(); const c0 = process.cpuUsage()
  await Promise.all([readHash(client), writePattern(client, bulk, 1).then(() => client.end())])
  await lines.next()
  console.log('direct', Date.now() - t0, 'ms', process.cpuUsage(c0))
  child.kill()
}, 60000)
