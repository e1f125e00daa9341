import { describe, expect, it } from 'vitest'
import { parseAddress } from '../../../src/config/address'
import { isLoopback } from '../../../src/net/ip'

describe('parseAddress', () => {
  it.each([
    ['127.0.0.1:8080', 0, { host: '127.0.0.1', port: 8080 }],
    ['[::1]:80', 1, { host: '::1', port: 80 }],
    ['[fd00::1]:0', 0, { host: 'fd00::1', port: 0 }],
    ['api.internal:443', 1, { host: 'api.internal', port: 443 }],
  ] as const)('%s', (text, minPort, want) => {
    expect(parseAddress(text, minPort)).toEqual(want)
  })

  it.each([
    ['8080', 0, 'must be "host:port" (IPv6 as "[::1]:port")'],
    [':8080', 0, 'must be "host:port" (IPv6 as "[::1]:port")'],
    ['::1:80', 0, 'must be "host:port" (IPv6 as "[::1]:port"): put an IPv6 address in brackets'],
    ['[1.2.3.4]:80', 0, 'must be "host:port" (IPv6 as "[::1]:port"): "1.2.3.4" is not an IPv6 address'],
    ['a_b:80', 0, 'must be "host:port" (IPv6 as "[::1]:port"): "a_b" is not a host name or IP address'],
    ['h:0', 1, 'must be "host:port" (IPv6 as "[::1]:port"): port must be an integer 1..65535'],
    ['h:65536', 0, 'must be "host:port" (IPv6 as "[::1]:port"): port must be an integer 0..65535'],
    ['h:8o', 0, 'must be "host:port" (IPv6 as "[::1]:port"): port must be an integer 0..65535'],
  ] as const)('%s is refused', (text, minPort, message) => {
    expect(parseAddress(text, minPort)).toBe(message)
  })
})

describe('isLoopback', () => {
  it.each([['127.0.0.1', true], ['127.8.9.1', true], ['::1', true], ['localhost', true], ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.1', false], ['example.com', false]] as const)('%s -> %s', (host, want) => {
    expect(isLoopback(host)).toBe(want)
  })
})
