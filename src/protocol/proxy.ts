// PROXY protocol v1 (text) and v2 (binary) headers, written by the splice and pipe relays before any client
// byte so a relayed back end learns the real client address (haproxy doc/proxy-protocol.txt). Encoders
// take the four endpoint fields of a ForwardConn; parseProxyHeader reads either version (tests, back end).
import net from 'node:net'

import { BatonError } from '../errors'
import { unmapIPv4 } from '../net/ip'

export interface ProxyEndpoints {
  readonly clientAddress: string
  readonly clientPort: number
  readonly localAddress: string
  readonly localPort: number
}

export interface ProxyHeader {
  readonly version: 1 | 2
  /** LOCAL: health check from the proxy itself; use the real connection endpoints. */
  readonly command: 'PROXY' | 'LOCAL'
  /** UNKNOWN: no usable addresses (the fields below are '' and 0). */
  readonly family: 'TCP4' | 'TCP6' | 'UNKNOWN'
  readonly sourceAddress: string
  readonly sourcePort: number
  readonly destAddress: string
  readonly destPort: number
  /** Header bytes to skip before the relayed stream begins. */
  readonly length: number
}

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_MAX = 107

type Pair = { family: 'TCP4' | 'TCP6'; src: string; dst: string } | undefined

/** Both addresses in one family (v4 when both are v4 or v4-mapped, else v6), or undefined. */
function pairOf (c: ProxyEndpoints): Pair {
  const src = unmapIPv4(c.clientAddress)
  const dst = unmapIPv4(c.localAddress)
  const fs = net.isIP(src)
  const fd = net.isIP(dst)
  if (fs === 0 || fd === 0) return undefined
  if (fs === 4 && fd === 4) return { family: 'TCP4', src, dst }
  return { family: 'TCP6', src: fs === 4 ? `::ffff:${src}` : src, dst: fd === 4 ? `::ffff:${dst}` : dst }
}

