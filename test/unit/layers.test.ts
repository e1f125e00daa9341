// The walls of docs/architecture.md: every import in src/ goes to a lower layer (or stays in its folder),
// and the fields with one writer have one writer. A failure names the file and the import.
import fs from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = path.join(__dirname, '../../src')

/** Lower number = lower layer. An import may only go to a strictly lower layer, or within its own folder. */
const LAYERS: Readonly<Record<string, number>> = {
  errors: 0, log: 0,
  net: 1, native: 1,
  protocol: 2, schedulers: 2,
  host: 2.5,           // `baton host`: host setup for migrate (sysctl, ip, nft at setup time); the nft table's names
  config: 3,
  request: 4,
  backend: 4.5,        // a back end's process: never forward/, dispatcher/, cluster/ or health/
  forward: 5,
  agent: 5.5,          // `baton agent`: restores migrated connections, hands them off through forward/'s channel
  cluster: 6,
  health: 7,
  dispatcher: 8,
  admin: 9,
  baton: 10,
  index: 11,
  demo: 11.5,          // the quick start's demo back ends and switch
  cli: 12,
}

function sourceFiles (dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : []
  })
}

/** The layer of a file: its top folder under src/, or its own name for files at the top. */
function layerOf (file: string): string {
  const rel = path.relative(SRC, file).split(path.sep)
  return rel.length === 1 ? rel[0]!.replace(/\.ts$/, '') : rel[0]!
}

function importsOf (file: string): string[] {
  const text = fs.readFileSync(file, 'utf8')
  const specs = [...text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)].map((m) => m[1]!)
  return specs.map((s) => path.resolve(path.dirname(file), s))
}

describe('layers', () => {
  const files = sourceFiles(SRC)

  it('knows every top-level part of src/', () => {
    expect(files.map(layerOf).filter((l) => LAYERS[l] === undefined)).toEqual([])
  })

  it('has no import that runs upward or sideways', () => {
    const bad: string[] = []
    for (const f of files) {
      const from = layerOf(f)
      for (const target of importsOf(f)) {
        const to = layerOf(`${target}.ts`)
        if (to === from) continue
        if (!(LAYERS[to]! < LAYERS[from]!)) bad.push(`${path.relative(SRC, f)} -> ${path.relative(SRC, target)}`)
      }
    }
    expect(bad).toEqual([])
  })

  it('lets only health write up and the effective weight (Service.applyHealth)', () => {
    const writers = files.filter((f) => /\.applyHealth\(/.test(fs.readFileSync(f, 'utf8')))
    expect(writers.map((f) => path.relative(SRC, f))).toEqual(['health/state.ts'])
  })

  it('loads the addon in exactly one file', () => {
    const loaders = files.filter((f) => /node-gyp-build|\.node'/.test(fs.readFileSync(f, 'utf8')))
    expect(loaders.map((f) => path.relative(SRC, f))).toEqual(['native/binding.ts'])
  })
})
