// `baton agent --listen HOST:PORT --secret-file FILE --vip VIP:PORT --handoff PATH`: the real-server side of
// forward: migrate (src/agent/agent.ts). Runs until SIGTERM or SIGINT. Exit codes: 0 stopped, 1 cannot run
// here (no addon, no CAP_NET_ADMIN, no early-drop table for the VIP, cannot listen), 2 usage.
import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { parseArgs } from 'node:util'
import { parseAddress } from '../config/address'
import { readTokenFile } from '../config/read'
import { RS_NFT_TABLE } from '../host/nft-table'
import { run as runCommand } from '../host/system'
import { createLogger, flushLog, type LogLevel } from '../log'

const HELP = `Usage: baton agent --listen HOST:PORT --secret-file FILE --vip VIP:PORT --handoff PATH [--log-level LEVEL]

Runs on a real server's host. Takes the connections the dispatcher migrates to this host (servers given as
agent: HOST:PORT, forward: migrate), restores each on the VIP and hands it to the local back end over its
handoff socket (the back end uses baton/backend acceptHandoffs, unchanged). Needs CAP_NET_ADMIN (TCP_REPAIR)
and the host setup of \`baton host realserver --vip VIP\`.

  --listen HOST:PORT    where the dispatcher's control connection comes in
  --secret-file FILE    the shared secret (the dispatcher's migrate.secretFile), 16 to 512 visible characters
  --vip VIP:PORT        the dispatcher's listen address (IPv4): the local end of every migrated connection
  --handoff PATH        the local back end's handoff socket
  --log-level LEVEL     fatal, error, warn, info (default), debug, trace, silent
`

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const SECRET = /^[\x21-\x7e]{16,512}$/
const CAP_NET_ADMIN = 12n

class AgentUsageError extends Error {}

function hasNetAdmin (): boolean {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'))
  return ((BigInt('0x' + (line?.split(/\s+/)[1] ?? '0')) >> CAP_NET_ADMIN) & 1n) === 1n
}

/**
 * Why `baton host realserver`'s early-drop table for this VIP is not in place, or undefined. Without it a
 * packet that reaches this host before its migrated socket is restored is answered with RST (the
 * dispatcher steers a flow here before the agent has it), so the agent does not run: it never degrades
 * silently. Read once at start, with `nft`.
 */
function earlyDropMissing (vip: string): string | undefined {
  const r = runCommand({ argv: ['nft', 'list', 'table', 'ip', RS_NFT_TABLE] })
  const fix = `run \`baton host realserver --vip ${vip}\` first`
  if (r.status !== 0) return `no nft table ip ${RS_NFT_TABLE} (${r.stderr.trim().split('\n')[0] ?? ''}): ${fix}`
  if (!r.stdout.includes(`ip daddr ${vip} `) || !r.stdout.includes('socket transparent 1')) {
    return `nft table ip ${RS_NFT_TABLE} has no early-drop rule for ${vip}: ${fix}`
  }
  return undefined
}

function address (text: string | undefined, option: string): { host: string; port: number } {
  if (text === undefined) throw new AgentUsageError(`${option} is required`)
  const a = parseAddress(text, 1)
  if (typeof a === 'string') throw new AgentUsageError(`${option}: ${a}, got "${text}"`)
  return a
}

/** Runs the agent; resolves with the exit code. `err` writes to stderr. */
export async function agent (argv: readonly string[], err: (s: string) => void): Promise<number> {
  let values
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        listen: { type: 'string' }, 'secret-file': { type: 'string' }, vip: { type: 'string' },
        handoff: { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    }))
    if (values.help === true) { process.stdout.write(HELP); return 0 }
    const listen = address(values.listen, '--listen')
    const vip = address(values.vip, '--vip')
    if (!isIPv4(vip.host)) throw new AgentUsageError(`--vip must be a numeric IPv4 address, got "${vip.host}"`)
    const file = values['secret-file']
    if (file === undefined) throw new AgentUsageError('--secret-file is required')
    const handoff = values.handoff
    if (handoff === undefined) throw new AgentUsageError('--handoff is required')
    const level = values['log-level'] ?? 'info'
    if (!LEVELS.includes(level)) throw new AgentUsageError(`--log-level must be one of ${LEVELS.join(', ')}`)
    const secret = readTokenFile(file)
    if (!secret.ok) throw new AgentUsageError(`--secret-file: ${secret.reason}`)
    if (!SECRET.test(secret.value)) throw new AgentUsageError(`--secret-file: must hold 16 to 512 visible ASCII characters (${file})`)
    return await run({ listen, vip, handoff, secret: secret.value, level: level as LogLevel }, err)
  } catch (e) {
    if (!(e instanceof AgentUsageError) && (e as Error).name !== 'TypeError') throw e
    err(`baton agent: ${(e as Error).message}\n\n${HELP}`)
    return 2
  }
}

async function run (o: { listen: { host: string; port: number }; vip: { host: string; port: number }; handoff: string; secret: string; level: LogLevel },
  err: (s: string) => void): Promise<number> {
  const { native } = await import('../native/binding')
  if (!native.available || !hasNetAdmin()) {
    const why = native.available ? 'this process lacks CAP_NET_ADMIN (TCP_REPAIR needs it)' : `the native addon did not load (${native.loadError?.message ?? ''})`
    err(`baton agent: cannot restore connections: ${why} (BATON_ERR_MIGRATE_UNAVAILABLE)\n`)
    return 1
  }
  const early = earlyDropMissing(o.vip.host)
  if (early !== undefined) {
    err(`baton agent: cannot restore connections: ${early} (BATON_ERR_MIGRATE_UNAVAILABLE)\n`)
    return 1
  }
  const { Agent } = await import('../agent/agent')
  const log = createLogger(o.level)
  const a = new Agent({ listen: o.listen, vip: o.vip, handoff: o.handoff, secret: o.secret, log })
  try {
    await a.start()
  } catch (e) {
    err(`baton agent: cannot listen on ${o.listen.host}:${o.listen.port}: ${(e as Error).message}\n`)
    await a.close()
    return 1
  }
  flushLog(log)
  const flush = setInterval(() => { flushLog(log) }, 1000) // the log is buffered; the agent's lines are few and rare
  flush.unref()
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => { resolve() })
    process.once('SIGTERM', () => { resolve() })
  })
  await a.close()
  log.info('baton agent stopped')
  flushLog(log)
  return 0
}
