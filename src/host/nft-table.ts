// The nftables tables for `migrate`: the dispatcher's (`baton host dispatcher` creates it; the forwarder
// fills its map at run time through the addon's netlink client, never through `nft`) and a real server's
// (`baton host realserver`; below). One home for their names, so the forwarder, the agent, the docs and the
// tests read the same ones. Research file: pitfalls 1, 2, 6, 8.

/** `table ip baton`: one per dispatcher host. */
export const NFT_TABLE = 'baton'
/** The flow map: `client address . client port : mark`, with per-element timeouts (pitfall 8). */
export const NFT_FLOWS_MAP = 'flows'
/** The mark of a frozen flow: its packets are dropped in prerouting while the connection moves. */
export const FROZEN_MARK = 0xff
/** ip rule preference of the `local` table after `baton host dispatcher`; per-server fwmark rules go below it. */
export const LOCAL_RULE_PREF = 1000

/** Named counters in the table (`nft -j list counter ip baton NAME`). */
export const NFT_COUNTERS = {
  /** Packets from VIP:port with TCP payload that this host sent: 0 when every answer comes from a real server. */
  payloadOut: 'vip_payload_out',
  /** RSTs from VIP:port that this host sent. */
  rstOut: 'vip_rst_out',
  /** Packets to VIP:port dropped while their flow was frozen (mark 0xff). */
  frozen: 'frozen_drop',
  /** Packets to VIP:port this host forwarded (steered to a real server). */
  steered: 'steered',
} as const

export interface TableSpec { readonly vip: string; readonly port: number }

/**
 * The table's `nft -f` text. Pure: the same spec gives the same text (dry-run output, unit tests).
 *
 * A TCP segment carries payload when ip length > 4 * (ip hdrlength + tcp doff). nft cannot do that
 * arithmetic in a match, so the payload counter has one rule per tcp doff (5..15), with the IP header at
 * its usual 20 bytes; a packet with IP options (hdrlength != 5) from VIP:port is counted as payload.
 */
export function dispatcherTable ({ vip, port }: TableSpec): string {
  const from = `ip saddr ${vip} tcp sport ${port}`
  const to = `ip daddr ${vip} tcp dport ${port}`
  const payload = [`${from} ip hdrlength != 5 counter name "${NFT_COUNTERS.payloadOut}"`]
  for (let doff = 5; doff <= 15; doff++) {
    payload.push(`${from} ip hdrlength 5 tcp doff ${doff} ip length > ${20 + doff * 4} counter name "${NFT_COUNTERS.payloadOut}"`)
  }
  return `table ip ${NFT_TABLE} {
  map ${NFT_FLOWS_MAP} { type ipv4_addr . inet_service : mark; flags timeout; size 65536; }
  counter ${NFT_COUNTERS.payloadOut} { }
  counter ${NFT_COUNTERS.rstOut} { }
  counter ${NFT_COUNTERS.frozen} { }
  counter ${NFT_COUNTERS.steered} { }
  chain raw_prerouting {
    type filter hook prerouting priority raw;
    ${to} notrack
  }
  chain raw_output {
    type filter hook output priority raw;
    ${from} notrack
  }
  chain steer {
    type filter hook prerouting priority mangle;
    ${to} tcp flags & (syn|ack) != syn meta mark set ip saddr . tcp sport map @${NFT_FLOWS_MAP}
    meta mark ${hex(FROZEN_MARK)} counter name "${NFT_COUNTERS.frozen}" drop
  }
  chain forwarded {
    type filter hook forward priority filter;
    ${to} counter name "${NFT_COUNTERS.steered}"
  }
  chain sent {
    type filter hook output priority filter;
    ${from} tcp flags rst counter name "${NFT_COUNTERS.rstOut}"
${payload.map((r) => `    ${r}`).join('\n')}
  }
}
`
}

const hex = (n: number): string => `0x${n.toString(16)}`

// The real server's table (`baton host realserver`). The dispatcher may steer a migrated flow here before
// this host's agent has restored its socket; a packet of the flow that arrives first would find no socket
// (or only a listener) and the kernel would answer it with RST, killing the client's connection (pitfall
// 2). So such early packets are dropped: the client retransmits them once the socket is there. The agent
// marks a restored socket ready by setting IP_TRANSPARENT on it just before it leaves repair mode (a
// time-wait socket keeps the flag), and nft's `socket transparent` lets exactly those through.

/** `table ip baton_realserver`: one per real server's host. */
export const RS_NFT_TABLE = 'baton_realserver'

/** Named counters in the real server's table (`nft -j list counter ip baton_realserver NAME`). */
export const RS_NFT_COUNTERS = {
  /** Packets to the VIP dropped because no restored (IP_TRANSPARENT) socket held their flow yet. */
  earlyDrop: 'early_drop',
} as const

export interface RealserverTableSpec { readonly vip: string }

/**
 * The real server's table, `nft -f` text. Pure. Only non-SYN packets to the VIP from outside are judged:
 * - `socket transparent 1`: the packet's socket is a restored one the agent marked ready; let it through.
 * - anything else (no socket at all, where the `socket` expression does not match; a listener or a
 *   half-open request socket, which is not transparent) is counted and dropped instead of getting RST.
 * SYNs pass (a new connection is not a migrated flow's early packet), and so does loopback (this host
 * talking to its own VIP). The VIP on a real server is for migrated connections only: ARP for it is
 * suppressed, so nothing else reaches it from outside.
 */
export function realserverTable ({ vip }: RealserverTableSpec): string {
  const early = `iif != "lo" ip daddr ${vip} tcp flags & syn == 0`
  return `table ip ${RS_NFT_TABLE} {
  counter ${RS_NFT_COUNTERS.earlyDrop} { }
  chain early {
    type filter hook prerouting priority mangle; policy accept;
    ${early} socket transparent 1 accept
    ${early} counter name "${RS_NFT_COUNTERS.earlyDrop}" drop
  }
}
`
}
