// The checked wrapper of the addon's nf_tables client (native/src/nft.cc): native.nftOpen returns an
// NftSet, one netlink socket on one set or map keyed by `ipv4_addr . inet_service`. Elements are packed
// into a Uint32Array (BATON_NFT_STRIDE = 5 per element, as native/src/nft.h) and sent as one transaction;
// the kernel's per-message answers come back per element and become one BatonNativeError naming the
// first failed element. binding.ts hands this file the addon module; it never loads anything.
// moveOut is the dispatcher's whole migration step in one call (native/src/migrate_out.cc): freeze, dump,
// close in repair mode, steer, on this handle's socket and sequence numbers; it returns the MIGRATE frame
// with the dumped state written into it by the addon.
import assert from 'node:assert'

import { BatonNativeError } from '../errors'
import { assertFd, assertInt, ipv4ToU32 } from './asserts'
import { errnoName } from './errno'
import type { FlowEnds, MoveOutOptions, MoveOutResult, NftElement, NftSetHandle } from './types'

const STRIDE = 5
const OP_ADD = 1
const OP_DELETE = 2
const OP_REPLACE = 3
const HAS_DATA = 0x100
const NFT_SET_MAP = 0x8
const NFT_SET_TIMEOUT = 0x10
const FAMILIES = { ip: 2, inet: 1 } as const // NFPROTO_IPV4, NFPROTO_INET
/** At most this many elements per call (one transaction, one sendmsg of ~130 bytes per message). */
export const NFT_MAX_BATCH = 1024
const MOVE_OUT_SEQS = 16 // the sequence numbers of one baton_migrate_out (BATON_MOVE_SEQS, migrate_out.cc)
const OP_NAMES = { [OP_ADD]: 'add', [OP_DELETE]: 'delete', [OP_REPLACE]: 'replace' } as const

/** The functions of the addon this file calls, as the C side defines them. */
export interface NftRaw {
  baton_nft_open (): number
  baton_nft_elems (fd: number, seq: number, family: number, table: string, set: string, ops: Uint32Array,
    count: number, results: Int32Array): number
  baton_nft_set_info (fd: number, seq: number, family: number, table: string, set: string, out: Uint32Array): number
  baton_migrate_out (nlFd: number, seq: number, family: number, table: string, set: string, clientAddress: number,
    clientPort: number, localAddress: number, localPort: number, freezeMark: number, freezeTimeoutMs: number,
    steerMark: number, steerTimeoutMs: number, fd: number, prefix: Buffer, steer: Int32Array, keepOpen: boolean): Buffer
  baton_fd_close (fd: number): number
}

const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,254}$/ // nft's identifier grammar, within NFT_NAME_MAXLEN

const isU32 = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff
const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535
/** The smallest MIGRATE prefix: u32 length | u8 type (the rest is the control protocol's business). */
const MIN_PREFIX = 5


export class NftSet implements NftSetHandle {
  readonly family: 'ip' | 'inet'
  readonly table: string
  readonly set: string
  readonly isMap: boolean
  readonly hasTimeout: boolean
  readonly #raw: NftRaw
  #fd: number
  #seq: number
  #ops = new Uint32Array(16 * STRIDE)
  #results = new Int32Array(16)
  readonly #steer = new Int32Array(1) // moveOut's steer result: 0 or -errno, written by every call that returns

