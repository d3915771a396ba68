/**
 * keepalived for every failover pair (firewall, proxy, storage), and the
 * failover script it runs on state changes: fence the peer, then move the
 * provider failover IP (or the static next hop of an own prefix).
 *
 * Why no `nopreempt`: it only works with `state BACKUP` on both members, and
 * the site file names the active member as a reviewed decision. With
 * `state MASTER`/`BACKUP` and priorities 150/100 the named member holds the
 * role whenever it is healthy, so the model and the network agree.
 *
 * Why no `script_user`: keepalived 2.2.7 exits 143 in `-t` mode with it. Each
 * script names its user (`root`) instead, which satisfies
 * `enable_script_security` without a `keepalived_script` account.
 */
import { METRICS, TEXTFILE_DIR } from "../monitoring/plan";
import { z } from "zod";
import type { PairModel, SiteModel } from "../model/model";
import type { PairedRole } from "../model/schema";
import { ProblemCollector } from "./errors";
import { ipv4Address } from "./inputs";
import { addressIn, checkHost, findHost, findSegment, inPrefix, interfaceName, nicNames, pairOf } from "./interfaces";
import { conntrackStateLines, runsConntrackd } from "./conntrackd";
import { FailoverMove, failoverMove } from "./failover-move";
import { drainFunctions, drainsConnections } from "./drain";
import { FENCED_LINE, FENCE_CLIENT_KEY, FENCE_KNOWN_HOSTS } from "./fence";
import { NAT_SOURCE_MAP } from "./nftables";
import { FENCE_SSH_PORT } from "./policy";
import { DATA_ROOT, DRBD_DEVICE, DRBD_RESOURCE, NFS_SERVER_UNIT } from "./storage";
import { linkPrefixLength } from "./routing";
import { adapterOf } from "../providers/registry";
import { shQuote } from "../providers/sh";
import type { RenderOptions, RenderSecrets } from "./types";

export { failoverIpName, failoverMove } from "./failover-move";
export type { FailoverMove } from "./failover-move";

export const KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf";
export const FAILOVER_SCRIPT = "/etc/keepalived/standort-failover.sh";
export const PROVIDER_ENV = "/etc/standort/provider.env";

/**
 * Seconds the passive member waits after becoming master before fencing: a
 * rebooting active member gets to preempt first. Short, because the public
 * address waits for the fence; the VIPs (pre-provisioned sites) do not.
 */
export const FENCE_GRACE_SECONDS = 2;

/**
 * VRRP advert interval (seconds; VRRPv3 takes centiseconds, RFC 5798 §5.2.7).
 * The passive member (priority 100) declares the active one dead after
 * 3 × 0.2 + (256 − 100) / 256 × 0.2 ≈ 0.72 s (RFC 5798 §6.1 Master_Down_Interval).
 */
export const VRRP_ADVERT_SECONDS = 0.2;

/**
 * Seconds a backup of `priority` waits without adverts before it becomes
 * master (RFC 5798 §6.1: 3 × Advertisement_Interval + Skew_Time, Skew_Time =
 * (256 − priority) × Advertisement_Interval / 256), rounded to milliseconds.
 */
export function masterDownSeconds(priority: number): number {
  return Math.round((3 * VRRP_ADVERT_SECONDS + ((256 - priority) * VRRP_ADVERT_SECONDS) / 256) * 1000) / 1000;
}

/**
 * How long a pair waits before its named active member takes the addresses
 * back (keepalived `preempt_delay`, seconds; 0: at once). Where the provider
 * limits how often the public address moves, a member that returns (after a
 * crash or a healed link) within that interval would take the VIPs while the
 * provider still routes the address to its peer, and refuse to move it: the
 * public path would be down until the interval passed. So such a pair fails
 * back only after the interval and a margin.
 */
export function failbackDelaySeconds(model: SiteModel, role: PairedRole): number {
  if (failoverMove(model, role).kind === "none") return 0;
  const interval = adapterOf(model).failover.moveIntervalSeconds;
  return interval === undefined ? 0 : interval + 30;
}

/** Seconds between tries of a failover address move the provider refused, and how many tries (40 min in all). */
export const MOVE_RETRY_SECONDS = 10;
export const MOVE_TRIES = 240;

/** Largest offset (seconds) from the site's time sources at which a member keeps its full priority. */
export const CLOCK_BOUND_SECONDS = 0.5;
/**
 * How often, and how far apart (seconds), the member that takes the storage
 * role tries `drbdadm primary`: the old primary may still be stepping down (a
 * handover, a return), and DRBD refuses a second primary while they are
 * connected. 40 × 0.25 s: 10 s, well inside keepalived's view of a takeover.
 */
export const DRBD_PROMOTE_TRIES = 40;
export const DRBD_PROMOTE_RETRY_SECONDS = 0.25;

/** Priority a member loses while its clock is out of step: 150 − 60 < 100, so the peer in step wins. */
export const CLOCK_PENALTY = -60;
/** Seconds a member that could not fence a peer that still answers stays in FAULT before it tries again. */
export const FENCE_STEP_BACK_SECONDS = 30;
/**
 * Priority a member gives up while an operator hands its role over
 * (`standort-failover.sh handover`): below its peer's, whichever member the
 * site file names active (150/100), and below a peer with one failed check.
 */
export const HANDOVER_PENALTY = -100;
/** Priority a firewall of a BGP site gives up while none of its BGP sessions is established. */
export const BGP_PENALTY = -60;
/** How long `handover` waits for the peer to take over beyond the pair's failback delay (seconds). */
export const HANDOVER_WAIT_SECONDS = 30;

