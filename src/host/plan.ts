// What `baton host dispatcher|realserver` sets up, as data: an ordered list of steps, each with the reason a
// person reads in --dry-run and docs/migrate.md. Pure (no I/O): the same options give the same plan.
// Applying and removing (probe, run, record) is apply.ts; the commands of each step are commands.ts.
import { LOCAL_RULE_PREF, NFT_TABLE, RS_NFT_TABLE, dispatcherTable, realserverTable } from './nft-table'

export type Role = 'dispatcher' | 'realserver'

export type Step =
  /** Set a sysctl to `value` unless its value is already one of `accept`. */
  | { readonly kind: 'sysctl'; readonly key: string; readonly value: number; readonly accept: readonly number[]; readonly why: string }
  /** Put address/32 on dev unless it is already there (then it is assumed and never removed). */
  | { readonly kind: 'address'; readonly address: string; readonly dev: string; readonly why: string }
  /** Move the `local` table's rule from pref 0 to `pref`. */
  | { readonly kind: 'local-rule'; readonly pref: number; readonly why: string }
  /** Create an nft table from `script` unless a table of that name exists. */
  | { readonly kind: 'nft-table'; readonly table: string; readonly script: string; readonly why: string }

export interface HostOptions {
  readonly vip: string
  /** The dispatcher's VIP port (default 80); not used for a real server. */
  readonly port: number
  /** The interface facing the clients and the other hosts. */
  readonly dev: string
}

/** A sysctl key for a device: devices with dots need the slash form (`net/ipv4/conf/eth0.100/...`). */
export function confKey (dev: string, name: string): string {
  return dev.includes('.') ? `net/ipv4/conf/${dev}/${name}` : `net.ipv4.conf.${dev}.${name}`
}

function sysctls (devs: readonly string[], name: string, value: number, accept: readonly number[], why: string): Step[] {
  return devs.map((dev) => ({ kind: 'sysctl', key: confKey(dev, name), value, accept, why }))
}

const WHY = {
  forward: 'Forward the client\'s later packets to the real server that holds the connection, destination unchanged (pitfall 7).',
  redirects: 'Send no ICMP redirects: a steered packet leaves by the interface it came in on, which is the redirect case, and a client that obeyed one would send its next SYN to a real server (pitfall 7). Both: the kernel sends them if all OR the device says so.',
  rpFilter: 'Reverse-path filter loose (2) or off (0), never strict (pitfalls 7, 12); the kernel applies the larger of all and the device, so a strict 1 is made loose and 0 or 2 is kept.',
  earlyDemux: 'TCP early demux off (net.ipv4.tcp_early_demux=0): every received TCP segment is routed before it meets a socket, so a migrated flow\'s steer mark sends its packets to the real server even while the dispatcher still holds the socket it is dumping (pitfall 1). The dispatcher then steers first and never freezes: one nft transaction a migration instead of two. It costs a route lookup per received segment, which the kernel documentation recommends for routing workloads anyway. With early demux on, migrations freeze, dump, close, then steer, as before.',
  dispVip: 'The VIP on the client-facing interface: the dispatcher accepts every connection on it and answers ARP for it.',
  localRule: `The local table after the fwmark rules (pitfall 7): with it at pref 0 the VIP always resolves as local and a steered packet never reaches its fwmark rule. The dispatcher adds one \`ip rule fwmark N lookup N\` per real server at a pref below ${LOCAL_RULE_PREF} at run time. Add first, then delete, so the local table is never missing.`,
  table: 'The steering table (pitfalls 6, 8): notrack for VIP:port, because conntrack sees one direction only and would call the forwarded ACKs INVALID; the flow map (client address . port : mark, with timeouts) the dispatcher fills at run time, never for a pure SYN; mark 0xff = frozen while the connection moves; counters (payload and RSTs this host sent from VIP:port, frozen drops, steered packets).',
  rsVip: 'The VIP on lo: the real server owns the address the restored connections are bound to (and a listener may bind it too), but never announces it.',
  arpIgnore: 'Answer ARP only for addresses on the interface asked (arp_ignore=1), so the VIP on lo is never answered for: the dispatcher alone owns it on the wire. All, lo and the device (the kernel uses the largest).',
  arpAnnounce: 'Never use the VIP as the source of ARP requests (arp_announce=2), which would teach the segment that the VIP lives here. All, lo and the device.',
  rsTable: 'The early-drop table (pitfall 2): the dispatcher may steer a migrated flow here before the agent has restored its socket; a packet of that flow arriving first would find no socket (or only a listener) and be answered with RST, killing the client\'s connection. Such packets are dropped instead (counter early_drop) and the client retransmits them. The agent marks a restored socket ready by setting IP_TRANSPARENT on it, and packets of transparent sockets pass. SYNs and loopback are untouched. The VIP on a real server is for migrated connections only: nothing else reaches it from outside (ARP for it is suppressed).',
} as const

/** The dispatcher host: forwarding, no redirects, loose rp_filter, the VIP, the local rule moved, the nft table. */
export function dispatcherPlan ({ vip, port, dev }: HostOptions): Step[] {
  return [
    { kind: 'sysctl', key: 'net.ipv4.ip_forward', value: 1, accept: [1], why: WHY.forward },
    ...sysctls(['all', dev], 'send_redirects', 0, [0], WHY.redirects),
    ...sysctls(['all', dev], 'rp_filter', 2, [0, 2], WHY.rpFilter),
    { kind: 'sysctl', key: 'net.ipv4.tcp_early_demux', value: 0, accept: [0], why: WHY.earlyDemux },
    { kind: 'address', address: vip, dev, why: WHY.dispVip },
    { kind: 'local-rule', pref: LOCAL_RULE_PREF, why: WHY.localRule },
    { kind: 'nft-table', table: NFT_TABLE, script: dispatcherTable({ vip, port }), why: WHY.table },
  ]
}

/** A real server's host: the VIP on lo with ARP suppressed, loose rp_filter, the early-drop table. */
export function realserverPlan ({ vip, dev }: HostOptions): Step[] {
  return [
    { kind: 'address', address: vip, dev: 'lo', why: WHY.rsVip },
    ...sysctls(['all', 'lo', dev], 'arp_ignore', 1, [1, 2], WHY.arpIgnore),
    ...sysctls(['all', 'lo', dev], 'arp_announce', 2, [2], WHY.arpAnnounce),
    ...sysctls(['all', dev], 'rp_filter', 2, [0, 2], WHY.rpFilter),
    { kind: 'nft-table', table: RS_NFT_TABLE, script: realserverTable({ vip }), why: WHY.rsTable },
  ]
}

export function planFor (role: Role, options: HostOptions): Step[] {
  return role === 'dispatcher' ? dispatcherPlan(options) : realserverPlan(options)
}