/** `PROXY TCP4 src dst sport dport\r\n`, or `PROXY UNKNOWN\r\n` when an address is not IP. */
export function encodeProxyV1 (c: ProxyEndpoints): Buffer {
  const p = pairOf(c)
  if (p === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1')
  return Buffer.from(`PROXY ${p.family} ${p.src} ${p.dst} ${c.clientPort} ${c.localPort}\r\n`, 'latin1')
}

/** v2, command PROXY, AF_INET or AF_INET6 over STREAM; AF_UNSPEC (no addresses) when an address is not IP. */
export function encodeProxyV2 (c: ProxyEndpoints): Buffer {
  const p = pairOf(c)
  const addrLen = p === undefined ? 0 : p.family === 'TCP4' ? 12 : 36
  const out = Buffer.alloc(16 + addrLen)
  V2_SIG.copy(out, 0)
  out[12] = 0x21 // version 2, PROXY
  out[13] = p === undefined ? 0x00 : p.family === 'TCP4' ? 0x11 : 0x21
  out.writeUInt16BE(addrLen, 14)
  if (p === undefined) return out
  const ipLen = p.family === 'TCP4' ? 4 : 16
  writeIp(out, 16, p.src, ipLen)
  writeIp(out, 16 + ipLen, p.dst, ipLen)
  out.writeUInt16BE(c.clientPort, 16 + 2 * ipLen)
  out.writeUInt16BE(c.localPort, 18 + 2 * ipLen)
  return out
}

function writeIp (out: Buffer, at: number, ip: string, len: number): void {
  if (len === 4) {
    ip.split('.').forEach((part, i) => { out[at + i] = Number(part) })
    return
  }
  ipv6Bytes(ip).copy(out, at)
}

/** 16 bytes of a valid IPv6 text address (with `::` and an optional dotted IPv4 tail). */
function ipv6Bytes (ip: string): Buffer {
  let text = ip
  const tail: number[] = []
  const lastColon = text.lastIndexOf(':')
  if (text.includes('.', lastColon)) {
    for (const part of text.slice(lastColon + 1).split('.')) tail.push(Number(part))
    text = `${text.slice(0, lastColon + 1)}0:0`
  }
  const [head = '', rest] = text.split('::')
  const words = (s: string): number[] => s === '' ? [] : s.split(':').map((w) => parseInt(w, 16))
  const hi = words(head)
  const lo = rest === undefined ? [] : words(rest)
  const all = [...hi, ...new Array<number>(8 - hi.length - lo.length).fill(0), ...lo]
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  tail.forEach((b, i) => { out[12 + i] = b })
  return out
}

/** RFC 5952 text of 16 bytes: lower case, the longest run (>= 2) of zero words as `::`. */
function ipv6Text (b: Buffer): string {
  const w: number[] = []
  for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(i * 2))
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && w[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j === i ? i + 1 : j
  }
  const hex = (ws: number[]): string => ws.map((x) => x.toString(16)).join(':')
  if (best < 0) return hex(w)
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`
}

function bad (why: string): BatonError {
  return new BatonError('BATON_ERR_BAD_REQUEST', `PROXY header: ${why}`, { source: 'client' })
}

/**
 * Reads a v1 or v2 header at the start of buf. Returns null while buf is a valid but incomplete prefix
 * (read more), the header otherwise; throws BatonError BATON_ERR_BAD_REQUEST when it is not one.
 */
export function parseProxyHeader (buf: Buffer): ProxyHeader | null {
  if (buf.length === 0) return null
  const n = Math.min(buf.length, V2_SIG.length)
  if (buf.subarray(0, n).equals(V2_SIG.subarray(0, n))) return parseV2(buf)
  const v1 = Buffer.from('PROXY ', 'latin1')
  const m = Math.min(buf.length, v1.length)
  if (buf.subarray(0, m).equals(v1.subarray(0, m))) return parseV1(buf)
  throw bad('neither a v1 nor a v2 signature')
}

function parseV1 (buf: Buffer): ProxyHeader | null {
  const end = buf.indexOf('\r\n', 0, 'latin1')
  if (end < 0) {
    if (buf.length >= V1_MAX) throw bad('v1 line longer than 107 bytes')
    return null
  }
  if (end + 2 > V1_MAX) throw bad('v1 line longer than 107 bytes')
  const parts = buf.toString('latin1', 0, end).split(' ')
  const unknown = { version: 1 as const, command: 'PROXY' as const, family: 'UNKNOWN' as const,
    sourceAddress: '', sourcePort: 0, destAddress: '', destPort: 0, length: end + 2 }
  if (parts[1] === 'UNKNOWN') return unknown
  const [, family, src = '', dst = '', sport = '', dport = '', ...extra] = parts
  if (family !== 'TCP4' && family !== 'TCP6') throw bad(`v1 family ${String(family)}`)
  const want = family === 'TCP4' ? 4 : 6
  if (extra.length > 0 || net.isIP(src) !== want || net.isIP(dst) !== want) throw bad('v1 addresses')
  const port = (s: string): number => {
    if (!/^(0|[1-9][0-9]{0,4})$/.test(s) || Number(s) > 65535) throw bad(`v1 port ${s}`)
    return Number(s)
  }
  return { ...unknown, family, sourceAddress: src, destAddress: dst, sourcePort: port(sport), destPort: port(dport) }
}

function parseV2 (buf: Buffer): ProxyHeader | null {
  if (buf.length < 16) return null
  const verCmd = buf[12] ?? 0
  if (verCmd >> 4 !== 2) throw bad(`v2 version ${verCmd >> 4}`)
  const cmd = verCmd & 0x0f
  if (cmd > 1) throw bad(`v2 command ${cmd}`)
  const famProto = buf[13] ?? 0
  const len = buf.readUInt16BE(14)
  if (buf.length < 16 + len) return null
  const base = { version: 2 as const, command: cmd === 0 ? 'LOCAL' as const : 'PROXY' as const, length: 16 + len }
  const none = { ...base, family: 'UNKNOWN' as const, sourceAddress: '', sourcePort: 0, destAddress: '', destPort: 0 }
  if (cmd === 0 || (famProto !== 0x11 && famProto !== 0x21)) return none
  const ipLen = famProto === 0x11 ? 4 : 16
  if (len < 2 * ipLen + 4) throw bad(`v2 length ${len} too short for its family`)
  const ip = (at: number): string => ipLen === 4
    ? Array.from(buf.subarray(at, at + 4)).join('.')
    : ipv6Text(buf.subarray(at, at + 16))
  return {
    ...base,
    family: ipLen === 4 ? 'TCP4' : 'TCP6',
    sourceAddress: ip(16),
    destAddress: ip(16 + ipLen),
    sourcePort: buf.readUInt16BE(16 + 2 * ipLen),
    destPort: buf.readUInt16BE(18 + 2 * ipLen),
  }
}
