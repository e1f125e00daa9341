// Per-server rates for `baton ctl list --rate` and GET /servers, estimated as IPVS does (ip_vs_est.c): every
// 2 s each counter's increase over the period becomes a rate, and the estimate moves a quarter of the way
// to it (avg += (rate - avg) / 4), an exponentially weighted average with a time constant of about 8 s. Rates
// start at 0 and reach 90% of a steady load within about 16 s. Counters are the ones the switch keeps
// anyway: connections bound to each server, and bytes relayed (splice, pipe) summed as connections close;
// handed-off connections carry no byte through the dispatcher, so their byte rates stay 0. Admin-side
// only: the data path pays nothing; the timer costs one pass over the servers every 2 s.
import type { ServerSnapshot } from '../cluster/types'
import type { RelayBytes } from '../dispatcher/conn-log'

/** ip_vs_est.c's period. */
export const RATE_PERIOD_MS = 2000

/** One server's counters and estimates, as GET /servers adds them to its row. */
export interface ServerStats {
  /** Connections bound to it (ipvsadm Conns). */
  readonly connections: number
  /** Bytes relayed client to server (ipvsadm InBytes) and server to client (OutBytes). */
  readonly inBytes: number
  readonly outBytes: number
  /** Connections per second, and bytes per second in and out, estimated (ipvsadm CPS, InBPS, OutBPS). */
  readonly cps: number
  readonly inBps: number
  readonly outBps: number
}

interface Estimate { conns: number, inBytes: number, outBytes: number, cps: number, inBps: number, outBps: number }

const keyOf = (s: { service: string, id: string }): string => `${s.service}\0${s.id}`

export class RateEstimator {
  readonly #servers: () => readonly ServerSnapshot[]
  readonly #bytes: () => ReadonlyMap<string, RelayBytes>
  readonly #est = new Map<string, Estimate>()
  #last = 0
  #timer: NodeJS.Timeout | undefined

  constructor (servers: () => readonly ServerSnapshot[], bytes: () => ReadonlyMap<string, RelayBytes> = () => new Map()) {
    this.#servers = servers
    this.#bytes = bytes
  }

  /** Samples now, then every periodMs (unref'd) until close(). */
  start (periodMs = RATE_PERIOD_MS): void {
    this.sample(performance.now())
    this.#timer = setInterval(() => { this.sample(performance.now()) }, periodMs)
    this.#timer.unref()
  }

  close (): void { clearInterval(this.#timer) }

  /**
   * Takes one sample at `nowMs` (monotonic). A server seen for the first time starts from its counters as
   * they are, with rates 0; so does one whose counter went down (it left and a server of the same name
   * joined); servers no longer listed are forgotten.
   */
  sample (nowMs: number): void {
    const dt = (nowMs - this.#last) / 1000
    this.#last = nowMs
    const bytes = this.#bytes()
    const seen = new Set<string>()
    for (const s of this.#servers()) {
      const key = keyOf(s)
      seen.add(key)
      const b = bytes.get(key)
      const now = { conns: s.connections, inBytes: b?.up ?? 0, outBytes: b?.down ?? 0 }
      const e = this.#est.get(key)
      if (e === undefined || now.conns < e.conns || now.inBytes < e.inBytes || now.outBytes < e.outBytes) {
        this.#est.set(key, { ...now, cps: 0, inBps: 0, outBps: 0 })
        continue
      }
      if (!(dt > 0)) continue
      e.cps += ((now.conns - e.conns) / dt - e.cps) / 4
      e.inBps += ((now.inBytes - e.inBytes) / dt - e.inBps) / 4
      e.outBps += ((now.outBytes - e.outBytes) / dt - e.outBps) / 4
      e.conns = now.conns
      e.inBytes = now.inBytes
      e.outBytes = now.outBytes
    }
    for (const key of this.#est.keys()) if (!seen.has(key)) this.#est.delete(key)
  }

  /** Every server's row with its counters (as of now) and rates (as of the last sample). */
  rows (): Array<ServerSnapshot & ServerStats> {
    const bytes = this.#bytes()
    return this.#servers().map((s) => {
      const b = bytes.get(keyOf(s))
      const e = this.#est.get(keyOf(s))
      return {
        ...s, inBytes: b?.up ?? 0, outBytes: b?.down ?? 0,
        cps: round(e?.cps ?? 0), inBps: round(e?.inBps ?? 0), outBps: round(e?.outBps ?? 0),
      }
    })
  }
}

/** Rates with two decimals: a slow service's 0.25 connections per second still shows. */
const round = (x: number): number => Math.round(x * 100) / 100
