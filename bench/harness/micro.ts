// `npm run bench -- --micro`: runs every compiled micro-benchmark (dist/bench/micro/*.js, each exporting
// `async main()`) in a child process of its own, one after another, so that no JIT state or heap is
// shared between them. Resolves with the number that failed.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

const TIMEOUT_MS = 10 * 60_000

function runOne (file: string): Promise<boolean> {
  const code = `Promise.resolve().then(() => require(${JSON.stringify(file)}).main())` +
    '.then(() => {}, (err) => { console.error(err); process.exitCode = 1 })'
  // --expose-gc: the scheduler benchmark measures bytes allocated per pick around a forced collection.
  const child = spawn(process.execPath, ['--expose-gc', '-e', code], { stdio: 'inherit' })
  const killer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS)
  return new Promise((resolve) => child.once('exit', (status) => { clearTimeout(killer); resolve(status === 0) }))
}

export async function runMicro (): Promise<number> {
  const dir = path.join(__dirname, '..', 'micro')
  const files = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => f.endsWith('.js')).sort().map((f) => path.join(dir, f))
    : []
  if (files.length === 0) {
    console.log(`no micro-benchmarks in ${dir} (bench/micro/*.ts, built by npm run build)`)
    return 0
  }
  let failed = 0
  for (const file of files) {
    console.log(`\n== ${path.basename(file, '.js')} (${path.relative(process.cwd(), file)})`)
    const started = Date.now()
    const ok = await runOne(file)
    console.log(`== ${path.basename(file, '.js')}: ${ok ? 'done' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    if (!ok) failed++
  }
  return failed
}
