// Reads the first request head of a connection so the dispatcher can route it. The connection is then
// handed to a back end that parses the same bytes again (usually Node, i.e. llhttp), so a head is routed
// only when the two parses cannot disagree: everything llhttp would reject, or could read differently, is
// answered here (400, 431 or 505). Three steps: a byte scan that finds the end of the head and refuses bad
// line structure early, the parse (http-parser-js), then the semantic rules (Host, Content-Length,
// Transfer-Encoding, target). docs/request-validation.md lists every rule and why.
import { METHODS } from 'node:http'
import { HTTPParser, type OnHeadersCompleteParser } from 'http-parser-js'
import { equalsIgnoreCase, parseHost, parseTarget, TargetParts } from './path'
import type { RequestHead, SniffResult } from './types'

type Reject = Extract<SniffResult, { kind: 'reject' }>
type HeaderInfo = Parameters<OnHeadersCompleteParser>[0]

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const HTAB = 0x09
const COLON = 0x3a

/** Node keeps only the first 2000 headers (maxHeadersCount) and drops the rest silently; stay below. */
export const MAX_HEADER_LINES = 1000

function reject (status: 400 | 431 | 505, reason: string): Reject {
  return Object.freeze({ kind: 'reject', status, reason })
}

/** Every rejection, allocated once. The reason strings are for logs, not for matching. */
export const REJECT = {
  tooLarge: reject(431, 'request head larger than maxHeaderBytes'),
  tooManyHeaders: reject(431, `more than ${MAX_HEADER_LINES} header lines`),
  bareCr: reject(400, 'CR not followed by LF in request head'),
  bareLf: reject(400, 'LF not preceded by CR in request head'),
  ctl: reject(400, 'control character in request head'),
  leadingEmptyLine: reject(400, 'empty line before the request line'),
  requestLine: reject(400, 'malformed request line'),
  version: reject(505, 'HTTP version other than 1.0 and 1.1'),
  method: reject(400, 'unknown method'),
  connect: reject(400, 'CONNECT is not routed'),
  asterisk: reject(400, 'asterisk-form target on a method other than OPTIONS'),
  obsFold: reject(400, 'obs-fold: header line starts with whitespace'),
  spaceBeforeColon: reject(400, 'whitespace between header name and colon'),
  headerName: reject(400, 'invalid character in header name'),
  parse: reject(400, 'request head rejected by the parser'),
  hostMissing: reject(400, 'missing Host header'),
  hostDuplicate: reject(400, 'more than one Host header'),
  hostInvalid: reject(400, 'invalid Host header'),
  hostMismatch: reject(400, 'absolute-form authority differs from Host'),
  contentLength: reject(400, 'invalid Content-Length'),
  contentLengthDuplicate: reject(400, 'more than one Content-Length header'),
  contentLengthWithTe: reject(400, 'both Content-Length and Transfer-Encoding'),
  teNotChunked: reject(400, 'Transfer-Encoding other than a single "chunked"'),
  framingTab: reject(400, 'HTAB in a Content-Length or Transfer-Encoding value'),
  teHttp10: reject(400, 'Transfer-Encoding in an HTTP/1.0 request'),
} as const

const INCOMPLETE: SniffResult = Object.freeze({ kind: 'incomplete' })

// Bytes that end a run of ordinary head bytes: CTLs (HTAB excepted), DEL.
const STOP = new Uint8Array(256)
for (let c = 0; c < 0x20; c++) STOP[c] = c === 0x09 ? 0 : 1
STOP[0x7f] = 1

// tchar (RFC 9110 5.6.2): header names and methods.
const TCHAR = new Uint8Array(256)
for (const ch of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[ch.charCodeAt(0)] = 1
}

/** Methods both parsers know, minus CONNECT (a tunnel, not a routable request). */
const ROUTABLE_METHODS: ReadonlySet<string> =
  new Set(HTTPParser.methods.filter((m) => m !== 'CONNECT' && METHODS.includes(m)))

