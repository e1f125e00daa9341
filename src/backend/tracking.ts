// Node's http.Server tracks its connections (headersTimeout, requestTimeout, closeIdleConnections) only once
// it is listening. A back end that listens nowhere else is listened on a Unix socket that no one can reach:
// bound inside a fresh directory from fs.mkdtemp under os.tmpdir() (mode 0700 whatever the umask, so no
// other uid can connect even in the instant the file exists), and the file and the directory are removed
// as soon as it listens: a bound socket keeps listening without a name, and nobody ever connects to it.
// So nothing is left on disk, not even after SIGKILL. Never an abstract name (any uid in the network
// namespace can reach those), never next to the handoff path (the back end's cwd or socket directory).
import type http from 'node:http'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { attachError } from './attach-error'

/**
 * Makes `server` listen if it does not already. Resolves to a function that closes what this call opened
 * (for an acceptHandoffs that fails later), or to undefined if the server was already listening. Rejects
 * with BATON_ERR_BACKEND_ATTACH naming `handoffPath`; nothing is left open or on disk then.
 */
export async function ensureTracking (server: http.Server, handoffPath: string): Promise<(() => Promise<void>) | undefined> {
  if (server.listening) return undefined
  let dir: string
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'baton-http-'))
  } catch (err) {
    throw attachError(handoffPath, `cannot create a private directory for connection tracking (${(err as Error).message})`, err)
  }
  try {
    await new Promise<void>((resolve, reject) => {
      const onListening = (): void => { server.off('error', onError); resolve() }
      const onError = (err: Error): void => {
        server.off('listening', onListening)
        reject(attachError(handoffPath, `cannot listen the http.Server for connection tracking (${err.message})`, err))
      }
      server.once('listening', onListening)
      server.once('error', onError)
      server.listen({ path: path.join(dir, 'http.sock'), exclusive: true })
    })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
  return () => new Promise<void>((resolve) => { server.close(() => resolve()) })
}
