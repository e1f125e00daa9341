// Reading a config file into text: bounded (a config is small; /dev/zero or a huge file must not eat the
// memory), strict UTF-8 (a wrong encoding is reported where it starts, not turned into U+FFFD), and every
// failure says `file:line:col: message` like any other config issue.

import { closeSync, openSync, readSync } from 'node:fs'
import { BatonError, ConfigError } from '../errors'

/** Larger files are refused before parsing: yaml needs ~2 s and ~500 MB for a MiB of tiny keys. */
export const MAX_CONFIG_BYTES = 1024 * 1024

/**
 * The file's text. Throws BatonError BATON_ERR_CONFIG_READ if it cannot be read (missing, a directory,
 * permissions), and ConfigError if it is larger than MAX_CONFIG_BYTES or is not valid UTF-8.
 */
export function readConfigText (file: string): string {
  let buf: Buffer
  try {
    buf = readAtMost(file, MAX_CONFIG_BYTES + 1)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const reason = e.code === undefined ? e.message : `${e.code}: ${describeErrno(e)}`
    throw new BatonError('BATON_ERR_CONFIG_READ', `${file}:1:1: cannot read the configuration (${reason})`, { cause: err, source: 'config' })
  }
  if (buf.length > MAX_CONFIG_BYTES) {
    throw new ConfigError([{ path: '', message: `the file is larger than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB; a configuration is never that big`, file, line: 1, col: 1 }])
  }
  return decodeUtf8(buf, file)
}

/** A token file is a line, not a document: larger ones are refused. */
const MAX_TOKEN_FILE_BYTES = 4096

/** The admin token in `file`, surrounding whitespace removed; or why it could not be read. */
export function readTokenFile (file: string): { ok: true, value: string } | { ok: false, reason: string } {
  try {
    const buf = readAtMost(file, MAX_TOKEN_FILE_BYTES + 1)
    if (buf.length > MAX_TOKEN_FILE_BYTES) return { ok: false, reason: `must be a file of at most ${MAX_TOKEN_FILE_BYTES} bytes (${file})` }
    return { ok: true, value: buf.toString('utf8').trim() }
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return { ok: false, reason: `cannot read ${file} (${e.code === undefined ? e.message : `${e.code}: ${describeErrno(e)}`})` }
  }
}

function readAtMost (file: string, limit: number): Buffer {
  const fd = openSync(file, 'r')
  try {
    const chunks: Buffer[] = []
    let total = 0
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, limit - total))
      const n = readSync(fd, chunk, 0, chunk.length, null)
      if (n === 0) break
      chunks.push(chunk.subarray(0, n))
      total += n
      if (total >= limit) break
    }
    return Buffer.concat(chunks, total)
  } finally {
    closeSync(fd)
  }
}

/** "no such file or directory" out of "ENOENT: no such file or directory, open 'x'". */
function describeErrno (e: NodeJS.ErrnoException): string {
  const m = /^[A-Z0-9_]+: ([^,]+)/.exec(e.message)
  return m?.[1] ?? e.message
}

/** Strict UTF-8; the first invalid byte is located by line and column (UTF-16 units, as yaml counts). */
function decodeUtf8 (buf: Buffer, file: string): string {
  const text = buf.toString('utf8')
  for (let i = text.indexOf('\uFFFD'); i !== -1; i = text.indexOf('\uFFFD', i + 1)) {
    const prefix = text.slice(0, i) // valid up to here, so its byte length is the byte offset
    const offset = Buffer.byteLength(prefix)
    if (buf[offset] === 0xef && buf[offset + 1] === 0xbf && buf[offset + 2] === 0xbd) continue // a real U+FFFD
    const lineStart = prefix.lastIndexOf('\n') + 1
    const line = countLines(prefix)
    const byte = (buf[offset] ?? 0).toString(16).toUpperCase().padStart(2, '0')
    throw new ConfigError([{ path: '', message: `not valid UTF-8 (byte 0x${byte}); save the file as UTF-8`, file, line, col: i - lineStart + 1 }])
  }
  return text
}

function countLines (text: string): number {
  let n = 1
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++
  return n
}