// One parser for the process; sniffHead is synchronous, so calls never interleave.
const parser = new HTTPParser(HTTPParser.REQUEST)
const parts = new TargetParts()
let parsed: HeaderInfo | null = null
let failure: Reject = REJECT.parse

function onHeadersComplete (info: HeaderInfo | number, minor?: number, headers?: string[], method?: number,
  url?: string): number {
  // Positional arguments only if something in the process read HTTPParser.kOnExecute (http-parser-js compat).
  parsed = typeof info === 'object'
    ? info
    : { versionMajor: info, versionMinor: minor ?? 0, headers: headers ?? [], method: method ?? -1, url: url ?? '' } as HeaderInfo
  return 0
}
parser[HTTPParser.kOnHeadersComplete] = onHeadersComplete as OnHeadersCompleteParser

function fail (r: Reject): number {
  failure = r
  return -2
}

// Set by scanHead: end of the request line (its CR) or -1, and the number of header lines.
let firstEol = -1
let headerLines = 0

/**
 * One pass over buf[0, lim): index just past the CRLF CRLF ending the head, -1 when the end is not there
 * yet, -2 (with `failure`) as soon as a byte seen cannot belong to a valid head: CR without LF, LF without
 * CR, a CTL other than HTAB, obs-fold, a header name that is not a token or not followed at once by ':',
 * HTAB in a framing header's value. The request line's shape is left to checkRequestLine.
 */
function scanHead (buf: Buffer, lim: number): number {
  firstEol = -1
  headerLines = 0
  let lineStart = 0
  let i = 0
  for (;;) {
    while (i < lim && STOP[buf[i]!] === 0) i++
    if (i >= lim) return -1
    if (buf[i] !== CR) return fail(buf[i] === LF ? REJECT.bareLf : REJECT.ctl)
    if (i + 1 >= lim) return -1
    if (buf[i + 1] !== LF) return fail(REJECT.bareCr)
    if (i === lineStart) return i === 0 ? fail(REJECT.leadingEmptyLine) : i + 2
    if (firstEol < 0) firstEol = i
    i += 2
    lineStart = i
    if (i >= lim) return -1
    let c = buf[i]!
    if (c === CR) continue // the blank line, checked at the top
    if (c === SP || c === HTAB) return fail(REJECT.obsFold)
    while (TCHAR[c] === 1) {
      if (++i >= lim) return -1
      c = buf[i]!
    }
    if (c !== COLON) return fail(c === SP || c === HTAB ? REJECT.spaceBeforeColon : REJECT.headerName)
    if (i === lineStart) return fail(REJECT.headerName)
    if (++headerLines > MAX_HEADER_LINES) return fail(REJECT.tooManyHeaders)
    if (isFramingName(buf, lineStart, i - lineStart)) {
      // Node 20's llhttp (9.3) refuses HTAB around a Content-Length value, which newer llhttp allows.
      for (i++; i < lim && STOP[c = buf[i]!] === 0; i++) if (c === HTAB) return fail(REJECT.framingTab)
    }
  }
}

/** For a head not complete yet: the request line, once it is complete (a reject, or null to wait). */
function checkPartialHead (buf: Buffer): Reject | null {
  return firstEol < 0 ? null : checkRequestLine(buf, firstEol)
}

/** Checks `METHOD SP target SP HTTP/d.d` in buf[0, eol): single spaces, tchar method, visible-ASCII target. */
function checkRequestLine (buf: Buffer, eol: number): Reject | null {
  let i = 0
  let known = true // every method both parsers know is upper-case letters and '-'
  for (let c = buf[0]!; TCHAR[c] === 1; c = buf[++i]!) known &&= (c >= 0x41 && c <= 0x5a) || c === 0x2d
  if (i === 0 || buf[i] !== SP) return REJECT.requestLine
  if (!known) return REJECT.method
  const t = ++i
  for (let c = buf[i]!; c > SP && c < 0x7f; c = buf[++i]!);
  if (i === t || buf[i] !== SP || eol - i !== 9) return REJECT.requestLine
  if (buf[i + 1] !== 0x48 || buf[i + 2] !== 0x54 || buf[i + 3] !== 0x54 || buf[i + 4] !== 0x50 ||
    buf[i + 5] !== 0x2f || buf[i + 7] !== 0x2e) return REJECT.requestLine
  const major = buf[i + 6]! - 0x30
  const minor = buf[i + 8]! - 0x30
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return REJECT.requestLine
  return major === 1 && minor <= 1 ? null : REJECT.version
}

