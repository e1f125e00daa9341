// `npm run bench:repair`: the cost of the migrate method's syscalls on this machine, per connection, in one
// process on loopback (no agent, no IPC): dump + close in repair mode (the dispatcher's half), the state's
// encode + decode, restore until just before leaving repair mode (the agent's half), and go (repair off,
// window probe, SO_REUSEADDR). Where `ip` and `nft` are there (root), also the nft netlink batches of one
// flow element that freeze and steer it, against a map in a throwaway network namespace. Each connection
// is a real loopback connection with a request in its receive queue; the restored socket then serves it.
// With nft, every connection is followed by one more whose freeze, dump + close and steer are one addon
// call (NftSetHandle.moveOut), which also writes the dumped state into the MIGRATE frame: its row ("moveOut
// + frame": the frame's head stamped in JS, as forward/migrate.ts does, then the call) sits beside the
// separate calls' sum and beside that sum plus the frame built in JS from the dumped TcpRepairState
// (encodeMigrateOf, as the dispatcher did before moveOut wrote the frame), same run.
//   npm run bench:repair -- [--conns=500] [--warmup=50]
// Prints median / p90 / p99 / max in µs per step (the research prototype's C figures: dump + close 9.7,
// restore 9.9 median, ../shared/research/tcp-repair-migration.md).
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import os from 'node:os'
import { parseArgs } from 'node:util'

import { native } from '../src/native/binding'
import { unsentOf } from '../src/native/repair'
import type { NftSetHandle } from '../src/native/types'
import { encodeMigrateOf, encodeMigratePrefix, type MigrateHead, stampMigratePrefix } from '../src/protocol/migrate-control'
import { decodeMigrateState, encodeMigrateState } from '../src/protocol/migrate-state'

const STEPS = ['freeze (nft add)', 'dump + close', 'encode + decode', 'restore', 'steer (nft replace)', 'go',
  'total', 'freeze+dump+close+steer', 'the same + frame in JS', 'moveOut + frame'] as const
type Step = typeof STEPS[number]

const REQUEST = Buffer.from('GET /bench HTTP/1.1\r\nHost: vip\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n')
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const nowUs = (): number => Number(process.hrtime.bigint()) / 1000
/** A MIGRATE's head as the dispatcher writes it (forward/migrate.ts), for connection `id` at `at` (ms). */
const headOf = (id: number, at: number): MigrateHead => ({ id, sentAt: at, deadline: at + 500, service: 'web', route: 'route-0' })

/** A map in its own network namespace, and a handle on it; undefined where that is not possible here. */
function setUpNft (): { set: NftSetHandle; ns: string } | undefined {
  const ns = `baton-bench-${process.pid}`
  try {
    execFileSync('ip', ['netns', 'add', ns], { stdio: 'ignore' })
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: 'table ip baton {\n map flows { type ipv4_addr . inet_service : mark; flags timeout; size 65536; }\n}\n',
    })
    const back = native.netnsEnter(`/run/netns/${ns}`)
    try {
      return { set: native.nftOpen({ table: 'baton', set: 'flows' }), ns }
    } finally {
      native.netnsReturn(back)
    }
  } catch (err) {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
    console.error(`nft steps skipped: ${(err as Error).message.split('\n')[0] ?? ''}`)
    return undefined
  }
}

async function connect (listenFd: number, port: number): Promise<{ client: net.Socket; fd: number }> {
  const client = net.connect(port, '127.0.0.1')
  await once(client, 'connect')
  let fd = -1
  while ((fd = native.accept(listenFd)) < 0) await sleep(0)
  client.write(REQUEST)
  const peek = Buffer.alloc(REQUEST.length + 1)
  while (native.peek(fd, peek) !== REQUEST.length) await sleep(0)
  return { client, fd }
}

