/**
 * conntrackd on the firewall pair: both members keep each other's connection
 * tracking table, so the member that takes over knows every connection the
 * other one was forwarding (and its NAT), and established connections
 * survive a takeover.
 *
 * The design follows conntrack-tools' own active-backup example
 * (`/usr/share/doc/conntrackd/examples/sync/ftfw/conntrackd.conf`,
 * `primary-backup.sh`, conntrackd.conf(5)):
 * - FTFW mode (reliable: sequence numbers, acknowledgements, resends) over
 *   unicast UDP on the pair's heartbeat link, the dedicated link the pattern
 *   asks for; nftables admits it only from the peer's heartbeat address
 *   (`<hb>-conntrack-sync`, port `CONNTRACK_SYNC_PORT`).
 * - The external cache (the peer's entries) stays in userspace until this
 *   member takes over; the failover script then commits it to the kernel
 *   (`conntrackStateLines`). Every member must refuse to pick up connections
 *   in mid-stream (`nf_conntrack_tcp_loose = 0`, rendered by the sysctl
 *   renderer): otherwise a packet arriving before the commit creates a fresh
 *   entry with fresh NAT that clashes with the committed one.
 * - Connections to or from the firewall itself (its own addresses, its VIPs)
 *   are not synchronised: only forwarded traffic moves with the role.
 *
 * conntrackd has no configuration test mode; the twin runs the daemon from
 * this file, and a test starts it in a namespace.
 */
import type { SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { failoverMove } from "./failover-move";
import { checkHost, interfaceName, pairOf } from "./interfaces";
import { CONNTRACK_SYNC_PORT } from "./policy";
import type { RenderOptions } from "./types";

export const CONNTRACKD_CONF = "/etc/conntrackd/conntrackd.conf";
/** Per-host runtime paths (the daemon's lock and control socket; the package's defaults live under /var). */
export const CONNTRACKD_LOCK = "/run/conntrackd.lock";
export const CONNTRACKD_SOCKET = "/run/conntrackd.ctl";

/** True when the host synchronises connection tracking: a member of a firewall pair that is not dissolved. */
export function runsConntrackd(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  return pair !== undefined && pair.role === "firewall" && !pair.dissolved;
}

/**
 * Renders `/etc/conntrackd/conntrackd.conf` for a member of the firewall pair.
 * Throws `RenderInputError` naming site, host, field and rule when the host is
 * not such a member.
 */
export function renderConntrackdConfig(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  if (host && !runsConntrackd(model, hostName))
    problems.add("hostName", `${hostName} is not a member of a firewall pair with a peer: it synchronises no connection tracking`);
  problems.throwIfAny();
  const pair = pairOf(model, hostName)!;
  const peer = pair.members.find((m) => m !== hostName)!;
  const move = failoverMove(model, pair.role);
  const nextHop = move.kind === "next-hop" ? [move.address] : [];
  const own = [
    ...new Set([
      "127.0.0.1",
      ...(host!.publicAddress ? [host!.publicAddress] : []),
      ...nextHop,
      ...host!.interfaces.map((i) => i.address),
      ...pair.vips.map((v) => v.address),
    ]),
  ];
  return [
    `# standort: conntrackd of ${hostName} (firewall pair of ${model.name}, peer ${peer}). Rendered from ${model.file}; do not edit.`,
    "Sync {",
    "\t# Reliable transfer (acknowledged, resent); the peer's entries wait in the external cache until a takeover.",
    "\tMode FTFW {",
    "\t\tDisableExternalCache Off",
    "\t\t# A member that (re)starts asks the peer for its whole table at once: it may become master before any",
    "\t\t# backup transition asks for it (a returning member with the higher priority).",
    "\t\tStartupResync yes",
    "\t\t# A member that stepped down drops its stale entries this long after `conntrackd -t` (seconds).",
    "\t\tPurgeTimeout 5",
    "\t}",
    "\t# Unicast on the heartbeat link, the pair's dedicated link.",
    "\tUDP {",
    `\t\tIPv4_address ${pair.heartbeat[hostName]}`,
    `\t\tIPv4_Destination_Address ${pair.heartbeat[peer]}`,
    `\t\tPort ${CONNTRACK_SYNC_PORT}`,
    `\t\tInterface ${interfaceName(pair.heartbeatSegment)}`,
    "\t\tSndSocketBuffer 1249280",
    "\t\tRcvSocketBuffer 1249280",
    "\t\tChecksum on",
    "\t}",
    "}",
    "General {",
    "\t# Debian's conntrackd.service is Type=notify: the daemon tells systemd when it is ready.",
    "\tSystemd on",
    "\tHashSize 32768",
    "\tHashLimit 131072",
    "\tLogFile off",
    "\tSyslog on",
    `\tLockFile ${CONNTRACKD_LOCK}`,
    "\tUNIX {",
    `\t\tPath ${CONNTRACKD_SOCKET}`,
    "\t}",
    "\tNetlinkBufferSize 2097152",
    "\tNetlinkBufferSizeMaxGrowth 8388608",
    "\tFilter From Userspace {",
    "\t\tProtocol Accept {",
    "\t\t\tTCP",
    "\t\t\tUDP",
    "\t\t\tICMP",
    "\t\t}",
    "\t\t# The firewall's own traffic stays with it: its addresses, the next hop it holds, its pair's VIPs.",
    "\t\tAddress Ignore {",
    ...own.map((a) => `\t\t\tIPv4_address ${a}`),
    "\t\t}",
    "\t}",
    "}",
    "",
  ].join("\n");
}

/**
 * What the failover script of a firewall member does with conntrackd on each
 * state (conntrack-tools' `primary-backup.sh`): on `master`, commit the
 * peer's entries to the kernel, then start over from the kernel's table and
 * send it to the peer; on `backup`, shorten the timers of entries that are
 * now the peer's and ask the peer for its table; on `fault`/`stop`, shorten
 * the timers. A failure is logged, never fatal: the takeover goes on without
 * the old connections.
 */
export function conntrackStateLines(state: "master" | "backup" | "fault"): string[] {
  const run = (flag: string, what: string) =>
    `conntrackd -C ${CONNTRACKD_CONF} ${flag} >/dev/null 2>&1 || log "conntrackd ${flag} (${what}) failed"`;
  switch (state) {
    case "master":
      return [
        run("-c", "commit the peer's connections"),
        run("-f", "flush the caches"),
        run("-R", "resync with the kernel"),
        run("-B", "bulk send to the peer"),
      ];
    case "backup":
      return [run("-t", "purge stale entries"), run("-n", "resync from the peer")];
    case "fault":
      return [run("-t", "purge stale entries")];
  }
}
