/**
 * Planned moves of the proxy and storage pairs lose no connection: the member
 * that gives the VIPs up keeps serving the connections it has, and the one
 * that takes them passes those connections' packets back to it.
 *
 * How (`/etc/standort/drain.nft`, loaded by the failover script):
 * - Each member remembers the TCP connections that start at it (a SYN to a
 *   VIP: client address, client port, VIP port) in the set `mine`, refreshed
 *   by every packet that carries data, and forgets one 10 s after the client's
 *   FIN or RST (nftables dynamic set, netdev ingress of each VIP's link, before
 *   the IP stack); a member that becomes master also forgets every connection
 *   it no longer has a socket for.
 * - A packet to a VIP that belongs to no connection of this member is sent on,
 *   unchanged, to the peer's address on the same link (`fwd`, so the peer's
 *   sockets see their own VIP), but only while the VIP is in `draining`.
 * - A member that stands by keeps its VIPs on `lo` (it answers no ARP for them:
 *   `arp_ignore = 1`), so the packets passed back reach its open sockets, and
 *   puts its VIPs into `draining`, ready for the next move. A member that
 *   becomes master keeps forwarding for a VIP only while the peer answers ARP
 *   on that VIP's link (checked at once, 0.3 s at most), and stops once it has
 *   fenced the peer or found it down: after a crash the peer's connections get
 *   a reset from here, as before.
 *
 * Not on Hetzner Cloud: its network delivers a packet by its destination
 * address only, so a packet for the VIP cannot be handed to the member that
 * gave the VIP up.
 */
import type { SiteModel } from "../model/model";
import { adapterOf } from "../providers/registry";
import { ProblemCollector } from "./errors";
import { failoverMove } from "./failover-move";
import { addressIn, checkHost, findHost, interfaceName, nicNames, pairOf } from "./interfaces";
import type { RenderOptions } from "./types";

export const DRAIN_NFT = "/etc/standort/drain.nft";
export const DRAIN_TABLE = "standort_drain";
/** How long a member remembers a connection without a packet (seconds). */
export const DRAIN_IDLE_SECONDS = 3600;
/** How long a member remembers a connection after the client's FIN or RST (seconds). */
export const DRAIN_CLOSING_SECONDS = 10;
/** The longest IPv4 packet without TCP payload: 60 bytes of IP header, 60 of TCP header (RFC 791, RFC 9293). */
const HEADER_ONLY_MAX_BYTES = 120;
/** How long a new master waits for the peer's ARP answer on a VIP's link before it stops forwarding there (s). */
export const DRAIN_PEER_CHECK_SECONDS = 0.3;

/** True when the host drains on planned moves: a member of a proxy or storage pair with a peer, where VIPs move by VRRP (segments are VLANs). */
export function drainsConnections(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  return pair !== undefined && !pair.dissolved && pair.role !== "firewall" && adapterOf(model).segments.kind === "vlans";
}

/**
 * Per link that carries the pair's addresses: the link, those addresses and
 * the peer's address there. The VIPs' segment links, and the uplink where the
 * pair moves a declared provider failover IP (customers reach it directly).
 */
export function drainLinks(
  model: SiteModel,
  hostName: string,
  options: RenderOptions = {},
): Array<{ link: string; vips: string[]; peer: string | undefined }> {
  const pair = pairOf(model, hostName)!;
  const peer = findHost(
    model,
    pair.members.find((m) => m !== hostName)!,
  )!;
  const segments = [...new Set(pair.vips.map((v) => v.segment))];
  const links = segments.map((segment) => ({
    link: interfaceName(segment),
    vips: pair.vips.filter((v) => v.segment === segment).map((v) => v.address),
    peer: addressIn(peer, segment),
  }));
  const move = failoverMove(model, pair.role);
  if (move.kind === "failover-ip" && move.address)
    links.push({ link: nicNames(options).uplink, vips: [move.address], peer: peer.publicAddress });
  return links;
}

/**
 * Renders `/etc/standort/drain.nft`. Loading it again keeps the sets (only the
 * chains are flushed and refilled), so a delivery never forgets the
 * connections this member serves. Throws `RenderInputError` when the host
 * does not drain (see `drainsConnections`) or its peer is not in a VIP's segment.
 */