/** One migration, timed step by step. The restored socket answers, so the connection really moved. */
function migrateOnce (fd: number, client: net.Socket, nft: NftSetHandle | undefined, t: Map<Step, number[]>): number {
  const flow = { address: '127.0.0.1', port: client.localPort ?? 0 }
  const t0 = nowUs()
  nft?.add([{ ...flow, mark: 0xff, timeoutMs: 60_000 }])
  const t1 = nowUs()
  const state = native.repairDump(fd)
  native.repairClose(fd)
  const t2 = nowUs()
  const wire = decodeMigrateState(encodeMigrateState(state))
  if (!wire.ok) throw new Error(wire.reason)
  const t3 = nowUs()
  const restored = native.repairRestore(wire.state)
  const t4 = nowUs()
  nft?.replace([{ ...flow, mark: 1, timeoutMs: 60_000 }])
  const t5 = nowUs()
  native.repairGo(restored, unsentOf(wire.state))
  const t6 = nowUs()
  encodeMigrateOf(headOf(fd, t6 / 1000), state) // the frame as the dispatcher built it before moveOut wrote it
  const t7 = nowUs()
  const push = (s: Step, us: number): void => { t.get(s)?.push(us) }
  if (nft !== undefined) { push('freeze (nft add)', t1 - t0); push('steer (nft replace)', t5 - t4) }
  push('dump + close', t2 - t1)
  push('encode + decode', t3 - t2)
  push('restore', t4 - t3)
  push('go', t6 - t5)
  push('total', t6 - t0)
  push('freeze+dump+close+steer', t2 - t0 + t5 - t4)
  push('the same + frame in JS', t2 - t0 + t5 - t4 + t7 - t6)
  nft?.delete([flow])
  return restored
}

/**
 * The same with freeze, dump + close and steer in one call that returns the MIGRATE frame; the frame's head
 * and that call are timed. The restore is from the frame's state, as the agent's.
 */
function moveOutOnce (fd: number, client: net.Socket, nft: NftSetHandle, localPort: number, head: Buffer,
  t: Map<Step, number[]>): number {
  const flow = { address: '127.0.0.1', port: client.localPort ?? 0 }
  const ends = { clientAddress: flow.address, clientPort: flow.port, localAddress: '127.0.0.1', localPort }
  const t0 = nowUs()
  const prefix = stampMigratePrefix(head, fd, t0 / 1000, t0 / 1000 + 500)
  const { frame, stateAt, steerError } = nft.moveOut(fd, ends, prefix,
    { freezeMark: 0xff, freezeTimeoutMs: 60_000, steerMark: 1, steerTimeoutMs: 60_000 })
  t.get('moveOut + frame')?.push(nowUs() - t0)
  if (steerError !== undefined) throw steerError
  const wire = decodeMigrateState(frame.subarray(stateAt))
  if (!wire.ok) throw new Error(wire.reason)
  const restored = native.repairRestore(wire.state)
  native.repairGo(restored, unsentOf(wire.state))
  nft.delete([flow])
  return restored
}

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { conns: { type: 'string', default: '500' }, warmup: { type: 'string', default: '50' } } })
  const conns = Number(values.conns)
  const warmup = Number(values.warmup)
  if (!native.available) throw new Error(`native addon unavailable: ${native.loadError?.message ?? ''}`)
  const nft = setUpNft()
  const l = native.listenTcp('127.0.0.1', 0, 128, 0)
  const t = new Map<Step, number[]>(STEPS.map((s) => [s, []]))
  const prefix = encodeMigratePrefix(headOf(0, 0)) // one for every connection, stamped per call
  const answer = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
  try {
    for (let j = 0; j < (warmup + conns) * (nft === undefined ? 1 : 2); j++) {
      const i = nft === undefined ? j : j >> 1
      const { client, fd } = await connect(l.fd, l.port)
      const timing = i < warmup ? new Map<Step, number[]>(STEPS.map((s) => [s, []])) : t
      const restored = nft !== undefined && (j & 1) === 1
        ? moveOutOnce(fd, client, nft.set, l.port, prefix, timing)
        : migrateOnce(fd, client, nft?.set, timing)
      const sock = new net.Socket({ fd: restored })
      sock.end(answer)
      const got: Buffer[] = []
      client.on('data', (d: Buffer) => got.push(d))
      await once(client, 'end')
      if (!Buffer.concat(got).equals(answer)) throw new Error(`connection ${i}: wrong answer after migration`)
      client.destroy()
      sock.destroy()
    }
  } finally {
    native.close(l.fd)
    nft?.set.close()
    if (nft !== undefined) execFileSync('ip', ['netns', 'del', nft.ns], { stdio: 'ignore' })
  }
  console.log(`bench:repair  node ${process.version}  kernel ${os.release()}  ${os.cpus()[0]?.model ?? ''} x${os.cpus().length}`)
  console.log(`${conns} loopback connections (after ${warmup} warm-up), µs per connection`)
  console.log('step                       median      p90      p99      max')
  for (const s of STEPS) {
    const v = (t.get(s) ?? []).sort((a, b) => a - b)
    if (v.length === 0) continue
    const f = (n: number): string => n.toFixed(1).padStart(8)
    console.log(`${s.padEnd(24)} ${f(pct(v, 50))} ${f(pct(v, 90))} ${f(pct(v, 99))} ${f(v[v.length - 1] ?? NaN)}`)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