const providerEnvSchema = z.record(
  z.string().regex(/^[A-Z][A-Z0-9_]*$/, "environment names are upper-case letters, digits and _"),
  z.string().regex(/^[^'\n\r]*$/, "must not contain a single quote or a line break"),
);

/** The provider.env variable that holds the API token (the adapter's: `HCLOUD_TOKEN` on Hetzner Cloud, else `PROVIDER_API_TOKEN`). */
export function tokenVariable(model: SiteModel): string {
  return adapterOf(model).failover.tokenVariable;
}

/** The service each pair's VRRP instance tracks: lose it and the member steps down. */
function trackedServices(model: SiteModel, role: PairedRole): Array<{ name: string; script: string }> {
  switch (role) {
    case "proxy":
      return [{ name: "haproxy_running", script: "/usr/bin/systemctl is-active --quiet haproxy" }];
    case "storage":
      // The NFS server runs on the active member only: the check fails where this member serves and ganesha is
      // down, or where taking the role failed (promote, mount, start), never on the member that stands by.
      return [{ name: "nfs_running", script: `/bin/sh ${FAILOVER_SCRIPT} nfs-check` }];
    case "firewall":
      return [
        { name: "ruleset_loaded", script: "/usr/sbin/nft list table inet standort" },
        ...(model.public.mode === "own-prefix" && model.public.routing.kind === "bgp"
          ? [{ name: "bird_running", script: "/usr/bin/systemctl is-active --quiet bird" }]
          : []),
      ];
  }
}

/** Priority a member loses for each link it serves on that reaches nothing: 150 − 60 < 100, so the peer serves. */
export const LINK_PENALTY = -60;
/** Hosts a link check asks for (ARP): a few are enough to tell a dead link from a dead neighbour. */
const LINK_ANCHORS = 3;

/**
 * The links a pair member serves on, and whom it asks (ARP, RFC 826) to know
 * that a link still carries frames: on pre-provisioned sites each segment
 * that holds one of the pair's VIPs, asked for its other hosts and the other
 * pairs' VIPs there; and the uplink where the pair holds a public address
 * (the firewall pair always: it is the edge), asked for its default gateway.
 * A cut that keeps the carrier shows only this way. On Hetzner Cloud the
 * private network routes rather than bridges: its one NIC is covered by the
 * fence, not by ARP.
 */
export function trackedLinks(model: SiteModel, pair: PairModel, options: RenderOptions = {}): Array<{ link: string; anchors: string[] }> {
  const links: Array<{ link: string; anchors: string[] }> = [];
  if (adapterOf(model).segments.kind === "vlans") {
    for (const segment of [...new Set(pair.vips.map((v) => v.segment))]) {
      const others = model.hosts
        .filter((h) => !pair.members.includes(h.name))
        .map((h) => addressIn(h, segment))
        .filter((a): a is string => a !== undefined);
      const vips = model.pairs.filter((q) => q !== pair).flatMap((q) => q.vips.filter((v) => v.segment === segment).map((v) => v.address));
      const anchors = [...vips, ...others].slice(0, LINK_ANCHORS);
      if (anchors.length > 0) links.push({ link: interfaceName(segment), anchors });
    }
  }
  if (pair.role === "firewall" || failoverMove(model, pair.role).kind !== "none")
    links.push({ link: nicNames(options).uplink, anchors: [] });
  return links;
}

/** The instance name keepalived logs: the pair name with underscores. */
export function vrrpInstanceName(pair: PairModel): string {
  return pair.name.replace(/-/g, "_");
}

/** Checks the pair and secrets a host's keepalived needs; returns the pair when the host renders keepalived at all. */
function checkPair(
  model: SiteModel,
  hostName: string,
  secrets: RenderSecrets,
  problems: ProblemCollector,
  options: RenderOptions,
): PairModel | undefined {
  const host = checkHost(model, hostName, problems, options);
  if (!host) return undefined;
  const pairIndex = model.pairs.findIndex((p) => p.members.includes(hostName));
  if (pairIndex < 0) {
    problems.add("hostName", `${hostName} is a ${host.role} host, which belongs to no failover pair`);
    return undefined;
  }
  const pair = model.pairs[pairIndex];
  const at = `pairs[${pairIndex}]`;
  if (pair.dissolved && pair.active !== hostName) {
    problems.add("hostName", `${hostName} was released from the dissolved ${pair.role} pair: only ${pair.active} runs keepalived`);
    return undefined;
  }
  const hb = findSegment(model, pair.heartbeatSegment);
  if (!hb) {
    problems.add(`${at}.heartbeatSegment`, `${pair.heartbeatSegment} is not a segment of ${model.name}`);
    return undefined;
  }
  const members = pair.dissolved ? [pair.active] : [...pair.members];
  const seen = new Map<string, string>();
  for (const member of members) {
    const address = pair.heartbeat[member];
    const field = `${at}.heartbeat.${member}`;
    if (address === undefined || address === "") {
      problems.add(field, `is missing: ${member} needs an address in ${hb.name} (${hb.cidr})`);
      continue;
    }
    const memberHost = findHost(model, member);
    if (!ipv4Address.safeParse(address).success) problems.add(field, `${address} is not an IPv4 address`);
    else if (!inPrefix(address, hb.cidr)) problems.add(field, `${address} is outside segment ${hb.name} (${hb.cidr})`);
    else if (!memberHost) problems.add(`${at}.members`, `${member} is not a host of ${model.name}`);
    else if (addressIn(memberHost, hb.name) !== address) {
      problems.add(field, `${address} is not ${member}'s address in ${hb.name} (${addressIn(memberHost, hb.name) ?? "none"})`);
    }
    const other = seen.get(address);
    if (other) problems.add(field, `${address} is also ${other}'s heartbeat address`);
    seen.set(address, member);
  }
  if (!Number.isInteger(pair.vrid) || pair.vrid < 1 || pair.vrid > 255)
    problems.add(`${at}.vrid`, `${pair.vrid} must be between 1 and 255`);
  for (const member of members) {
    const priority = pair.priorities[member];
    if (priority === undefined || !Number.isInteger(priority) || priority < 1 || priority > 254) {
      problems.add(`${at}.priorities.${member}`, `${String(priority)} must be between 1 and 254 (255 is reserved for an address owner)`);
    }
  }
  if (!pair.dissolved && (pair.priorities[pair.active] ?? 0) <= (pair.priorities[pair.passive] ?? 0)) {
    problems.add(`${at}.priorities`, `the active member ${pair.active} must have a higher priority than ${pair.passive}`);
  }
  if (pair.vips.length === 0) problems.add(`${at}.vips`, "the pair has no VIP to hold");
  pair.vips.forEach((vip, i) => {
    const segment = findSegment(model, vip.segment);
    if (!segment) problems.add(`${at}.vips[${i}].segment`, `${vip.segment} is not a segment of ${model.name}`);
    else if (!inPrefix(vip.address, segment.cidr))
      problems.add(`${at}.vips[${i}].address`, `${vip.address} is outside segment ${segment.name} (${segment.cidr})`);
    else if (!host.interfaces.some((x) => x.segment === vip.segment)) {
      problems.add(`${at}.vips[${i}].segment`, `${hostName} has no interface in ${vip.segment} to hold ${vip.address}`);
    }
    const holder = model.hosts.find((h) => h.interfaces.some((x) => x.address === vip.address));
    if (holder) problems.add(`${at}.vips[${i}].address`, `${vip.address} is ${holder.name}'s own address`);
  });
  if (!pair.dissolved) {
    for (const member of pair.members) {
      if (!pair.mgmt[member])
        problems.add(`${at}.members`, `${member} has no mgmt address: the pair's second VRRP path and its fence use mgmt`);
    }
  }
  if (options.providerEnv) problems.parse(providerEnvSchema, options.providerEnv, "options.providerEnv");
  const move = failoverMove(model, pair.role);
  const failover = adapterOf(model).failover;
  const apiFencing = failover.apiFence && !pair.dissolved;
  if ((apiFencing || (move.kind !== "none" && failover.movesNeedToken(model, move))) && !secrets.providerApiToken) {
    problems.add(
      "secrets.providerApiToken",
      `is required on ${model.name}: the failover script fences and moves addresses through the provider API`,
    );
  }
  return pair;
}

/** A keepalived check that runs the failover script in `mode`: its name, why it exists, its timing and weight. */
function failoverCheck(
  name: string,
  mode: string,
  why: ReadonlyArray<string>,
  timing: { interval: number; fall: number; rise: number; weight?: number },
): { name: string; script: string; lines: string[] } {
  return {
    name,
    script: `/bin/sh ${FAILOVER_SCRIPT} ${mode}`,
    lines: [
      ...why.map((w) => `\t# ${w}`),
      `\tinterval ${timing.interval}`,
      `\tfall ${timing.fall}`,
      `\trise ${timing.rise}`,
      ...(timing.weight !== undefined ? [`\tweight ${timing.weight}`] : []),
    ],
  };
}

/**
 * Renders `/etc/keepalived/keepalived.conf` for a member of a failover pair.
 *
 * VRRPv3 (RFC 5798) with `VRRP_ADVERT_SECONDS` adverts, unicast, on two paths:
 * the pair's heartbeat segment and mgmt, two instances in one sync group. A
 * member takes over only when both instances miss the peer's adverts
 * (keepalived moves a sync group to MASTER only when every instance may), so
 * losing one link never gives two holders. VRRPv3 has no authentication: the
 * packet filter admits VRRP only from the peer's two addresses (rules
 * `<hb>-vrrp` and `mgmt-vrrp-<role>`). Tracked services move the pair
 * (FAULT); a clock out of step costs priority; a member whose fence failed
 * while the peer still answers steps back (FAULT) for `FENCE_STEP_BACK_SECONDS`.
 * On pre-provisioned sites keepalived holds the VIPs itself (gratuitous ARP);
 * on Hetzner Cloud the failover script adds them once their alias IPs are
 * moved, after the fence, because the network delivers them to one server only.
 * A dissolved pair renders only its active member (no peer, one instance).
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderKeepalivedConfig(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const pair = checkPair(model, hostName, secrets, problems, options);
  problems.throwIfAny();
  const p = pair!;
  const active = p.active === hostName;
  const peer = p.dissolved ? undefined : p.members.find((m) => m !== hostName)!;
  const tracked = trackedServices(model, p.role);
  const name = vrrpInstanceName(p);
  const vipsByKeepalived = adapterOf(model).segments.kind === "vlans";
  const announcesPrefix = p.role === "firewall" && model.public.mode === "own-prefix" && model.public.routing.kind === "bgp";
  const lines = [
    `# standort: keepalived of ${hostName} (${active ? "active" : "passive"} member of the ${p.role} pair of ${model.name}${p.dissolved ? ", dissolved" : ""}).`,
    `# Rendered from ${model.file}; do not edit.`,
    "global_defs {",
    `\trouter_id ${hostName}`,
    "\t# Scripts must be root-owned and not writable by others; each one names its user.",
    "\tenable_script_security",
    "\t# VRRPv3: adverts below a second. It has no authentication; nftables admits only the peer.",
    "\tvrrp_version 3",
    "}",
  ];
  const scripts = [
    ...tracked.map((t) => ({ ...t, lines: ["\tinterval 2", "\tfall 2", "\trise 2"] })),
    ...(peer
      ? trackedLinks(model, p, options).map((l) => ({
          name: `link_${l.link.replace(/-/g, "_")}`,
          script: `/bin/sh ${FAILOVER_SCRIPT} link ${l.link}${l.anchors.map((a) => ` ${a}`).join("")}`,
          lines: [
            `\t# ${l.link} carries no frames (${l.anchors.length > 0 ? "none of these answers ARP" : "its default gateway does not answer ARP"}): ${-LINK_PENALTY} priority less.`,
            "\tinterval 1",
            "\ttimeout 2",
            "\tfall 2",
            "\trise 2",
            `\tweight ${LINK_PENALTY}`,
          ],
        }))
      : []),
    ...(peer
      ? [
          // Through sh: keepalived vets /bin/sh's path, and the check also runs where the script is not installed yet.
          failoverCheck(
            "clock_in_step",
            "clock",
            [
              `Off by more than ${CLOCK_BOUND_SECONDS} s from the site's time sources: it loses ${-CLOCK_PENALTY} priority, so a member`,
              "in step wins (both members within the bound differ by at most twice it).",
            ],
            { interval: 5, fall: 2, rise: 2, weight: CLOCK_PENALTY },
          ),
          ...(announcesPrefix
            ? [
                failoverCheck(
                  "bgp_established",
                  "bgp",
                  [
                    `No BGP session up: ${-BGP_PENALTY} priority less, so a member whose announcement nobody hears does not take`,
                    "the role (a returning firewall waits for its sessions before it preempts).",
                  ],
                  { interval: 2, fall: 1, rise: 1, weight: BGP_PENALTY },
                ),
              ]
            : []),
          failoverCheck(
            "not_handed_over",
            "handover-check",
            [`An operator hands this member's role to the peer (standort-failover.sh handover): ${-HANDOVER_PENALTY} priority less.`],
            { interval: 1, fall: 1, rise: 1, weight: HANDOVER_PENALTY },
          ),
          failoverCheck(
            "fence_not_failed",
            "fence-check",
            ["A member that could not fence a peer that still answers steps back (FAULT), and tries again later."],
            { interval: 1, fall: 1, rise: 1 },
          ),
        ]
      : []),
  ];
  for (const t of scripts) lines.push("", `vrrp_script ${t.name} {`, `\tscript "${t.script}"`, "\tuser root", ...t.lines, "}");
  const failback = peer ? failbackDelaySeconds(model, p.role) : 0;
  const instance = (suffix: string, segment: string, src: string | undefined, dst: string | undefined, vips: boolean) => {
    const out = [
      "",
      `vrrp_instance ${name}_${suffix} {`,
      ...(failback > 0
        ? [
            `\t# The site file names the active member (priority); it takes the addresses back only ${failback} s after`,
            "\t# it returns: the provider moves the public address at most that often (keepalived needs BACKUP here).",
            "\tstate BACKUP",
            `\tpreempt_delay ${failback}`,
          ]
        : [
            "\t# The site file names the active member; it takes the addresses back whenever it is healthy.",
            `\tstate ${active ? "MASTER" : "BACKUP"}`,
          ]),
      `\tinterface ${interfaceName(segment)}`,
      `\tvirtual_router_id ${p.vrid}`,
      `\tpriority ${p.priorities[hostName]}`,
      `\tadvert_int ${VRRP_ADVERT_SECONDS}`,
    ];
    if (src && dst) out.push(`\tunicast_src_ip ${src}`, "\tunicast_peer {", `\t\t${dst}`, "\t}");
    else out.push("\t# Dissolved pair: no peer; this member holds the addresses alone.");
    if (vips && vipsByKeepalived) {
      const heldPublic = heldPublicAddresses(model, p.role);
      out.push(
        "\tvirtual_ipaddress {",
        ...p.vips.map((v) => `\t\t${v.address}/${linkPrefixLength(model, v.prefixLength)} dev ${interfaceName(v.segment)}`),
        ...(heldPublic.length > 0
          ? [
              "\t\t# The own prefix's NAT address, local on the master: partners' WireGuard tunnels end here (the prefix is routed",
              "\t\t# to this member; only a local address is delivered to its tunnel listeners).",
              ...heldPublic.map((a) => `\t\t${a}/32 dev lo`),
            ]
          : []),
        "\t}",
      );
    } else {
      out.push(
        ...(vips ? ["\t# Hetzner Cloud: the failover script adds the VIPs once their alias IPs are this server's."] : []),
        "\t# VRRPv3 needs an address per instance (RFC 5798 §5.2.5): a link-local marker on lo, routed nowhere.",
        "\tvirtual_ipaddress {",
        `\t\t${stateMarker(p, suffix)}/32 dev lo`,
        "\t}",
      );
    }
    if (vips && announcesPrefix) {
      const pub = model.public as { prefix: string };
      out.push(
        "\t# The own prefix's announcement follows the master: BIRD learns this route from the kernel and exports it",
        "\t# (no_track: a blackhole has no interface to watch).",
        "\tvirtual_routes {",
        `\t\tblackhole ${pub.prefix} no_track`,
        "\t}",
      );
    }
    if (scripts.length > 0) out.push("\ttrack_script {", ...scripts.map((t) => `\t\t${t.name}`), "\t}");
    if (!peer) out.push(...notifyLines("\t"));
    out.push("}");
    return out;
  };
  if (peer) {
    lines.push(
      "",
      "# Both paths move together: MASTER only when the peer is silent on both, FAULT when either faults.",
      `vrrp_sync_group ${name} {`,
      "\tgroup {",
      `\t\t${name}_hb`,
      `\t\t${name}_mgmt`,
      "\t}",
      "\t# Let the clock's weight lower both instances' priority instead of being ignored in a sync group.",
      "\tsync_group_tracking_weight",
      ...notifyLines("\t"),
      "}",
      ...instance("hb", p.heartbeatSegment, p.heartbeat[hostName], p.heartbeat[peer], true),
      ...instance("mgmt", "mgmt", p.mgmt[hostName], p.mgmt[peer], false),
    );
  } else {
    lines.push(...instance("hb", p.heartbeatSegment, undefined, undefined, true));
  }
  return lines.join("\n") + "\n";
}

/**
 * The link-local address (RFC 3927) that stands for an instance that holds no
 * VIP of its own: `169.254.<vrid>.1` for the heartbeat path, `.2` for mgmt.
 * Only on lo, so nothing outside the host ever sees it.
 */
export function stateMarker(pair: PairModel, path: string): string {
  return `169.254.${pair.vrid}.${path === "hb" ? 1 : 2}`;
}

function notifyLines(indent: string): string[] {
  return [
    `${indent}notify_master "${FAILOVER_SCRIPT} master" root`,
    `${indent}notify_backup "${FAILOVER_SCRIPT} backup" root`,
    `${indent}notify_fault "${FAILOVER_SCRIPT} fault" root`,
    `${indent}notify_stop "${FAILOVER_SCRIPT} stop" root`,
  ];
}

/**
 * Shell functions that fence the peer: first its fence sshd over mgmt
 * (`lib/render/fence.ts`), whose forced command answers `FENCED_LINE` before
 * the power goes; then the provider's power-off where the library drives one
 * (Hetzner Cloud), or the site's `provider.fenceCommand` where it names one.
 */
function fenceFunctions(model: SiteModel, peer: string, peerMgmt: string): string[] {
  const second = adapterOf(model).failover.fenceSecond(model, peer);
  return [
    `PEER_MGMT=${peerMgmt}`,
    "# First: the peer's fence sshd over mgmt; its key may only power the peer off, and says so first.",
    "# Its line is the proof: the session itself ends only when the peer's power does, so it is not waited for.",
    "fence_mgmt() {",
    '\tout=$(mktemp "$RUN_DIR/fence.XXXXXX") || return 1',
    `\tssh -n -p ${FENCE_SSH_PORT} -i ${FENCE_CLIENT_KEY} -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=2 \\`,
    `\t\t-o ServerAliveInterval=1 -o ServerAliveCountMax=2 -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${FENCE_KNOWN_HOSTS} \\`,
    '\t\t-o GlobalKnownHostsFile=/dev/null -o LogLevel=ERROR "root@$PEER_MGMT" >"$out" 2>&1 &',
    "\tpid=$!",
    "\ttries=0",
    "\t# At most 6 s: a connect timeout (2 s) and the peer's answer.",
    '\twhile [ "$tries" -lt 60 ]; do',
    `\t\tif grep -q "${FENCED_LINE}" "$out"; then`,
    '\t\t\tkill "$pid" 2>/dev/null',
    '\t\t\trm -f "$out"',
    "\t\t\treturn 0",
    "\t\tfi",
    '\t\tkill -0 "$pid" 2>/dev/null || break',
    "\t\tsleep 0.1",
    "\t\ttries=$((tries + 1))",
    "\tdone",
    '\tkill "$pid" 2>/dev/null',
    '\twait "$pid" 2>/dev/null',
    `\tif grep -q "${FENCED_LINE}" "$out"; then rm -f "$out"; return 0; fi`,
    "\tlog \"fence over mgmt: $PEER did not confirm: $(tr '\\n' ' ' < \"$out\")\"",
    '\trm -f "$out"',
    "\treturn 1",
    "}",
    ...second,
    "# A peer silent on heartbeat and mgmt cannot be reached by the mgmt fence either: straight to the second method.",
    "fence_peer() {",
    '\tif [ "${peer_alive:-yes}" = yes ] && fence_mgmt; then return 0; fi',
    "\tfence_second",
    "}",
  ];
}

/** Shell function that moves the failover address to this host, by provider. */
function moveFunctions(model: SiteModel, move: FailoverMove, selfAddress: string | undefined): string[] {
  if (move.kind === "none") {
    return [
      "# Nothing to move: the own prefix follows BGP, or this pair has no public address.",
      "move_failover_address() {",
      "\treturn 0",
      "}",
    ];
  }
  const uplink = [
    "# The address also goes on the uplink, so this host answers for it.",
    "hold_address() {",
    '\tip addr replace "$1/32" dev "$UPLINK" && printf \'%s\\n\' "$1" > "$ADDRESS_FILE"',
    "}",
  ];
  const addressLine =
    move.kind === "next-hop" || move.address !== undefined
      ? [`FAILOVER_ADDRESS=${move.address}`]
      : [
          `# The provider-assigned address comes from ${PROVIDER_ENV} (FAILOVER_IP_${move.purpose.toUpperCase()}).`,
          `FAILOVER_ADDRESS=\${FAILOVER_IP_${move.purpose.toUpperCase()}:-}`,
        ];
  return adapterOf(model).failover.moveAddress(model, move, {
    uplink,
    addressLine,
    natSourceMap: NAT_SOURCE_MAP,
    ...(selfAddress !== undefined ? { selfAddress } : {}),
    shQuote,
  });
}

/**
 * Renders the failover script keepalived runs on every state change
 * (`/etc/keepalived/standort-failover.sh master|backup|fault|stop`).
 *
 * On `master`: the passive member waits `FENCE_GRACE_SECONDS` (a rebooting
 * active member preempts in that time), then fences the peer — through the
 * provider's power-off API where there is one, else the site's fence command;
 * a fence command that fails counts only when the peer answers neither on the
 * heartbeat nor on its public address. Only a fenced peer lets the script
 * move the failover address. The active member never fences: it takes over
 * only from a peer that yielded to its higher priority.
 * On `backup`/`fault`/`stop`: drops the failover address from the uplink.
 */
export function renderFailoverScript(model: SiteModel, hostName: string, secrets: RenderSecrets, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const pair = checkPair(model, hostName, secrets, problems, options);
  problems.throwIfAny();
  const p = pair!;
  const peer = p.dissolved ? undefined : p.members.find((m) => m !== hostName)!;
  const peerHost = peer ? findHost(model, peer) : undefined;
  const move = failoverMove(model, p.role);
  const member = p.active === hostName ? "active" : "passive";
  const adapter = adapterOf(model);
  // Where the provider routes the segments, VIPs move through its API (alias IPs), not by VRRP.
  const usesApi = adapter.segments.kind === "routed";
  const conntrack = runsConntrackd(model, hostName);
  const drains = drainsConnections(model, hostName);
  const lines = [
    "#!/bin/sh",
    `# standort: failover script of ${hostName} (${member} member of the ${p.role} pair of ${model.name}). Rendered from ${model.file}; do not edit.`,
    "# keepalived runs it on every state change with one argument (master, backup, fault or stop), and as",
    "# its checks (clock, link, bgp, handover-check, fence-check). Operators run `handover` on the serving",
    "# member before maintenance (the peer takes over, open connections are kept) and `handover-clear` after.",
    "set -u",
    "",
    `PAIR=${p.name}`,
    `SELF=${hostName}`,
    `PEER=${peer ?? ""}`,
    `PEER_HEARTBEAT=${peer ? p.heartbeat[peer] : ""}`,
    `PEER_PUBLIC=${peerHost?.publicAddress ?? ""}`,
    `MEMBER=${member}`,
    `GRACE_SECONDS=${FENCE_GRACE_SECONDS}`,
    `UPLINK=${nicNames(options).uplink}`,
    "# Overridable only so that tests can run the script without touching the host.",
    "RUN_DIR=${STANDORT_RUN_DIR:-/run/standort}",
    `STATE_FILE=$RUN_DIR/failover-${p.name}.state`,
    "# The pair's state for the monitoring (node exporter's textfile collector): 1 while this member is active.",
    `TEXTFILE_DIR=\${STANDORT_TEXTFILE_DIR:-${TEXTFILE_DIR}}`,
    "vrrp_metric() {",
    '\tmkdir -p "$TEXTFILE_DIR" 2>/dev/null || return 0',
    `\tprintf '# HELP ${METRICS.vrrpMaster} 1 while this member is the active one of its pair.\\n# TYPE ${METRICS.vrrpMaster} gauge\\n${METRICS.vrrpMaster}{pair="${p.role}"} %s\\n' "$1" >"$TEXTFILE_DIR/.standort-vrrp-${p.role}.prom.$$" &&`,
    `\t\tmv -f "$TEXTFILE_DIR/.standort-vrrp-${p.role}.prom.$$" "$TEXTFILE_DIR/standort-vrrp-${p.role}.prom"`,
    "}",
    `ADDRESS_FILE=$RUN_DIR/failover-${p.name}.address`,
    "# Present while this member steps back after a fence that failed (keepalived's fence_not_failed check).",
    `FENCE_FAILED=$RUN_DIR/fence-failed-${p.name}`,
    "# Present while an operator hands this member's role to the peer (keepalived's not_handed_over check).",
    `HANDOVER_FILE=$RUN_DIR/handover-${p.name}`,
    `HANDOVER_WAIT_SECONDS=${failbackDelaySeconds(model, p.role) + HANDOVER_WAIT_SECONDS}`,
    `STEP_BACK_SECONDS=${FENCE_STEP_BACK_SECONDS}`,
    `MOVE_RETRY_SECONDS=${MOVE_RETRY_SECONDS}`,
    `MOVE_TRIES=${MOVE_TRIES}`,
    "# Present only on the member that serves: jobs and tunnels that must run once per pair check it.",
    `ACTIVE_FLAG=$RUN_DIR/${p.role}-active`,
    ...(p.role === "storage"
      ? [
          "# Present while this member serves NFS (keepalived's nfs_running check), and after taking the role failed.",
          "NFS_SERVING=$RUN_DIR/nfs-serving",
          "STORAGE_FAILED=$RUN_DIR/storage-failed",
          `DRBD_PROMOTE_TRIES=${DRBD_PROMOTE_TRIES}`,
        ]
      : []),
    `PROVIDER_ENV_FILE=\${STANDORT_PROVIDER_ENV:-${PROVIDER_ENV}}`,
    "",
    'log() { logger -t standort-failover -p daemon.notice -- "$PAIR: $*"; echo "$PAIR: $*" >&2; }',
    "",
    "# shellcheck disable=SC1090",
    '[ -r "$PROVIDER_ENV_FILE" ] && . "$PROVIDER_ENV_FILE"',
    "",
  ];
  lines.push(...adapter.failover.preamble(model));
  const vipLines = (verb: "replace" | "del") =>
    p.vips.map((v) => `ip addr ${verb} ${v.address}/32 dev ${interfaceName(v.segment)}${verb === "del" ? " 2>/dev/null" : ""}`);
  lines.push(
    ...(peer ? fenceFunctions(model, peer, p.mgmt[peer]) : ["fence_peer() { return 0; }"]),
    "",
    ...(drains ? [...drainFunctions(model, hostName, options), ""] : []),
    ...moveFunctions(model, move, findHost(model, hostName)?.publicAddress),
    "",
    ...(usesApi
      ? [
          ...(adapter.failover.moveVips?.(model, hostName, peer) ?? []),
          "# The VIPs on this server's own links, once the network delivers them here.",
          "hold_vips() {",
          ...vipLines("replace").map((l) => `\t${l} || return 1`),
          "}",
          "drop_vips() {",
          ...vipLines("del").map((l) => `\t${l}`),
          "\treturn 0",
          "}",
          "",
        ]
      : []),
  );
  const released = usesApi
    ? [
        "# Hetzner Cloud's network gives an address to one server only: a peer that answers on its private",
        "# addresses but no longer advertises stepped down (FAULT) and needs no fence; the alias move takes the VIPs.",
        "peer_released() {",
        "\tpeer_alive=no",
        '\tanswers "$PEER_HEARTBEAT" "${PEER_MGMT:-}" || return 1',
        "\tpeer_alive=yes",
        "}",
      ]
    : [
        "# A peer that answers but no longer advertises either stepped down (FAULT: it gave its VIPs up) or lost",
        "# its keepalived (the VIPs stay on it). Duplicate address detection (arping -D, RFC 5227) tells them apart:",
        "# anyone else answering ARP for one of our VIPs must be fenced.",
        "peer_released() {",
        "\tpeer_alive=no",
        '\tanswers "$PEER_HEARTBEAT" "${PEER_MGMT:-}" || return 1',
        "\tpeer_alive=yes",
        "\t# All VIPs at once: an answer comes within milliseconds, silence takes the 1 s deadline.",
        '\theld=$(mktemp -u "$RUN_DIR/dad.XXXXXX")',
        ...p.vips.map((v) => `\t(arping -q -D -c 2 -w 1 -I ${interfaceName(v.segment)} ${v.address} || touch "$held") &`),
        "\twait",
        '\tif [ -e "$held" ]; then rm -f "$held"; return 1; fi',
        "\treturn 0",
        "}",
      ];
  lines.push(
    "# True when any of the addresses answers an echo request; all asked at once (1.2 s at most).",
    "answers() {",
    '\tanswered=$(mktemp -u "$RUN_DIR/ping.XXXXXX")',
    '\tfor a in "$@"; do',
    '\t\t[ -n "$a" ] && (ping -c 2 -i 0.2 -W 1 -q "$a" >/dev/null 2>&1 && touch "$answered") &',
    "\tdone",
    "\twait",
    '\tif [ -e "$answered" ]; then rm -f "$answered"; return 0; fi',
    "\treturn 1",
    "}",
    "",
    ...(peer ? [...released, ""] : []),
    "# Down only when it answers on none of its addresses (heartbeat, mgmt, public).",
    "peer_unreachable() {",
    '\t! answers "$PEER_HEARTBEAT" "${PEER_MGMT:-}" "$PEER_PUBLIC"',
    "}",
    "",
    'mkdir -p "$RUN_DIR"',
    'state="${1:-}"',
    'case "$state" in',
    "\t# keepalived's check of this member's clock: in step with the site's sources (chronyc tracking).",
    "\tclock)",
    `\t\tchronyc -n tracking 2>/dev/null | awk -v bound=${CLOCK_BOUND_SECONDS} '`,
    "\t\t\t/^Leap status/ && /Not synchronised/ { bad = 1 }",
    "\t\t\t/^System time/ { seen = 1; offset = $4 }",
    "\t\t\tEND { exit (bad || !seen || offset > bound) }'",
    "\t\texit $?",
    "\t\t;;",
    "\t# keepalived's check of a link: some host on it answers ARP (no address given: the link's default gateway).",
    "\tlink)",
    "\t\tiface=${2:?link needs an interface}",
    "\t\tshift 2",
    '\t\t[ "$#" -gt 0 ] || set -- $(ip -4 route show default dev "$iface" 2>/dev/null | awk \'/ via / { print $3; exit }\')',
    "\t\t# Nothing to ask: the link cannot be judged, so it does not count against this member.",
    '\t\t[ "$#" -gt 0 ] || exit 0',
    '\t\tmark=$(mktemp "$RUN_DIR/link.XXXXXX") && rm -f "$mark" || exit 1',
    '\t\tfor a in "$@"; do (arping -q -c 1 -w 1 -I "$iface" "$a" && touch "$mark") & done',
    "\t\twait",
    '\t\tif [ -e "$mark" ]; then rm -f "$mark"; exit 0; fi',
    "\t\texit 1",
    "\t\t;;",
    ...(usesApi && move.kind === "failover-ip" && move.purpose === "nat"
      ? [
          "\t# After nftables.conf is loaded again (its map starts empty): the floating IP this member holds.",
          "\tnat-source)",
          '\t\t[ -s "$ADDRESS_FILE" ] || exit 0',
          '\t\tnat_source "$(cat "$ADDRESS_FILE")"',
          "\t\texit $?",
          "\t\t;;",
        ]
      : []),
    ...(peer && p.role === "firewall" && model.public.mode === "own-prefix" && model.public.routing.kind === "bgp"
      ? [
          "\t# keepalived's check that the provider hears this member: at least one BGP session established.",
          "\tbgp)",
          "\t\tbirdc -s /run/bird/bird.ctl show protocols 2>/dev/null | grep -q ' Established'",
          "\t\texit $?",
          "\t\t;;",
        ]
      : []),
    ...(peer
      ? [
          "\t# An operator hands this member's role to the peer (maintenance): it gives up priority, the peer takes",
          "\t# over and the connections open here stay served here until they end. `handover-clear` ends it.",
          "\thandover)",
          '\t\tcase "$(cat "$STATE_FILE" 2>/dev/null)" in master*) ;; *) log "handover: this member is not master"; exit 1 ;; esac',
          '\t\tanswers "$PEER_HEARTBEAT" "${PEER_MGMT:-}" || { log "handover: $PEER does not answer, so it cannot take over"; exit 1; }',
          '\t\ttouch "$HANDOVER_FILE"',
          '\t\tlog "handing over to $PEER"',
          "\t\ttries=0",
          '\t\tuntil [ "$(cat "$STATE_FILE" 2>/dev/null)" = backup ]; do',
          "\t\t\ttries=$((tries + 1))",
          '\t\t\tif [ "$tries" -gt $((HANDOVER_WAIT_SECONDS * 10)) ]; then',
          '\t\t\t\trm -f "$HANDOVER_FILE"',
          '\t\t\t\tlog "handover: $PEER did not take over within ${HANDOVER_WAIT_SECONDS}s; this member keeps the role"',
          "\t\t\t\texit 1",
          "\t\t\tfi",
          "\t\t\tsleep 0.1",
          "\t\tdone",
          '\t\tlog "handed over to $PEER; until handover-clear this member stands by"',
          "\t\texit 0",
          "\t\t;;",
          '\thandover-check) [ ! -e "$HANDOVER_FILE" ]; exit $? ;;',
          '\thandover-clear) rm -f "$HANDOVER_FILE"; log "handover cleared"; exit 0 ;;',
        ]
      : []),
    ...(p.role === "storage"
      ? [
          "\t# keepalived's check of the NFS server: running wherever this member serves, and taking the role did not fail.",
          "\tnfs-check)",
          '\t\t[ ! -e "$STORAGE_FAILED" ] || exit 1',
          `\t\t[ ! -e "$NFS_SERVING" ] || systemctl is-active --quiet ${NFS_SERVER_UNIT}`,
          "\t\texit $?",
          "\t\t;;",
        ]
      : []),
    ...(p.role === "storage" && peer
      ? [
          "\t# DRBD's fence-peer handler (fencing resource-and-stonith): a primary that lost its peer, or a member promoted",
          "\t# without one, keeps I/O frozen until this exits 7 (the peer is fenced, drbd.conf(5)). The pair's own fence;",
          "\t# a peer silent on every address counts as down, as in the takeover. A cut heartbeat link (DRBD's path) thus",
          "\t# costs the member that stands by: it is powered off while the serving member keeps writing.",
          "\tdrbd-fence-peer)",
          '\t\tif ! answers "$PEER_HEARTBEAT" "${PEER_MGMT:-}" "$PEER_PUBLIC"; then',
          '\t\t\tlog "drbd: $PEER answers on none of its addresses: treating it as down"',
          "\t\t\texit 7",
          "\t\tfi",
          "\t\tpeer_alive=yes",
          '\t\tif fence_peer; then log "drbd: fenced $PEER"; exit 7; fi',
          '\t\tlog "drbd: could not fence $PEER, which still answers: the data volume stays frozen"',
          "\t\texit 1",
          "\t\t;;",
        ]
      : []),
    "\t# keepalived's check that this member is not stepping back after a fence that failed.",
    "\tfence-check)",
    '\t\tif [ -f "$FENCE_FAILED" ] && [ $(($(date +%s) - $(stat -c %Y "$FENCE_FAILED"))) -lt "$STEP_BACK_SECONDS" ]; then exit 1; fi',
    "\t\texit 0",
    "\t\t;;",
    "\t# Each takeover writes its own token: a script still waiting from an earlier takeover sees a",
    "\t# newer one and steps aside instead of fencing a member that came back and left again.",
    ...(conntrack
      ? [
          "\t# The peer's connections (conntrackd's external cache) into the kernel first: the VIPs are here already.",
          "\tmaster)",
          '\t\techo "master $$" > "$STATE_FILE"',
          "\t\tvrrp_metric 1",
          ...conntrackStateLines("master").map((l) => `\t\t${l}`),
          "\t\t;;",
        ]
      : drains
        ? ["\tmaster)", '\t\techo "master $$" > "$STATE_FILE"', "\t\tvrrp_metric 1", "\t\tdrain_check", "\t\t;;"]
        : ['\tmaster) echo "master $$" > "$STATE_FILE"; vrrp_metric 1 ;;']),
    "\tbackup | fault | stop)",
    '\t\techo "$state" > "$STATE_FILE"',
    "\t\tvrrp_metric 0",
    ...(conntrack
      ? [
          '\t\tif [ "$state" = backup ]; then',
          ...conntrackStateLines("backup").map((l) => `\t\t\t${l}`),
          "\t\telse",
          ...conntrackStateLines("fault").map((l) => `\t\t\t${l}`),
          "\t\tfi",
        ]
      : []),
    '\t\trm -f "$ACTIVE_FLAG"',
    ...(usesApi ? ["\t\tdrop_vips"] : []),
    ...roleHooks(p.role).down.map((l) => `\t\t${l}`),
    '\t\tif [ -s "$ADDRESS_FILE" ]; then ip addr del "$(cat "$ADDRESS_FILE")/32" dev "$UPLINK" 2>/dev/null; rm -f "$ADDRESS_FILE"; fi',
    ...(usesApi && move.kind === "failover-ip" && move.purpose === "nat"
      ? [`\t\tnft flush map ip standort_nat ${NAT_SOURCE_MAP} 2>/dev/null`]
      : []),
    // After the uplink address is gone: a member that returns takes it at once, so it must not linger here.
    ...(drains ? ["\t\tdrain_standby"] : []),
    "\t\texit 0",
    "\t\t;;",
    "\t*) log \"unknown state '$state'\"; exit 2 ;;",
    "esac",
    "",
    'if [ "$MEMBER" = passive ] && [ -n "$PEER" ]; then',
    '\tlog "became master; waiting ${GRACE_SECONDS}s for $PEER before fencing it"',
    '\tsleep "$GRACE_SECONDS"',
    '\tif [ "$(cat "$STATE_FILE" 2>/dev/null)" != "master $$" ]; then',
    '\t\tlog "no longer master: $PEER is back; not fencing"',
    "\t\texit 0",
    "\tfi",
    "\tif peer_released; then",
    '\t\tlog "$PEER stepped down and holds none of the addresses: no fence needed"',
    "\t# The peer took the role back while it was being asked (it is alive and advertising): nothing to fence.",
    '\telif [ "$(cat "$STATE_FILE" 2>/dev/null)" != "master $$" ]; then',
    '\t\tlog "no longer master: $PEER took over again; not fencing"',
    "\t\texit 0",
    "\telif fence_peer; then",
    '\t\tlog "fenced $PEER"',
    ...(drains ? ["\t\tdrain_stop"] : []),
    "\telif peer_unreachable; then",
    '\t\tlog "no fence took, but $PEER answers on none of its addresses: treating it as down"',
    ...(drains ? ["\t\tdrain_stop"] : []),
    "\telse",
    '\t\tlog "could not fence $PEER, which still answers: stepping back for ${STEP_BACK_SECONDS}s (split-brain risk)"',
    '\t\ttouch "$FENCE_FAILED"',
    "\t\texit 1",
    "\tfi",
    "fi",
    "",
    ...(usesApi ? ["if ! move_vips || ! hold_vips; then", '\tlog "moving the VIPs to $SELF failed"', "\texit 1", "fi"] : []),
    "# A provider may refuse a move for a while (Netcup: one move in 5 minutes): try again as long as this",
    "# member is master, so the public path follows once the provider allows it.",
    "moves=1",
    "until move_failover_address; do",
    '\tif [ "$(cat "$STATE_FILE" 2>/dev/null)" != "master $$" ]; then',
    '\t\tlog "no longer master: not moving the failover address"',
    "\t\texit 0",
    "\tfi",
    '\tif [ "$moves" -ge "$MOVE_TRIES" ]; then',
    '\t\tlog "moving the failover address to $SELF failed ${moves} times: giving up"',
    "\t\texit 1",
    "\tfi",
    '\t[ "$moves" -gt 1 ] || log "moving the failover address to $SELF failed; trying again every ${MOVE_RETRY_SECONDS}s"',
    "\tmoves=$((moves + 1))",
    '\tsleep "$MOVE_RETRY_SECONDS"',
    "done",
    '[ "$moves" -eq 1 ] || log "moved the failover address to $SELF after ${moves} tries"',
    // The storage hooks set the flag themselves, once the data is mounted and served.
    ...(p.role === "storage" ? [] : ['touch "$ACTIVE_FLAG"']),
    ...roleHooks(p.role).up,
    'log "$SELF is master"',
    "",
  );
  return lines.join("\n");
}

/** True when the host's failover script fills the outbound NAT map (`nat-source`): a Hetzner Cloud firewall without a declared NAT address. */
export function fillsNatSource(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  const move = pair ? failoverMove(model, pair.role) : undefined;
  return (
    adapterOf(model).failoverIps === "assigned" && move?.kind === "failover-ip" && move.purpose === "nat" && runsKeepalived(model, hostName)
  );
}

/** WireGuard tunnels of the site (`/etc/wireguard/wg-*.conf`) run on the active firewall only. */
export const TUNNEL_CONFIG_GLOB = "/etc/wireguard/wg-*.conf";

/**
 * What else follows the active member: the firewall pair's site-to-site
 * tunnels run where the tunnel endpoint (the NAT address) is, so they start on
 * the new master and stop on the member that steps down; a second member
 * answering with the same key would steal the peer's endpoint. The storage
 * pair's data volume (DRBD, `lib/render/storage.ts`) is promoted, mounted on
 * `DATA_ROOT` and exported (nfs-ganesha) on the new master, after the fence,
 * and only then is the member flagged active (lsyncd follows the flag); the
 * member that steps down stops lsyncd and NFS, unmounts and demotes. A step
 * that fails marks `storage-failed`: keepalived's `nfs_running` check then
 * moves the role to the peer.
 */
export function roleHooks(role: PairedRole): { up: string[]; down: string[] } {
  if (role === "storage") {
    // The continuous copy runs on the active member only: a fresh start (new inotify watches, a full first pass)
    // when it becomes active, stopped at once when it is not (the guard would end it at its next copy anyway).
    const unit = "standort-lsyncd.service";
    const lsyncd = (verb: string) =>
      `if [ -e /etc/systemd/system/${unit} ]; then systemctl ${verb} ${unit} || log "${verb} of ${unit} failed"; fi`;
    const failed = (what: string) => [`\tlog "${what}: not serving"`, '\ttouch "$STORAGE_FAILED"', "\texit 1"];
    return {
      // After the fence (the passive member fenced its peer above): the one consistent copy is promoted, mounted
      // and exported here only. The old primary may still be stepping down (a handover): promotion is retried.
      up: [
        "tries=0",
        `until drbdadm primary ${DRBD_RESOURCE}; do`,
        "\ttries=$((tries + 1))",
        '\tif [ "$(cat "$STATE_FILE" 2>/dev/null)" != "master $$" ]; then',
        `\t\tlog "no longer master: not promoting ${DRBD_RESOURCE}"`,
        "\t\texit 0",
        "\tfi",
        '\tif [ "$tries" -ge "$DRBD_PROMOTE_TRIES" ]; then',
        ...failed(`drbdadm primary ${DRBD_RESOURCE} refused \${tries} times`).map((l) => `\t${l}`),
        "\tfi",
        `\tsleep ${DRBD_PROMOTE_RETRY_SECONDS}`,
        "done",
        `if ! mount ${DRBD_DEVICE} ${DATA_ROOT} && ! grep -qs "^${DRBD_DEVICE} ${DATA_ROOT} " /proc/mounts; then`,
        ...failed(`mounting ${DRBD_DEVICE} on ${DATA_ROOT} failed`),
        "fi",
        // The partner's off-site backups live on the replicated volume (restic writes there as its sftp user).
        `install -d -o restic -g restic -m 0700 ${DATA_ROOT}/backup ${DATA_ROOT}/backup/offsite || log "creating the off-site backup folder failed"`,
        // restart, not start: a server the package started at boot serves the root filesystem's /srv, not the device.
        `if ! systemctl restart ${NFS_SERVER_UNIT}; then`,
        ...failed(`starting ${NFS_SERVER_UNIT} failed`),
        "fi",
        'touch "$NFS_SERVING" "$ACTIVE_FLAG"',
        lsyncd("restart"),
      ],
      // The reverse, after the flag is gone: nothing may write to the device once it is secondary.
      down: [
        lsyncd("stop"),
        'rm -f "$NFS_SERVING"',
        `systemctl stop ${NFS_SERVER_UNIT} || log "stopping ${NFS_SERVER_UNIT} failed"`,
        `umount ${DRBD_DEVICE} 2>/dev/null || ! grep -qs "^${DRBD_DEVICE} " /proc/mounts || log "unmounting ${DRBD_DEVICE} failed: it stays primary"`,
        `drbdadm secondary ${DRBD_RESOURCE} 2>/dev/null || ! drbdadm role ${DRBD_RESOURCE} 2>/dev/null | grep -q '^Primary' || log "drbdadm secondary ${DRBD_RESOURCE} failed"`,
        'rm -f "$STORAGE_FAILED"',
      ],
    };
  }
  if (role !== "firewall") return { up: [], down: [] };
  const each = (verb: string) =>
    `for conf in ${TUNNEL_CONFIG_GLOB}; do [ -e "$conf" ] || continue; systemctl ${verb} "wg-quick@$(basename "$conf" .conf)" || log "${verb} of $(basename "$conf" .conf) failed"; done`;
  return { up: [each("restart")], down: [each("stop")] };
}

/**
 * The `providerEnv` keys a site's failover scripts need to move its
 * addresses (the adapter's `requiredEnv`: on IONOS the data center, the LAN
 * and each moving member's NIC; on other pre-provisioned sites the operator's
 * `FAILOVER_MOVE_COMMAND`; none where the library drives the provider's API).
 */
export function requiredProviderEnv(model: SiteModel): string[] {
  const moving = model.pairs.flatMap((p) => {
    const move = failoverMove(model, p.role);
    return move.kind === "none" ? [] : [{ role: p.role, members: p.dissolved ? [p.active] : [...p.members], move }];
  });
  return adapterOf(model).failover.requiredEnv(model, moving);
}

/**
 * Renders `/etc/standort/provider.env` (mode 0600): the provider API token and
 * the extra environment of `options.providerEnv`, read by the failover script.
 * Each host's own IONOS NIC (`IONOS_NIC_ID_<HOST>`) becomes its `IONOS_NIC_ID`;
 * the other hosts' NICs stay out. Returns undefined when there is nothing to write.
 */
export function renderProviderEnv(
  model: SiteModel,
  hostName: string,
  secrets: RenderSecrets,
  options: RenderOptions = {},
): string | undefined {
  const problems = new ProblemCollector(model.name, hostName);
  checkHost(model, hostName, problems, options);
  const env = options.providerEnv ? problems.parse(providerEnvSchema, options.providerEnv, "options.providerEnv") : {};
  if (secrets.providerApiToken !== undefined && !/^[^'\n\r]+$/.test(secrets.providerApiToken)) {
    problems.add("secrets.providerApiToken", "must be non-empty without a single quote or a line break");
  }
  problems.throwIfAny();
  const hostEnv = adapterOf(model).failover.hostEnv?.(hostName, env!) ?? env!;
  const entries: Array<[string, string]> = [
    ...(secrets.providerApiToken !== undefined ? [[tokenVariable(model), secrets.providerApiToken] as [string, string]] : []),
    ...Object.entries(hostEnv).sort(([a], [b]) => a.localeCompare(b)),
  ];
  if (entries.length === 0) return undefined;
  return [
    `# standort: provider access of ${hostName} (${model.name}) for the failover script. Rendered; do not edit.`,
    ...entries.map(([k, v]) => `${k}=${shQuote(v)}`),
    "",
  ].join("\n");
}

/** True when the host runs keepalived: a member of a pair, and not the released member of a dissolved pair. */
export function runsKeepalived(model: SiteModel, hostName: string): boolean {
  const pair = pairOf(model, hostName);
  return pair !== undefined && (!pair.dissolved || pair.active === hostName);
}

/**
 * Public addresses a pair's master holds on lo besides its VIPs: the firewall pair of an own-prefix site holds
 * the prefix's NAT address, the tunnel endpoint its partners are given (`knownEndpoint` in
 * lib/footprint/wireguard.ts). A routed prefix reaches the member, but only a local address reaches a socket.
 */
export function heldPublicAddresses(model: SiteModel, role: PairedRole): string[] {
  return role === "firewall" && model.public.mode === "own-prefix" ? [model.public.natAddress] : [];
}
