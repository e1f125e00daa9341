// The client process of bench/migrate.ts, run in the client's network namespace. One JSON line per command
// on stdin, one JSON line per answer on stdout:
//   {"host":"10.99.1.100","port":80,"path":"/m/x","count":500,"concurrency":1}
//     -> {"ttfbUs":[...],"connectUs":[...],"failed":N,"firstError":"..."}
// Each connection: connect, write one GET with Connection: close, time to the first response byte (from the
// write, which follows 'connect' at once), read to the end. `concurrency` connections at a time.
import net from 'node:net'
import readline from 'node:readline'

interface Job { readonly host: string; readonly port: number; readonly path: string; readonly count: number; readonly concurrency: number }

const nowUs = (): number => Number(process.hrtime.bigint()) / 1000

function one (job: Job, ttfb: number[], connect: number[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = nowUs()
    let t1 = 0
    let first = true
    let got = 0
    const s = net.connect(job.port, job.host)
    const timer = setTimeout(() => { s.destroy(new Error('no answer within 5 s')) }, 5000)
    s.once('connect', () => {
      t1 = nowUs()
      s.setNoDelay(true)
      s.write(`GET ${job.path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n`)
    })
    s.on('data', (d: Buffer) => {
      if (first) { first = false; ttfb.push(nowUs() - t1); connect.push(t1 - t0) }
      got += d.length
    })
    s.once('error', (err) => { clearTimeout(timer); reject(err) })
    s.once('close', () => {
      clearTimeout(timer)
      if (got === 0) reject(new Error('closed without an answer'))
      else resolve()
    })
  })
}

async function run (job: Job): Promise<unknown> {
  const ttfbUs: number[] = []
  const connectUs: number[] = []
  let next = 0
  let failed = 0
  let firstError: string | undefined
  const worker = async (): Promise<void> => {
    while (next < job.count) {
      next++
      try { await one(job, ttfbUs, connectUs) } catch (err) {
        failed++
        firstError ??= (err as Error).message
      }
    }
  }
  await Promise.all(Array.from({ length: job.concurrency }, worker))
  return { ttfbUs, connectUs, failed, firstError }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  void run(JSON.parse(line) as Job).then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`) })
})
process.stdout.write('{"ready":true}\n')