/**
 * Whether buf holds a Content-Length or Transfer-Encoding header line with an HTAB in its value (the rule
 * scanHead applies to a first head). For a back end checking a later head whose parser (Node's) trims the
 * value: it scans the bytes that parser was given. A line of another request in buf may answer true too.
 */
export function framingTabIn (buf: Buffer): boolean {
  const lim = buf.length
  for (let i = buf.indexOf(LF); i >= 0 && i + 1 < lim; i = buf.indexOf(LF, i + 1)) {
    const start = i + 1
    let j = start
    while (j < lim && TCHAR[buf[j]!] === 1) j++
    if (j >= lim || buf[j] !== COLON || !isFramingName(buf, start, j - start)) continue
    for (j++; j < lim && buf[j] !== CR && buf[j] !== LF; j++) if (buf[j] === HTAB) return true
  }
  return false
}

/** Content-Length or Transfer-Encoding, any case, at buf[start, start + n). */
function isFramingName (buf: Buffer, start: number, n: number): boolean {
  const name = n === 14 ? 'content-length' : n === 17 ? 'transfer-encoding' : null
  if (name === null) return false
  for (let k = 0; k < n; k++) {
    if ((buf[start + k]! | 0x20) !== name.charCodeAt(k)) return false
  }
  return true
}

/**
 * Runs http-parser-js over buf[0, end) (exactly the head); null when it reports or throws an error, with
 * `failure` set to the matching rule.
 */
function parseHead (buf: Buffer, end: number): HeaderInfo | null {
  parsed = null
  parser.initialize(HTTPParser.REQUEST)
  parser.maxHeaderSize = end + 1 // the limit is ours (maxHeaderBytes); reinitialize() resets this field
  // Node decodes header bytes as latin1; http-parser-js's default 'ascii' clears the high bit of obs-text.
  const encoding = HTTPParser.encoding
  HTTPParser.encoding = 'latin1'
  try {
    const ret = parser.execute(buf, 0, end)
    if (ret instanceof Error) return parseFailed(ret)
  } catch (err) {
    return parseFailed(err)
  } finally {
    HTTPParser.encoding = encoding
  }
  if (parsed === null) failure = REJECT.parse
  return parsed
}

/** Maps the errors http-parser-js raises before our own rules run to those rules. */
function parseFailed (err: unknown): null {
  const code = (err as { code?: unknown } | null)?.code
  const message = err instanceof Error ? err.message : ''
  failure = code === 'HPE_UNEXPECTED_CONTENT_LENGTH'
    ? REJECT.contentLengthDuplicate
    : message === 'invalid request method' ? REJECT.method : REJECT.parse
  return null
}

// Scratch for checkFields, reset per call.
let hostCount = 0
let hostValue = ''
let clCount = 0
let clValue = ''
let teCount = 0
let teValue = ''

/** Host, Content-Length and Transfer-Encoding rules over the parsed headers; null when they hold. */
function checkFields (headers: readonly string[], minor: number): Reject | null {
  hostCount = clCount = teCount = 0
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!
    if (name.length === 4 && equalsIgnoreCase(name, 'host')) { hostCount++; hostValue = headers[i + 1]! }
    else if (name.length === 14 && equalsIgnoreCase(name, 'content-length')) { clCount++; clValue = headers[i + 1]! }
    else if (name.length === 17 && equalsIgnoreCase(name, 'transfer-encoding')) { teCount++; teValue = headers[i + 1]! }
  }
  if (hostCount > 1) return REJECT.hostDuplicate
  if (hostCount === 0 && minor === 1) return REJECT.hostMissing
  if (clCount > 1) return REJECT.contentLengthDuplicate
  if (clCount === 1 && !isDecimal(clValue)) return REJECT.contentLength
  if (teCount > 0) {
    if (minor === 0) return REJECT.teHttp10
    if (clCount > 0) return REJECT.contentLengthWithTe
    if (teCount > 1 || !equalsIgnoreCase(teValue, 'chunked')) return REJECT.teNotChunked
  }
  return null
}

