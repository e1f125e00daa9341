// Reads the llhttp request corpus (test/fixtures/llhttp-requests/*.md, llhttp's test/request/*.md)
// into raw request bytes, decoded exactly as llhttp's own runner does (test/md-test.ts): drop escaped line
// breaks, every line break becomes CRLF, then the escapes \r \n \t \f \xHH and \OOO (octal) become bytes.
// Used by the sniff agreement test and by the end-to-end test.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

// A copy of ../shared/testdata/llhttp-requests (llhttp's test/request, MIT; see its LICENSE), kept in the repo
// so that a fresh clone runs the agreement tests on its own.
export const CORPUS_DIR = process.env.BATON_LLHTTP_CORPUS ?? join(__dirname, '../fixtures/llhttp-requests')

export interface CorpusCase {
  /** File name, e.g. 'invalid.md'. */
  readonly file: string
  /** The nearest heading above the case. */
  readonly title: string
  /** 1-based line of the ```http fence, for messages. */
  readonly line: number
  readonly bytes: Buffer
  readonly meta: Readonly<Record<string, unknown>>
  /** meta.type names an llhttp lenient mode (request-lenient-*): the log shows behaviour Node does not use. */
  readonly lenient: boolean
  /** The log block ends in `error code=...`: llhttp (in the case's mode) rejects at some point of the input. */
  readonly expectError: boolean
  /** Byte offset of that error, or -1. */
  readonly errorOffset: number
  /** Offset of llhttp's first `headers complete`, or -1 when it never completes a head. */
  readonly firstHeadOffset: number
}

/** Turns the text of an ```http block into bytes, as llhttp's md-test.ts does. */
export function decodeCorpusHttp (block: string): Buffer {
  let s = block.replace(/\\(\r\n|\r|\n)/g, '')
  s = s.replace(/\r\n|\r|\n/g, '\r\n')
  s = s.replace(/\\r/g, '\r').replace(/\\n/g, '\n').replace(/\\t/g, '\t').replace(/\\f/g, '\f')
  s = s.replace(/\\x([0-9a-fA-F]+)/g, (_all, hex: string) => String.fromCharCode(parseInt(hex, 16)))
  s = s.replace(/\\([0-7]{1,3})/g, (_all, oct: string) => String.fromCharCode(parseInt(oct, 8)))
  if (/\$\{.+?\}/.test(s)) throw new Error('corpus uses inline JavaScript (${...}); not supported')
  return Buffer.from(s, 'latin1')
}

/** Every request case of one corpus file (meta.type starting with 'request'). */
export function readCorpusFile (dir: string, file: string): CorpusCase[] {
  const lines = readFileSync(join(dir, file), 'latin1').split('\n')
  const cases: CorpusCase[] = []
  let title = ''
  let meta: Record<string, unknown> | null = null
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!
    const heading = /^#{1,6}\s+(.*)$/.exec(l)
    if (heading !== null) { title = heading[1]!.trim(); meta = null; continue }
    const m = /^<!--\s*meta=(\{.*\})\s*-->/.exec(l)
    if (m !== null) { meta = JSON.parse(m[1]!) as Record<string, unknown>; continue }
    if (l.trim() !== '```http' || meta === null) continue
    const fence = i + 1
    const body: string[] = []
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!)
    const log = readLogAfter(lines, i + 1)
    const type = String(meta.type ?? '')
    if (type.startsWith('request')) {
      const err = /^off=(\d+) error code=/m.exec(log)
      const head = /^off=(\d+) headers complete/m.exec(log)
      cases.push({
        file,
        title,
        line: fence,
        bytes: decodeCorpusHttp(body.join('\n')),
        meta,
        lenient: type.includes('lenient'),
        expectError: err !== null,
        errorOffset: err === null ? -1 : Number(err[1]),
        firstHeadOffset: head === null ? -1 : Number(head[1]),
      })
    }
    meta = null
  }
  return cases
}

function readLogAfter (lines: readonly string[], from: number): string {
  let i = from
  while (i < lines.length && lines[i]!.trim() !== '```log') {
    if (lines[i]!.startsWith('```') || lines[i]!.startsWith('#')) return ''
    i++
  }
  const out: string[] = []
  for (i++; i < lines.length && lines[i] !== '```'; i++) out.push(lines[i]!)
  return out.join('\n') + '\n'
}

/** All request cases of the corpus, file by file in name order. */
export function readCorpus (dir: string = CORPUS_DIR): CorpusCase[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.md') && f !== 'README.md').sort()
  return files.flatMap((f) => readCorpusFile(dir, f))
}
