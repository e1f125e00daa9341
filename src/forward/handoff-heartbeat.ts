// The heartbeat of one handoff channel (handoff-channel.ts owns one per channel). Every
// limits.channelTimeoutMs / TICKS_PER_TIMEOUT it ticks: the channel reads what waits, judges, and sends a
// PING, which the back end answers from the code that reads its channel.
//
// Liveness is counted in ticks, not read from a clock, so no path takes a timestamp: a PONG resets the count,
// and the back end is silent once more than TICKS_PER_TIMEOUT ticks passed without one (a PING that did not
// fit in the socket is not answered either). The last answer arrives just after a tick's PING, so a back end
// that stops is silent after at least channelTimeoutMs and at most 1.25 × channelTimeoutMs (plus timer
// lateness). A dispatcher that was stalled itself gets one late tick, not several, so it does not take its
// own stall for the back end's silence. A queued client remembers the tick it was queued at, and has waited
// channelTimeoutMs by the same count.
import { native } from '../native/binding'
import { encodePing, HEARTBEAT_BYTES } from '../protocol/handoff'

export const TICKS_PER_TIMEOUT = 4

export class Heartbeat {
  readonly intervalMs: number
  readonly #onTick: () => void
  readonly #ping = Buffer.allocUnsafe(HEARTBEAT_BYTES)
  #timer: NodeJS.Timeout | undefined
  #silentTicks = 0
  #seq = 0
  /** Ticks since the heartbeat was made: what a queued client records instead of a timestamp. */
  tick = 0

  /** onTick runs on every tick while started; it may call stop(). */
  constructor (timeoutMs: number, onTick: () => void) {
    this.intervalMs = Math.max(1, Math.floor(timeoutMs / TICKS_PER_TIMEOUT))
    this.#onTick = onTick
  }

  /** (Re)starts ticking for a freshly connected channel: nothing heard is owed yet. An unref'd timer. */
  start (): void {
    this.stop()
    this.#silentTicks = 0
    this.#timer = setInterval(() => {
      this.tick++
      this.#silentTicks++
      this.#onTick()
    }, this.intervalMs)
    this.#timer.unref()
  }

  /** Idempotent; no timer is left afterwards. */
  stop (): void {
    if (this.#timer === undefined) return
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** A PONG arrived. */
  heard (): void { this.#silentTicks = 0 }

  /** Nothing arrived for more than TICKS_PER_TIMEOUT ticks (at least channelTimeoutMs). */
  get silent (): boolean { return this.#silentTicks > TICKS_PER_TIMEOUT }

  /** Whether something recorded at tick `since` has waited channelTimeoutMs. */
  expired (since: number): boolean { return this.tick - since > TICKS_PER_TIMEOUT }

  /** Sends the next PING on fd: 0, or -errno. -EAGAIN (the socket is full) sends nothing, so nothing answers. */
  ping (fd: number): number {
    return native.sendMsg(fd, this.#ping, encodePing(this.#ping, ++this.#seq))
  }
}