  /** Opens the socket and checks the set (GETSET); throws BatonNativeError and leaks nothing on failure. */
  constructor (raw: NftRaw, mapErrors: <T>(fn: () => T) => T, spec: { family?: 'ip' | 'inet'; table: string; set: string }) {
    assert(typeof spec === 'object' && spec !== null, 'spec must be an object')
    this.family = spec.family ?? 'ip'
    assert(this.family in FAMILIES, `family must be 'ip' or 'inet', got ${String(spec.family)}`)
    assert(typeof spec.table === 'string' && NAME.test(spec.table), `bad nft table name: ${String(spec.table)}`)
    assert(typeof spec.set === 'string' && NAME.test(spec.set), `bad nft set name: ${String(spec.set)}`)
    this.table = spec.table
    this.set = spec.set
    this.#raw = raw
    this.#seq = (Date.now() & 0xffffff) << 4 // distinct from an earlier handle's leftovers
    this.#fd = mapErrors(() => raw.baton_nft_open())
    const out = new Uint32Array(4)
    const rc = raw.baton_nft_set_info(this.#fd, this.#nextSeq(2), FAMILIES[this.family], this.table, this.set, out)
    const [flags = 0, keyLen = 0, dataLen = 0] = out
    const what = `${this.family} ${this.table} ${this.set}`
    let err: BatonNativeError | null = null
    if (rc < 0) err = new BatonNativeError(`nft get set ${what}${rc === -2 ? ' (no such table or set)' : ''}`, -rc, errnoName(rc))
    else if (keyLen !== 8) err = new BatonNativeError(`nft set ${what}: key is ${keyLen} bytes, not ipv4_addr . inet_service`, 22, 'EINVAL')
    else if ((flags & NFT_SET_MAP) !== 0 && dataLen !== 4) err = new BatonNativeError(`nft map ${what}: value is ${dataLen} bytes, not a mark`, 22, 'EINVAL')
    if (err !== null) {
      raw.baton_fd_close(this.#fd)
      throw err
    }
    this.isMap = (flags & NFT_SET_MAP) !== 0
    this.hasTimeout = (flags & NFT_SET_TIMEOUT) !== 0
  }

  add (elements: readonly NftElement[]): void { this.#batch(OP_ADD, elements) }
  replace (elements: readonly NftElement[]): void { this.#batch(OP_REPLACE, elements) }
  delete (elements: readonly NftElement[]): void { this.#batch(OP_DELETE, elements) }

  moveOut (fd: number, ends: FlowEnds, prefix: Buffer, o: MoveOutOptions): MoveOutResult {
    if (this.#fd < 0 || !this.isMap || !(Number.isInteger(fd) && fd >= 0) || typeof ends !== 'object' || ends === null ||
        !isPort(ends.clientPort) || !isPort(ends.localPort) || !Buffer.isBuffer(prefix) || prefix.length < MIN_PREFIX ||
        typeof o !== 'object' || o === null || !isU32(o.freezeMark) || !isU32(o.steerMark) ||
        !isU32(o.freezeTimeoutMs) || !isU32(o.steerTimeoutMs) ||
        ((o.freezeTimeoutMs > 0 || o.steerTimeoutMs > 0) && !this.hasTimeout)) this.#refuseMove(fd, ends, prefix, o)
    const keepOpen = o.keepOpen === true
    if (keepOpen && (o.freezeMark !== o.steerMark || o.freezeTimeoutMs !== o.steerTimeoutMs)) {
      assert.fail('moveOut: keepOpen only when steering first (freezeMark and freezeTimeoutMs = steerMark and steerTimeoutMs)')
    }
    const client = ipv4ToU32(ends.clientAddress, 'moveOut: clientAddress')
    const local = ipv4ToU32(ends.localAddress, 'moveOut: localAddress')
    if (local === 0) assert.fail('moveOut: localAddress 0.0.0.0 is not the address a connection was accepted on')
    let frame: Buffer
    try {
      frame = this.#raw.baton_migrate_out(this.#fd, this.#nextSeq(MOVE_OUT_SEQS), FAMILIES[this.family],
        this.table, this.set, client, ends.clientPort, local, ends.localPort, o.freezeMark, o.freezeTimeoutMs,
        o.steerMark, o.steerTimeoutMs, fd, prefix, this.#steer, keepOpen)
    } catch (err) {
      throw this.#moveError(err, ends.clientAddress, ends.clientPort)
    }
    const steer = this.#steer[0] ?? 0
    return {
      frame,
      stateAt: prefix.length,
      steerError: steer === 0 ? undefined : new BatonNativeError(
        `nft replace ${this.table}.${this.set} ${ends.clientAddress} . ${ends.clientPort} (steer)`, -steer, errnoName(steer)),
    }
  }

  close (): void {
    if (this.#fd < 0) return
    this.#raw.baton_fd_close(this.#fd)
    this.#fd = -1
  }

  #nextSeq (n: number): number {
    const seq = this.#seq
    this.#seq = (this.#seq + n) % 0x7fffffff
    return seq
  }

  #pack (op: number, elements: readonly NftElement[]): void {
    if (this.#results.length < elements.length) {
      this.#ops = new Uint32Array(elements.length * STRIDE)
      this.#results = new Int32Array(elements.length)
    }
    const withData = op !== OP_DELETE && this.isMap
    const ops = this.#ops
    for (let i = 0; i < elements.length; i++) {
      const e = elements[i] as NftElement
      const timeoutMs = op === OP_DELETE ? 0 : e.timeoutMs ?? 0
      if (!isU32(e.port) || e.port > 65535 || (withData ? !isU32(e.mark) : op !== OP_DELETE && e.mark !== undefined) ||
          !isU32(timeoutMs) || (timeoutMs > 0 && !this.hasTimeout)) this.#refuse(elements, i, withData)
      const at = i * STRIDE
      ops[at] = op | (withData ? HAS_DATA : 0)
      ops[at + 1] = ipv4ToU32(e.address)
      ops[at + 2] = e.port
      ops[at + 3] = e.mark ?? 0
      ops[at + 4] = timeoutMs
    }
  }

  /** Throws the assertion that element i fails (kept off the loop above: messages are built only here). */
  #refuse (elements: readonly NftElement[], i: number, withData: boolean): never {
    const e = elements[i] as NftElement
    assertInt(e.port, 0, 65535, `elements[${i}].port`)
    if (withData) assertInt(e.mark, 0, 0xffffffff, `elements[${i}].mark`)
    else assert(e.mark === undefined, `elements[${i}].mark: ${this.set} is a set, not a map`)
    assertInt(e.timeoutMs ?? 0, 0, 0xffffffff, `elements[${i}].timeoutMs`)
    assert.fail(`elements[${i}].timeoutMs: ${this.set} has no 'flags timeout'`)
  }

  /** Throws the assertion that moveOut's arguments fail (messages are built only here). */
  #refuseMove (fd: number, ends: FlowEnds, prefix: Buffer, o: MoveOutOptions): never {
    if (this.#fd < 0) assert.fail('nft handle is closed')
    assert(this.isMap, `moveOut: ${this.set} is a set, not a map`)
    assertFd(fd)
    assert(typeof ends === 'object' && ends !== null, 'ends must be an object')
    assertInt(ends.clientPort, 1, 65535, 'clientPort')
    assertInt(ends.localPort, 1, 65535, 'localPort')
    assert(Buffer.isBuffer(prefix) && prefix.length >= MIN_PREFIX, 'prefix must be a Buffer: the MIGRATE frame up to its state')
    assert(typeof o === 'object' && o !== null, 'options must be an object')
    for (const k of ['freezeMark', 'freezeTimeoutMs', 'steerMark', 'steerTimeoutMs'] as const) assertInt(o[k], 0, 0xffffffff, k)
    assert.fail(`moveOut: ${this.set} has no 'flags timeout'`)
  }

  /** The addon's Error{errno, code, syscall[, unfreezeErrno]} as BatonNativeError; an nft step names the element. */
  #moveError (err: unknown, address: string, port: number): unknown {
    const e = err as { errno?: unknown; code?: unknown; syscall?: unknown; unfreezeErrno?: unknown } | null
    if (!(e instanceof Error) || typeof e.errno !== 'number' || typeof e.syscall !== 'string') return err
    const step = e.syscall.startsWith('nft ')
      ? e.syscall.replace(' (', ` ${this.table}.${this.set} ${address} . ${port} (`)
      : e.syscall
    const out = new BatonNativeError(step, e.errno, String(e.code))
    if (typeof e.unfreezeErrno === 'number') Object.assign(out, { unfreezeErrno: e.unfreezeErrno })
    return out
  }

  #batch (op: number, elements: readonly NftElement[]): void {
    if (this.#fd < 0) assert.fail('nft handle is closed')
    if (!Array.isArray(elements) || elements.length > NFT_MAX_BATCH) {
      assert.fail(`elements must be an array of at most ${NFT_MAX_BATCH}`)
    }
    if (elements.length === 0) return
    this.#pack(op, elements)
    const seq = this.#nextSeq(2 * elements.length + 2)
    const rc = this.#raw.baton_nft_elems(this.#fd, seq, FAMILIES[this.family], this.table, this.set, this.#ops,
      elements.length, this.#results)
    if (rc === 0) return
    const name = `nft ${OP_NAMES[op as keyof typeof OP_NAMES]} ${this.table}.${this.set}`
    if (rc < 0) throw new BatonNativeError(`${name} (batch of ${elements.length})`, -rc, errnoName(rc))
    const i = this.#results.subarray(0, elements.length).findIndex((r) => r !== 0)
    const e = elements[i]
    const err = this.#results[i] ?? 0
    throw new BatonNativeError(`${name}[${i}] ${e?.address ?? ''} . ${e?.port ?? ''}`, -err, errnoName(err))
  }
}
