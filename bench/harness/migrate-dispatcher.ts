// The dispatcher process of bench/migrate.ts: Baton started from a config file (as `baton start` would,
// logging at warn), run in the dispatcher's network namespace. It subscribes to the forwarder's
// `baton:migrate:migrated` channel for the step times of each migration and answers the bench over
// stdin/stdout, one JSON line each way:
//   {"op":"status"}  -> {"servers":{"rs1":"up",...}}
//   {"op":"take"}    -> {"steps":[[µs per migration] per MIGRATE_STEPS],"cpuUs":utime+stime} (and starts afresh)
//   {"op":"exit"}    -> closes Baton and exits (so `node --cpu-prof` writes its profile)
// Usage: node dist/bench/harness/migrate-dispatcher.js CONFIG.yaml
import { subscribe } from 'node:diagnostics_channel'
import readline from 'node:readline'
import pino from 'pino'

import { startBaton } from '../../src/baton'
import { loadConfigFile } from '../../src/config/load'
import { MIGRATE_STEPS } from '../../src/forward/migrate-times'

async function main (): Promise<void> {
  let steps: number[][] = MIGRATE_STEPS.map(() => [])
  subscribe('baton:migrate:migrated', (m) => {
    const s = (m as { steps: number[] }).steps
    for (let i = 0; i < s.length; i++) steps[i]!.push(s[i]!)
  })
  const answer = (o: unknown): void => { process.stdout.write(`${JSON.stringify(o)}\n`) }
  const lines = readline.createInterface({ input: process.stdin }) // holds the loop while Baton starts
  const baton = await startBaton(loadConfigFile(process.argv[2]!), { logger: pino({ level: 'warn' }, pino.destination(2)) })
  lines.on('line', (line) => {
    const op = (JSON.parse(line) as { op: string }).op
    if (op === 'status') {
      answer({ servers: Object.fromEntries(baton.servers().map((s) => [s.id, s.state])) })
    } else if (op === 'take') {
      const u = process.cpuUsage()
      answer({ steps, cpuUs: u.user + u.system })
      steps = MIGRATE_STEPS.map(() => [])
    } else if (op === 'exit') {
      void baton.close().then(() => process.exit(0))
    }
  })
  answer({ ready: process.pid })
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
