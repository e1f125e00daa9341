// `baton host ... --dry-run`: the plans as the shell script a person reads and runs, and the undo of a
// record. Pure: no command runs (--dev is given, so nothing is asked of the host).
import { describe, expect, it } from 'vitest'
import { host } from '../../../src/cli/host'
import { type Change, renderRemove, shellLine } from '../../../src/host/commands'
import { RS_NFT_COUNTERS, RS_NFT_TABLE, dispatcherTable, realserverTable } from '../../../src/host/nft-table'
import { confKey, dispatcherPlan, realserverPlan } from '../../../src/host/plan'

function cli (...argv: string[]): { code: number; out: string; err: string } {
  let out = ''
  let err = ''
  const code = host(argv, (s) => { out += s }, (s) => { err += s })
  return { code, out, err }
}

/** The script's commands, without comments, blank lines and here-document bodies. */
function commands (script: string): string[] {
  const lines: string[] = []
  let inDoc = false
  for (const line of script.split('\n')) {
    if (inDoc) { inDoc = line !== 'EOF'; continue }
    if (line === '' || line.startsWith('#')) continue
    lines.push(line)
    if (line.endsWith("<<'EOF'")) inDoc = true
  }
  return lines
}

describe('baton host dispatcher --dry-run', () => {
  const { code, out, err } = cli('dispatcher', '--vip', '10.99.0.100', '--port', '8080', '--dev', 'eth1', '--dry-run')

  it('prints every command in order, as a script', () => {
    expect({ code, err }).toEqual({ code: 0, err: '' })
    expect(out.startsWith('#!/bin/sh\n# baton host dispatcher --vip 10.99.0.100 --port 8080 --dev eth1\n')).toBe(true)
    expect(commands(out)).toEqual([
      'set -e',
      'sysctl -w net.ipv4.ip_forward=1',
      'sysctl -w net.ipv4.conf.all.send_redirects=0',
      'sysctl -w net.ipv4.conf.eth1.send_redirects=0',
      'sysctl -w net.ipv4.conf.all.rp_filter=2',
      'sysctl -w net.ipv4.conf.eth1.rp_filter=2',
      'sysctl -w net.ipv4.tcp_early_demux=0',
      'ip address add 10.99.0.100/32 dev eth1',
      'ip rule add pref 1000 lookup local',
      'ip rule del pref 0 lookup local',
      "nft -f - <<'EOF'",
    ])
  })

  it('gives the nft table as a here-document, with the VIP and port in each rule', () => {
    const doc = out.slice(out.indexOf("<<'EOF'\n") + 8, out.lastIndexOf('\nEOF'))
    expect(`${doc}\n`).toBe(dispatcherTable({ vip: '10.99.0.100', port: 8080 }))
    expect(doc).toContain('map flows { type ipv4_addr . inet_service : mark; flags timeout; size 65536; }')
    expect(doc).toContain('ip daddr 10.99.0.100 tcp dport 8080 tcp flags & (syn|ack) != syn meta mark set ip saddr . tcp sport map @flows')
    expect(doc).toContain('meta mark 0xff counter name "frozen_drop" drop')
    expect(doc).toMatch(/chain raw_prerouting \{\n\s+type filter hook prerouting priority raw;\n\s+ip daddr 10\.99\.0\.100 tcp dport 8080 notrack\n/)
    expect(doc).toMatch(/chain raw_output \{\n\s+type filter hook output priority raw;\n\s+ip saddr 10\.99\.0\.100 tcp sport 8080 notrack\n/)
    // The payload counter: one rule per tcp doff, the threshold being the headers' length.
    expect(doc).toContain('ip saddr 10.99.0.100 tcp sport 8080 ip hdrlength 5 tcp doff 8 ip length > 52 counter name "vip_payload_out"')
    expect(doc.match(/counter name "vip_payload_out"/g)).toHaveLength(12)
  })

  it('says why, with the pitfall, before each group of commands', () => {
    expect(out).toMatch(/# Send no ICMP redirects:[^]*pitfall 7[^]*\nsysctl -w net\.ipv4\.conf\.all\.send_redirects=0/)
    expect(out).toMatch(/# The local table after the fwmark rules \(pitfall 7\)/)
    expect(out).toMatch(/# The steering table \(pitfalls 6, 8\)/)
    for (const line of out.split('\n')) expect(line.length).toBeLessThanOrEqual(200)
  })

  it('defaults to port 80', () => {
    expect(cli('dispatcher', '--vip', '10.1.2.3', '--dev', 'eth0', '--dry-run').out).toContain('ip daddr 10.1.2.3 tcp dport 80 notrack')
  })
})

describe('baton host realserver --dry-run', () => {
  const { code, out, err } = cli('realserver', '--vip', '10.99.0.100', '--dev', 'ens3', '--dry-run')

  it('puts the VIP on lo, suppresses ARP on all, lo and the device, and loads the early-drop table', () => {
    expect({ code, err }).toEqual({ code: 0, err: '' })
    expect(commands(out)).toEqual([
      'set -e',
      'ip address add 10.99.0.100/32 dev lo',
      'sysctl -w net.ipv4.conf.all.arp_ignore=1',
      'sysctl -w net.ipv4.conf.lo.arp_ignore=1',
      'sysctl -w net.ipv4.conf.ens3.arp_ignore=1',
      'sysctl -w net.ipv4.conf.all.arp_announce=2',
      'sysctl -w net.ipv4.conf.lo.arp_announce=2',
      'sysctl -w net.ipv4.conf.ens3.arp_announce=2',
      'sysctl -w net.ipv4.conf.all.rp_filter=2',
      'sysctl -w net.ipv4.conf.ens3.rp_filter=2',
      "nft -f - <<'EOF'",
    ])
  })

  it('gives the early-drop table as a here-document: realserverTable, for the VIP', () => {
    const doc = out.slice(out.indexOf("<<'EOF'\n") + 8, out.lastIndexOf('\nEOF'))
    expect(`${doc}\n`).toBe(realserverTable({ vip: '10.99.0.100' }))
    expect(RS_NFT_TABLE).toBe('baton_realserver')
    expect(doc).toContain(`table ip baton_realserver {\n  counter ${RS_NFT_COUNTERS.earlyDrop} { }\n`)
    expect(doc).toMatch(/chain early \{\n\s+type filter hook prerouting priority mangle; policy accept;\n/)
    // A restored socket the agent marked ready (IP_TRANSPARENT) passes; anything else non-SYN from outside
    // to the VIP is counted and dropped, in that order.
    const rules = doc.split('\n').filter((l) => l.includes('ip daddr')).map((l) => l.trim())
    expect(rules).toEqual([
      'iif != "lo" ip daddr 10.99.0.100 tcp flags & syn == 0 socket transparent 1 accept',
      'iif != "lo" ip daddr 10.99.0.100 tcp flags & syn == 0 counter name "early_drop" drop',
    ])
  })

  it('says why: early packets are dropped, not answered with RST; IP_TRANSPARENT marks a restored socket', () => {
    const why = out.slice(out.indexOf('# The early-drop table'), out.indexOf("nft -f - <<'EOF'")).replace(/\n# /g, ' ')
    expect(why).toContain('pitfall 2')
    expect(why).toContain('answered with RST')
    expect(why).toContain('IP_TRANSPARENT')
    expect(why).toContain('SYNs and loopback are untouched')
    expect(why).toContain('for migrated connections only')
  })
})

describe('plans', () => {
  it('accept loose or off rp_filter as it is, and only exact values elsewhere', () => {
    const rp = dispatcherPlan({ vip: '10.0.0.1', port: 80, dev: 'eth0' }).filter((s) => s.kind === 'sysctl' && s.key.endsWith('rp_filter'))
    expect(rp.map((s) => s.kind === 'sysctl' && s.accept)).toEqual([[0, 2], [0, 2]])
    const arp = realserverPlan({ vip: '10.0.0.1', port: 80, dev: 'eth0' }).filter((s) => s.kind === 'sysctl' && s.key.endsWith('arp_ignore'))
    expect(arp.map((s) => s.kind === 'sysctl' && s.accept)).toEqual([[1, 2], [1, 2], [1, 2]])
  })

  it('write the slash form of a sysctl for a device with a dot (VLAN)', () => {
    expect(confKey('eth0.100', 'rp_filter')).toBe('net/ipv4/conf/eth0.100/rp_filter')
    expect(confKey('eth0', 'rp_filter')).toBe('net.ipv4.conf.eth0.rp_filter')
  })

  it('quote what a shell would split', () => {
    expect(shellLine({ argv: ['echo', 'a b', "it's"] })).toBe("echo 'a b' 'it'\\''s'")
  })
})

describe('baton host --remove --dry-run', () => {
  it('undoes the recorded changes, newest first', () => {
    const changes: Change[] = [
      { kind: 'sysctl', key: 'net.ipv4.ip_forward', old: 0 },
      { kind: 'address', address: '10.99.0.100', dev: 'eth0' },
      { kind: 'local-rule', pref: 1000 },
      { kind: 'nft-table', table: 'baton' },
    ]
    expect(commands(renderRemove('x', changes))).toEqual([
      'set -e',
      'nft delete table ip baton',
      'ip rule add pref 0 lookup local',
      'ip rule del pref 1000 lookup local',
      'ip address del 10.99.0.100/32 dev eth0',
      'sysctl -w net.ipv4.ip_forward=0',
    ])
  })

  it('says so when nothing is recorded', () => {
    const { code, out } = cli('dispatcher', '--vip', '10.99.0.100', '--remove', '--dry-run', '--state-dir', '/nonexistent/baton')
    expect(code).toBe(0)
    expect(out).toContain('# (nothing recorded: nothing to undo)')
    expect(out).toContain('/nonexistent/baton/dispatcher-netns-')
  })
})

describe('baton host usage', () => {
  it.each([
    [[], 'missing dispatcher or realserver'],
    [['proxy', '--vip', '10.0.0.1'], 'unknown role "proxy"'],
    [['dispatcher'], '--vip is required'],
    [['dispatcher', '--vip', '10.0.0.256'], '--vip must be an IPv4 address, got "10.0.0.256"'],
    [['dispatcher', '--vip', '10.0.0.1', '--port', '0'], '--port must be 1..65535, got "0"'],
    [['realserver', '--vip', '10.0.0.1', '--port', '80'], '--port is for the dispatcher only'],
    [['realserver', '--vip', '10.0.0.1', '--dev', 'lo'], 'not lo'],
    [['realserver', '--vip', '10.0.0.1', '--dev', 'a b'], '--dev must be an interface name, got "a b"'],
    [['realserver', '--vip', '10.0.0.1', '--bogus'], "Unknown option '--bogus'"],
  ])('%j: exit 2, %s', (argv, message) => {
    const { code, err } = cli(...argv)
    expect(code).toBe(2)
    expect(err).toContain(message)
    expect(err).toContain('Usage: baton host dispatcher')
  })

  it('--help prints the usage', () => {
    expect(cli('--help')).toMatchObject({ code: 0, err: '' })
    expect(cli('--help').out).toContain('--state-dir DIR')
  })
})