export function renderDrainRuleset(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  if (host && !drainsConnections(model, hostName))
    problems.add(
      "hostName",
      `${hostName} is not a member of a proxy or storage pair with a peer on a pre-provisioned site: nothing to drain`,
    );
  problems.throwIfAny();
  const pair = pairOf(model, hostName)!;
  const links = drainLinks(model, hostName, options);
  for (const l of links)
    if (!l.peer) problems.add(`pairs.${pair.role}`, `the peer of ${hostName} has no address on ${l.link}, where ${l.vips.join(", ")} live`);
  problems.throwIfAny();
  const set = (items: string[]) => (items.length === 1 ? items[0] : `{ ${items.join(", ")} }`);
  const key = "ip saddr . tcp sport . tcp dport";
  return [
    `# standort: the drain of ${hostName} (${pair.role} pair of ${model.name}): planned moves lose no connection.`,
    `# Rendered from ${model.file}; do not edit. Loaded by the failover script; see lib/render/drain.ts.`,
    `table netdev ${DRAIN_TABLE} {`,
    "\t# Connections that started here (client address, client port, VIP port).",
    "\tset mine {",
    "\t\ttype ipv4_addr . inet_service . inet_service",
    "\t\tflags dynamic, timeout",
    `\t\ttimeout ${DRAIN_IDLE_SECONDS}s`,
    "\t\tsize 65536",
    "\t}",
    "\t# VIPs whose other packets go to the peer (filled and emptied by the failover script).",
    "\tset draining {",
    "\t\ttype ipv4_addr",
    "\t}",
    ...links.flatMap((l) => [
      `\tchain ${l.link} {`,
      `\t\ttype filter hook ingress device "${l.link}" priority filter; policy accept;`,
      "\t}",
    ]),
    "}",
    ...links.map((l) => `flush chain netdev ${DRAIN_TABLE} ${l.link}`),
    `table netdev ${DRAIN_TABLE} {`,
    ...links.flatMap((l) => [
      `\tchain ${l.link} {`,
      "\t\t# A connection starts here.",
      `\t\tip daddr ${set(l.vips)} tcp flags & (syn | ack) == syn update @mine { ${key} } accept`,
      "\t\t# It ends (the client's FIN or RST): forgotten soon, so a client port used again reaches whoever serves then.",
      `\t\tip daddr ${set(l.vips)} tcp flags & (fin | rst) != 0 ${key} @mine update @mine { ${key} timeout ${DRAIN_CLOSING_SECONDS}s } accept`,
      `\t\t# Data keeps it remembered (longer than any header-only segment: ${HEADER_ONLY_MAX_BYTES} bytes); the last ACKs do not.`,
      `\t\tip daddr ${set(l.vips)} ip length > ${HEADER_ONLY_MAX_BYTES} ${key} @mine update @mine { ${key} } accept`,
      `\t\tip daddr ${set(l.vips)} ${key} @mine accept`,
      "\t\t# Anything else for a VIP belongs to the peer while it drains.",
      `\t\tip daddr @draining meta l4proto tcp fwd ip to ${l.peer} device "${l.link}"`,
      "\t}",
    ]),
    "}",
    "",
  ].join("\n");
}

/** The failover script's drain functions (for a host that drains). */
export function drainFunctions(model: SiteModel, hostName: string, options: RenderOptions = {}): string[] {
  const links = drainLinks(model, hostName, options);
  const vips = links.flatMap((l) => l.vips);
  const elements = `"{ ${vips.join(", ")} }"`;
  return [
    `# Planned moves lose no connection (${DRAIN_NFT}, lib/render/drain.ts).`,
    `drain_load() { nft list table netdev ${DRAIN_TABLE} >/dev/null 2>&1 || nft -f ${DRAIN_NFT}; }`,
    "# Standing by: the VIPs stay on lo for the connections still open here, and the next master may send them back.",
    "drain_standby() {",
    ...vips.map((v) => `\tip addr replace ${v}/32 dev lo`),
    `\tdrain_load && nft add element netdev ${DRAIN_TABLE} draining ${elements} || log "the drain could not be set up"`,
    "}",
    "# Connections that ended here are forgotten when this member becomes master: a client may reuse their",
    "# address and port for a connection the peer serves, which must then reach the peer, not be reset here.",
    "drain_prune() {",
    '\tlive=$(mktemp "$RUN_DIR/live.XXXXXX") || return 0',
    '\tss -Htn 2>/dev/null | awk \'{ n = split($4, l, ":"); m = split($5, p, ":"); print p[1] " . " p[m] " . " l[n] }\' | sort -u > "$live"',
    `\tstale=$(nft -j list set netdev ${DRAIN_TABLE} mine 2>/dev/null | jq -r '.nftables[].set.elem[]?.elem.val.concat | "\\(.[0]) . \\(.[1]) . \\(.[2])"' | sort -u | comm -23 - "$live")`,
    '\trm -f "$live"',
    '\t[ -n "$stale" ] || return 0',
    "\t# One transaction; should an element have expired meanwhile, one by one.",
    `\tprintf '%s\\n' "$stale" | sed 's/.*/delete element netdev ${DRAIN_TABLE} mine { & }/' | nft -f - 2>/dev/null ||`,
    `\t\tprintf '%s\\n' "$stale" | while read -r e; do nft delete element netdev ${DRAIN_TABLE} mine "{ $e }" 2>/dev/null; done`,
    "}",
    "# Becoming master: keep passing the peer's connections back only over links where it still answers.",
    "drain_check() {",
    "\tdrain_load || return 0",
    "\tdrain_prune &",
    ...links.flatMap((l) =>
      l.vips.map(
        (v) =>
          `\t(timeout ${DRAIN_PEER_CHECK_SECONDS} arping -q -f -c 1 -I ${l.link} ${l.peer} || nft delete element netdev ${DRAIN_TABLE} draining "{ ${v} }" 2>/dev/null) &`,
      ),
    ),
    "\twait",
    "}",
    "# The peer is fenced or down: its connections are gone, reset them here.",
    `drain_stop() { nft flush set netdev ${DRAIN_TABLE} draining 2>/dev/null; }`,
  ];
}
