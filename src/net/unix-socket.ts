// Unix socket names, for everything in Baton that listens on one (a back end's handoff or relay socket,
// the admin API): '@name' is the Linux abstract namespace (no file, ever: Node needs it spelled '\0name'),
// anything else a socket file. A socket file is never taken from a live listener: an existing path is
// removed only if it is a socket and connecting to it is refused (ECONNREFUSED: nobody is bound to it any
// more, a process that died without close()). A listener removes only the file it created itself (same
// device and inode), never a successor's. Setup only, never on a data path.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

/** Builds the caller's error (its own code) from a reason such as "another process is listening on it". */
export type Fail = (reason: string, cause?: unknown) => Error

export const isAbstract = (p: string): boolean => p.startsWith('@')

/** The name as Node's net module takes it: an abstract '@name' is '\0name' there ('@name' would be a file). */
export const nodeSocketPath = (p: string): string => (isAbstract(p) ? `\0${p.slice(1)}` : p)

export interface FileId { readonly dev: number; readonly ino: number }

/** The identity of the file at `p` now, or undefined if there is none. */
export function fileId (p: string): FileId | undefined {
  const st = fs.lstatSync(p, { throwIfNoEntry: false })
  return st === undefined ? undefined : { dev: st.dev, ino: st.ino }
}

/** Unlinks `p` only if it is still the file `id` names; anything else there is left alone. */
export function unlinkIfSame (p: string, id: FileId | undefined): void {
  const now = id === undefined ? undefined : fileId(p)
  if (now === undefined || now.dev !== id!.dev || now.ino !== id!.ino) return
  try { fs.unlinkSync(p) } catch {}
}

/**
 * Called when binding `p` found something there. Resolves once the path is free to try again: a stale
 * socket file was removed, or the file went away meanwhile. Rejects (through `fail`) when it is not a
 * socket, when something answers on it (connect succeeds, or fails with EPROTOTYPE for a socket of the
 * other type, or EAGAIN for a full backlog), or when connecting fails otherwise (EACCES: not ours to judge).
 */
export async function reclaimStale (p: string, fail: Fail): Promise<void> {
  const before = fs.lstatSync(p, { throwIfNoEntry: false })
  if (before === undefined) return
  if (!before.isSocket()) throw fail('it exists and is not a socket (left as it is)')
  const answer = await probe(p)
  if (answer === 'gone') return
  if (answer === 'live') throw fail('another process is listening on it')
  if (answer !== 'refused') throw fail(`cannot tell whether the socket file is stale (connect: ${answer}); left as it is`)
  unlinkIfSame(p, { dev: before.dev, ino: before.ino }) // refused: nobody is bound to the inode we probed
}

/** 'live', 'refused', 'gone' (ENOENT), or the errno code of any other connect failure. One attempt, no timer. */
function probe (p: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: p })
    socket.once('connect', () => { socket.destroy(); resolve('live') })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.destroy()
      const code = err.code ?? 'EIO'
      if (code === 'ECONNREFUSED') resolve('refused')
      else if (code === 'ENOENT') resolve('gone')
      else if (code === 'EPROTOTYPE' || code === 'EAGAIN') resolve('live')
      else resolve(code)
    })
  })
}

/**
 * Listens a Node server on `p`. Node cannot set a socket's mode before bind() (readableAll/writableAll
 * chmod afterwards, and the file is born 0777 & ~umask), so a socket file is bound inside a fresh 0700
 * directory next to `p` (same filesystem), given `mode & ~umask` there, and only then linked into place
 * with link(2), which is atomic and fails with EEXIST instead of replacing: a live listener's socket is
 * never taken (a stale one is removed first). The socket file is never reachable with a wider mode.
 * Resolves to the identity of the file (undefined for '@name'); on failure nothing is left listening or
 * on disk. The staging name is gone before this returns (libuv's unlink of it at close finds nothing).
 */
export async function listenUnix (server: net.Server, p: string, mode: number, fail: Fail): Promise<FileId | undefined> {
  return (await stageUnix(server, p, mode, fail)).publish()
}

/** A server listening on a staged name, not yet reachable at its path (see stageUnix). */
export interface StagedUnix {
  /**
   * Makes it reachable at the path (link(2); a stale file there is replaced, a live one never taken; an
   * abstract name is bound only now). Resolves to the file's identity (undefined for '@name'); on failure
   * nothing is left listening or on disk.
   */
  publish (): Promise<FileId | undefined>
  /** Stops listening and removes the staging directory; for a stage that is never published. */
  abort (): void
}

/**
 * listenUnix in two steps, for a process that must be ready before the path is free (a takeover: the
 * running process still holds it): the server already listens in its private staging directory, and
 * publish() is one link(2) (abstract names: one bind and listen) once the path is free.
 */
export async function stageUnix (server: net.Server, p: string, mode: number, fail: Fail): Promise<StagedUnix> {
  if (isAbstract(p)) {
    return { publish: async () => { await listen(server, nodeSocketPath(p), fail); return undefined }, abort: () => {} }
  }
  let dir: string
  try {
    dir = fs.mkdtempSync(path.join(path.dirname(p), '.baton-'))
  } catch (err) {
    throw fail(`cannot create a private directory next to it (${(err as Error).message})`, err)
  }
  const staged = path.join(dir, 'sock')
  const abort = (): void => {
    if (server.listening) server.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    await listen(server, staged, fail)
    fs.chmodSync(staged, mode & fs.statSync(staged).mode & 0o777) // born 0777 & ~umask: gives mode & ~umask
  } catch (err) {
    abort()
    throw err
  }
  return {
    abort,
    publish: async () => {
      try {
        for (let attempt = 0; ; attempt++) {
          try {
            fs.linkSync(staged, p)
            return fileId(p)
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail((err as Error).message, err)
            if (attempt > 0) throw fail('the path was taken again while a stale file was being replaced', err)
            await reclaimStale(p, fail)
          }
        }
      } catch (err) {
        if (server.listening) server.close()
        throw err
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    },
  }
}

function listen (server: net.Server, at: string, fail: Fail): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onListening = (): void => { server.off('error', onError); resolve() }
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening)
      reject(fail(err.code === 'EADDRINUSE' && at.startsWith('\0') ? 'another socket is bound to this abstract name' : err.message, err))
    }
    server.once('listening', onListening)
    server.once('error', onError)
    server.listen({ path: at })
  })
}
