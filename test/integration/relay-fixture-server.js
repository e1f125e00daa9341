'use strict'
// A real server process for the relay tests (a relayed back end that can be killed).
//   node relay-fixture-server.js hash <sendBytes>  per connection: sha256 of what arrives; sends <sendBytes>
//                                                  of a pattern at the same time; prints one JSON line per
//                                                  connection once both directions ended.
//   node relay-fixture-server.js stream            per connection: writes without end until the socket dies.
// Prints `LISTEN <port>` first.
const { createHash } = require('node:crypto')
const net = require('node:net')

const [mode, sendArg] = process.argv.slice(2)
const sendBytes = Number(sendArg ?? 0)
const block = Buffer.alloc(1 << 20)
for (let i = 0; i < block.length; i += 4) block.writeUInt32LE(Math.imul(i + 7, 2246822519) >>> 0, i)

function send (s, total, hash, done) {
  let sent = 0
  const more = () => {
    while (sent < total) {
      const chunk = Buffer.from(block.subarray(0, Math.min(block.length, total - sent)))
      chunk.writeUInt32LE(sent / block.length, 0)
      if (hash) hash.update(chunk)
      sent += chunk.length
      if (!s.write(chunk)) return s.once('drain', more)
    }
    done()
  }
  more()
}

const server = net.createServer({ allowHalfOpen: true }, (s) => {
  s.on('error', () => {})
  if (mode === 'stream') {
    s.resume()
    return send(s, Number.MAX_SAFE_INTEGER, null, () => {})
  }
  const recv = createHash('sha256')
  const sentHash = createHash('sha256')
  let recvBytes = 0
  let pending = 2
  const report = () => {
    if (--pending > 0) return
    process.stdout.write(JSON.stringify({ recvBytes, recvHash: recv.digest('hex'), sentHash: sentHash.digest('hex') }) + '\n')
  }
  s.on('data', (d) => { recvBytes += d.length; recv.update(d) })
  s.on('end', report)
  send(s, sendBytes, sentHash, () => s.end(report))
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`LISTEN ${server.address().port}\n`)
})
