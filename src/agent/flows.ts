// Which migrated connections still live on this host: the agent polls /proc/net/tcp (once a second, only
// while it tracks any) for sockets whose local end is the VIP:port, and reports the tracked ones that are gone
// or in TIME_WAIT/CLOSE as CLOSED. The back end owns those sockets; the agent never holds one after GO.
import { readFile } from 'node:fs/promises'

const TCP_TIME_WAIT = 6
const TCP_CLOSE = 7

/** One tracked flow: the dispatcher's connection id, under the client's "address:port". */
export interface TrackedFlow { readonly id: number }

/**
 * The client ends ("a.b.c.d:port") of the sockets in /proc/net/tcp `text` whose local end is vip:port, with
 * their state (1 = ESTABLISHED ... 6 = TIME_WAIT, 7 = CLOSE). Addresses there are the raw __be32 printed as a
 * host-order hex number; this reads them for a little-endian host (x86-64, arm64). Pure.
 */
export function socketsOn (text: string, vip: string, port: number): Map<string, number> {
  const out = new Map<string, number>()
  const local = `${hexAddress(vip)}:${port.toString(16).toUpperCase().padStart(4, '0')}`
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length < 4 || f[1] !== local) continue
    const [addr = '', p = ''] = (f[2] ?? '').split(':')
    out.set(`${ipOf(parseInt(addr, 16))}:${parseInt(p, 16)}`, parseInt(f[3] ?? '0', 16))
  }
  return out
}

function hexAddress (ip: string): string {
  const [a = 0, b = 0, c = 0, d = 0] = ip.split('.').map(Number)
  return ((d << 24 | c << 16 | b << 8 | a) >>> 0).toString(16).toUpperCase().padStart(8, '0')
}

function ipOf (n: number): string {
  return `${n & 255}.${(n >>> 8) & 255}.${(n >>> 16) & 255}.${n >>> 24}`
}

/**
 * A socket absent from this many sweeps in a row has ended. /proc/net/tcp is read in pages, each walking the
 * socket hash again, so one read can miss a socket that lives (sockets added or removed meanwhile shift it).
 */
const ABSENT_SWEEPS = 2

export class FlowTracker {
  readonly #vip: string
  readonly #port: number
  readonly #file: string
  readonly #flows = new Map<string, TrackedFlow>()
  /** Sweeps in a row that did not see a tracked flow's socket. */
  readonly #absent = new Map<TrackedFlow, number>()
  /** Flows whose client end a newer migrated connection reuses: ended, reported at the next sweep. */
  #superseded: TrackedFlow[] = []

  constructor (vip: string, port: number, file = '/proc/net/tcp') {
    this.#vip = vip
    this.#port = port
    this.#file = file
  }

  get size (): number { return this.#flows.size }

  /** A connection handed to the back end, by its client end. */
  add (client: string, flow: TrackedFlow): void {
    const before = this.#flows.get(client)
    if (before !== undefined) {
      this.#superseded.push(before)
      this.#absent.delete(before)
    }
    this.#flows.set(client, flow)
  }

  /** Reads the socket table once; returns the flows that ended (and forgets them). Never throws. */
  async sweep (): Promise<TrackedFlow[]> {
    const gone = this.#superseded
    this.#superseded = []
    if (this.#flows.size === 0) return gone
    // Only flows tracked before the read began are judged by it: one added meanwhile may not be in the file.
    const judged = new Map(this.#flows)
    let text: string
    try { text = await readFile(this.#file, 'utf8') } catch { return gone }
    const live = socketsOn(text, this.#vip, this.#port)
    for (const [client, flow] of judged) {
      if (this.#flows.get(client) !== flow) continue // superseded meanwhile: reported above or at the next sweep
      const st = live.get(client)
      const ended = st === TCP_TIME_WAIT || st === TCP_CLOSE ||
        (st === undefined && (this.#absent.get(flow) ?? 0) + 1 >= ABSENT_SWEEPS)
      if (ended) {
        this.#flows.delete(client)
        this.#absent.delete(flow)
        gone.push(flow)
      } else if (st === undefined) this.#absent.set(flow, (this.#absent.get(flow) ?? 0) + 1)
      else this.#absent.delete(flow)
    }
    return gone
  }
}