/** 1 to 15 ASCII digits: always a safe integer, and what llhttp accepts (no sign, no spaces, no list). */
function isDecimal (v: string): boolean {
  if (v.length === 0 || v.length > 15) return false
  for (let i = 0; i < v.length; i++) {
    const d = v.charCodeAt(i) - 0x30
    if (d < 0 || d > 9) return false
  }
  return true
}

/**
 * Sniffs the request head in buf[0, len), the bytes received so far (peeked: nothing is consumed).
 * 'incomplete' until CRLF CRLF arrives; 431 when the head is longer than maxHeaderBytes (a head of exactly
 * maxHeaderBytes is accepted) or when len >= maxHeaderBytes without an end; 400/505 when a rule fails
 * (possibly before the head is complete). Bytes after the head (body, pipelined requests) are ignored.
 * Hot path, synchronous, never throws; allocates only the RequestHead and its strings.
 */
export function sniffHead (buf: Buffer, len: number, maxHeaderBytes: number): SniffResult {
  const lim = len < maxHeaderBytes ? len : maxHeaderBytes
  const end = scanHead(buf, lim)
  if (end === -2) return failure
  if (end === -1) return len >= maxHeaderBytes ? REJECT.tooLarge : checkPartialHead(buf) ?? INCOMPLETE
  const eol = firstEol
  const lineError = checkRequestLine(buf, eol)
  if (lineError !== null) return lineError
  const info = parseHead(buf, end)
  if (info === null) return failure
  if (info.headers.length !== 2 * headerLines) return REJECT.parse
  return checkParsedHead(HTTPParser.methods[info.method] ?? '', info.url, info.versionMajor, info.versionMinor,
    info.headers, end)
}

/**
 * The rules that hold over a parsed head (method, target, Host, Content-Length, Transfer-Encoding), and the
 * RequestHead they yield. sniffHead runs them after its byte scan and parse; a back end runs them over each
 * later request on a kept-alive connection as its own parser (Node's) read it, so both ends refuse the same
 * requests and route them the same way. headers: flat [name, value, ...] as received.
 */
export function checkParsedHead (method: string, url: string, versionMajor: number, versionMinor: number,
  headers: readonly string[], headBytes: number): SniffResult {
  if (versionMajor !== 1 || versionMinor > 1) return REJECT.version
  if (headers.length > 2 * MAX_HEADER_LINES) return REJECT.tooManyHeaders
  if (!ROUTABLE_METHODS.has(method)) return method === 'CONNECT' ? REJECT.connect : REJECT.method
  const fieldError = checkFields(headers, versionMinor)
  if (fieldError !== null) return fieldError
  return buildHead(method, url, versionMajor, versionMinor, headers, headBytes)
}

function buildHead (method: string, url: string, versionMajor: number, versionMinor: number,
  headers: readonly string[], end: number): SniffResult {
  const reason = parseTarget(url, parts)
  if (reason !== null) return reject(400, reason)
  if (parts.path === '*' && method !== 'OPTIONS') return REJECT.asterisk
  let host = ''
  if (hostCount === 1) {
    const h = parseHost(hostValue)
    if (h === null) return REJECT.hostInvalid
    if (parts.authority !== '' && !equalsIgnoreCase(parts.authority, hostValue)) return REJECT.hostMismatch
    host = h
  } else if (parts.authority !== '') {
    return REJECT.hostMissing // absolute-form without Host (HTTP/1.0): Node apps read the Host header
  }
  const head: RequestHead = {
    method,
    target: url,
    path: parts.path,
    query: parts.query,
    host,
    versionMajor,
    versionMinor,
    headers,
    headBytes: end,
  }
  return { kind: 'ok', head }
}
