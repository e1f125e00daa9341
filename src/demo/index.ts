// The built-in default: the switch in front of demo back ends, all from one config (config/baton.yaml).
// Each real server in the config gets its own demo process: handoff servers take connections over their
// socket, address servers listen on TCP and are relayed (splice). Then the switch starts.
import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { loadConfigFile } from '../config/load'
import type { Config, ServerConfig } from '../config/types'
import { startBaton } from '../baton'
import { createLogger } from '../log'

export interface Demo {
  readonly config: Config
  readonly ports: readonly number[]
  close (): Promise<void>
}

export async function runDemo (configFile: string): Promise<Demo> {
  const config = loadConfigFile(configFile)
  const log = createLogger(config.log.level)
  const children: ChildProcess[] = []
  const seen = new Set<string>()
  try {
    for (const service of config.services) {
      for (const server of service.servers) {
        const id = server.handoff ?? `${server.address?.host}:${server.address?.port}`
        if (seen.has(id)) continue
        seen.add(id)
        children.push(await startDemoBackend(server))
      }
    }
    const baton = await startBaton(config, { logger: log })
    log.info({ listen: config.listen.map((l, i) => `http://${l.host}:${baton.ports[i]}/`), backends: children.length },
      'demo ready: try curl -i http://127.0.0.1:8080/static/logo.png, /api/users, /legacy/')
    return {
      config,
      ports: baton.ports,
      close: async () => {
        await baton.close()
        await Promise.all(children.map(stopChild))
      },
    }
  } catch (err) {
    await Promise.all(children.map(stopChild))
    throw err
  }
}

function startDemoBackend (server: ServerConfig): Promise<ChildProcess> {
  const args = ['--name', server.name]
  if (server.handoff !== undefined) {
    if (!server.handoff.startsWith('@')) fs.mkdirSync(path.dirname(server.handoff), { recursive: true })
    args.push('--handoff', server.handoff)
  } else {
    args.push('--listen', `${server.address!.host}:${server.address!.port}`)
  }
  const child = fork(path.join(__dirname, 'backend.js'), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`demo back end ${server.name} exited with ${code}`)))
  })
}

function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
  })
}
