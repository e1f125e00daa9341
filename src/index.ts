// The public face of the package `baton`: start a switch from a config, change it while it serves, and the
// types and errors that come with it. The back-end side is `baton/backend` (src/backend/index.ts).
//
//   import { loadConfigFile, startBaton } from 'baton'
//   const baton = await startBaton(loadConfigFile('config/baton.yaml'))
//   console.log(baton.ports, baton.servers())
//   await baton.close()
export { Baton, startBaton, type BatonOptions } from './baton'
export type { ClusterDiff } from './cluster/cluster'
export type { ServerSnapshot } from './cluster/types'
export { loadConfigFile, parseConfig } from './config/load'
export type {
  AdminConfig, Config, HeaderMatch, KeySpec, LimitsConfig, ListenAddress, PersistenceConfig, RouteConfig,
  RouteMatch, ServerConfig, ServiceConfig,
} from './config/types'
export { BatonError, BatonNativeError, CODES, ConfigError, formatIssue } from './errors'
export type { ConfigIssue, ErrorCode, ErrorSource } from './errors'
export type { ForwardMethod } from './forward/types'
export { createLogger, type Logger, type LogLevel } from './log'
export { schedulerNames } from './schedulers/registry'
