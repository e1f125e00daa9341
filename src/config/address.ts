// "host:port" strings, the one address syntax of the config: IPv4 "10.0.0.1:80", a name "api.local:80",
// IPv6 in brackets "[::1]:8080". Pure functions, config time only.

import { isIP, isIPv6 } from 'node:net'
import type { ListenAddress } from './types'

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

/**
 * Parses "host:port". `minPort` is 0 for listeners (0 = any free port) and 1 for real servers.
 * Returns the address, or a message saying what is wrong (without the value; the caller appends it).
 */
export function parseAddress (text: string, minPort: 0 | 1): ListenAddress | string {
  const expected = 'must be "host:port" (IPv6 as "[::1]:port")'
  const colon = text.lastIndexOf(':')
  if (colon <= 0) return expected
  let host = text.slice(0, colon)
  const portText = text.slice(colon + 1)
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1)
    if (!isIPv6(host)) return `${expected}: "${host}" is not an IPv6 address`
  } else if (host.includes(':')) {
    return `${expected}: put an IPv6 address in brackets`
  } else if (isIP(host) === 0 && !HOSTNAME.test(host)) {
    return `${expected}: "${host}" is not a host name or IP address`
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < minPort || Number(portText) > 65535) {
    return `${expected}: port must be an integer ${minPort}..65535`
  }
  return { host, port: Number(portText) }
}
