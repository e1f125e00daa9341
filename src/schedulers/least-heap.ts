// An indexed binary min-heap of real servers, ordered by a scheduler's "pick before" relation. It lets
// the least-connection family (lc wlc sed nq, and the wlc step of lblc/lblcr) answer a pick in O(1)
// and a counter change in O(log n), instead of the kernel's linear scan, without changing a choice.
//
// Why the choice is the same: each kernel scan keeps the first server in list order whose metric is
// strictly better than every earlier one, i.e. the minimum of the total order (eligible first, then
// metric, then config index). `before` must be exactly that order; eligible servers then sit above
// every ineligible one, so the top is the scan's answer, or ineligible when the scan returns NULL.
import type { RealServer } from './types'

export type Before = (a: RealServer, b: RealServer) => boolean

export class LeastHeap {
  readonly #before: Before
  #heap: RealServer[] = []
  /** Heap position by RealServer.index (-1 = not in the heap). */
  #pos = new Int32Array(0)

  constructor (before: Before) {
    this.#before = before
  }

  /** Replaces the contents (update()): O(n). */
  reset (servers: readonly RealServer[]): void {
    let maxIndex = -1
    for (const s of servers) if (s.index > maxIndex) maxIndex = s.index
    this.#pos = new Int32Array(maxIndex + 1).fill(-1)
    this.#heap = servers.slice()
    for (let i = 0; i < this.#heap.length; i++) this.#pos[this.#heap[i]!.index] = i
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i)
  }

  /** The least server, or undefined when empty. The caller still checks that it is eligible. */
  top (): RealServer | undefined {
    return this.#heap[0]
  }

  /** `s`'s key changed: restore the heap order around it. Unknown servers are ignored. O(log n). */
  changed (s: RealServer): void {
    const i = s.index < this.#pos.length ? this.#pos[s.index]! : -1
    if (i < 0 || this.#heap[i] !== s) return
    this.#up(i)
    this.#down(this.#pos[s.index]!)
  }

  #up (i: number): void {
    const heap = this.#heap
    const s = heap[i]!
    while (i > 0) {
      const p = (i - 1) >> 1
      const parent = heap[p]!
      if (!this.#before(s, parent)) break
      heap[i] = parent
      this.#pos[parent.index] = i
      i = p
    }
    heap[i] = s
    this.#pos[s.index] = i
  }

  #down (i: number): void {
    const heap = this.#heap
    const n = heap.length
    const s = heap[i]!
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      const r = c + 1
      if (r < n && this.#before(heap[r]!, heap[c]!)) c = r
      const child = heap[c]!
      if (!this.#before(child, s)) break
      heap[i] = child
      this.#pos[child.index] = i
      i = c
    }
    heap[i] = s
    this.#pos[s.index] = i
  }
}
