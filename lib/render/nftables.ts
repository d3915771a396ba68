/**
 * nftables rulesets: the edge firewall of a site (zone policy, outbound NAT,
 * DNAT of the public proxy address, anti-spoofing) and the packet filter of
 * every other host. Both come from the same `zonePolicy`.
 *
 * Each ruleset replaces only the `standort` tables (`table …; delete table …;
 * table … { }` in one transaction), never `flush ruleset`: container runtimes
 * on the virtualization hosts keep their own tables, and a reload is atomic.
 */
import { z } from "zod";
import type { HostModel, SiteModel } from "../model/model";
import { cidr, overlaps } from "../net/ipv4";
import { ProblemCollector } from "./errors";
import { checkServices, ipv4Prefix, mergePrefixes } from "./inputs";
import { checkHost, inPrefix, interfaceName } from "./interfaces";
import { adapterOf } from "../providers/registry";
import { ZoneRule, partnerSites, publicDnsDnat, publicWebDnat, zonePolicy } from "./policy";
import { DEFAULT_SERVICES, RenderOptions } from "./types";

/** Interfaces that container runtimes create; their traffic to the host is the runtime's own. */
export const CONTAINER_INTERFACES = ['"docker0"', '"br-*"', '"cni0"', '"flannel.1"'] as const;

const allowlistSchema = z
  .array(ipv4Prefix.refine((p) => !p.endsWith("/0"), { error: (i) => `${String(i.input)} would open management to the whole internet` }))
  .min(1, "must list at least one prefix: management would be unreachable");

/** Prefixes for a rule, merged; host routes read as plain addresses. */
function addresses(prefixes: ReadonlyArray<string>): string[] {
  return mergePrefixes(prefixes).map((p) => p.replace(/\/32$/, ""));
}

/** `a` or `{ a, b }`: nftables wants a set only for more than one element. */
function set(items: ReadonlyArray<string | number>): string {
  return items.length === 1 ? String(items[0]) : `{ ${items.join(", ")} }`;
}

function protocolClause(rule: ZoneRule): string[] {
  switch (rule.protocol) {
    case "tcp":
    case "udp":
      return rule.ports.length > 0 ? [`${rule.protocol} dport ${set(rule.ports)}`] : [`meta l4proto ${rule.protocol}`];
    case "icmp":
      return ["icmp type echo-request"];
    case "vrrp":
      // 112 rather than the name "vrrp": the name depends on /etc/protocols.
      return ["ip protocol 112"];
    case "any":
      return [];
  }
}

function sourceClause(rule: ZoneRule): string[] {
  if (rule.from.kind === "allowlist") return ["ip saddr @mgmt_allowlist"];
  return rule.sources.length > 0 ? [`ip saddr ${set(addresses(rule.sources))}`] : [];
}

function destinationClause(rule: ZoneRule): string[] {
  return rule.destinations.length > 0 ? [`ip daddr ${set(addresses(rule.destinations))}`] : [];
}

const accept = (rule: ZoneRule) => `accept comment "${rule.name}"`;

/**
 * The interface match of a segment on the edge firewall's forward chain: the
 * segment's own link where segments are VLANs; on Hetzner Cloud, where every
 * segment reaches the firewall through the network's router on the private
 * NIC (an IPVLAN delivers only addresses of its own to a segment link), any
 * internal link, the segment's CIDR in the rule's addresses narrowing it.
 */
function segmentLink(model: SiteModel, direction: "iifname" | "oifname", segment: string): string {
  return adapterOf(model).segments.kind === "routed" ? `${direction} @internal_ifs` : `${direction} "${interfaceName(segment)}"`;
}

/** A rule of the edge firewall's forward chain. */
function forwardRule(model: SiteModel, rule: ZoneRule): string {
  const parts: string[] = [];
  switch (rule.from.kind) {
    case "internet":
    case "allowlist":
    case "bgp-peer":
      parts.push("iifname != @internal_ifs");
      break;
    case "segment":
      parts.push(segmentLink(model, "iifname", rule.from.segment));
      break;
    case "site":
      parts.push("iifname @internal_ifs");
      break;
    case "partner":
      if (rule.from.tunnel) parts.push(`iifname "${rule.from.tunnel}"`);
      break;
    default:
      break;
  }
  parts.push(...sourceClause(rule));
  switch (rule.to.kind) {
    case "internet":
      // Not inside, and not a partner's supernet behind a tunnel: egress to the internet is not replication.
      parts.push("oifname != @internal_ifs ip daddr != @partner_supernets");
      break;
    case "segment":
      parts.push(segmentLink(model, "oifname", rule.to.segment));
      break;
    case "hosts":
    case "site":
      parts.push("oifname @internal_ifs");
      break;
    case "partner":
      if (rule.to.tunnel) parts.push(`oifname "${rule.to.tunnel}"`);
      break;
    default:
      break;
  }
  parts.push(...destinationClause(rule), ...protocolClause(rule), accept(rule));
  return parts.join(" ");
}

/**
 * A rule of a host's input chain (the edge firewall's own input, or any other
 * host's packet filter). A host only receives what is addressed to it, so the
 * other hosts' addresses among the destinations are left out: a host's filter
 * then depends on the host alone, and growing a pool leaves the others' filters
 * unchanged.
 */
function inputRule(rule: ZoneRule, host: HostModel, otherHosts: ReadonlySet<string>): string | undefined {
  const joined = (segment: string) => host.interfaces.some((i) => i.segment === segment);
  const parts: string[] = [];
  if (rule.from.kind === "segment" && joined(rule.from.segment)) parts.push(`iifname "${interfaceName(rule.from.segment)}"`);
  else if (rule.to.kind === "segment" && joined(rule.to.segment) && rule.from.kind !== "internet" && rule.from.kind !== "allowlist") {
    // Routed in from another segment: it arrives on the interface of the segment it is addressed to.
    parts.push(`iifname "${interfaceName(rule.to.segment)}"`);
  } else if (rule.from.kind === "bgp-peer" || (rule.from.kind === "internet" && !rule.forwarded)) {
    // Straight from outside: it arrives on the uplink, never on a segment link.
    parts.push("iifname != @internal_ifs");
  } else if (rule.from.kind === "site") parts.push("iifname @internal_ifs");
  const own = { ...rule, destinations: rule.destinations.filter((d) => !otherHosts.has(d)) };
  // Addressed to other hosts only: nothing of it reaches this one.
  if (rule.destinations.length > 0 && own.destinations.length === 0) return undefined;
  parts.push(...sourceClause(rule), ...destinationClause(own), ...protocolClause(rule), accept(rule));
  return parts.join(" ");
}

/** Lines of a named set; an empty set has no `elements` line. */
function namedSet(name: string, type: string, elements: ReadonlyArray<string>, interval: boolean): string[] {
  return [
    `\tset ${name} {`,
    `\t\ttype ${type}`,
    ...(interval ? ["\t\tflags interval", "\t\tauto-merge"] : []),
    ...(elements.length > 0 ? [`\t\telements = { ${elements.join(", ")} }`] : []),
    "\t}",
  ];
}

const INPUT_HEAD = [
  "\t\tct state invalid counter drop",
  "\t\tct state established,related accept",
  '\t\tiifname "lo" accept',
  "\t\t# Errors that belong to no connection we know are still needed for path MTU discovery.",
  "\t\ticmp type { destination-unreachable, time-exceeded, parameter-problem } accept",
  "\t\t# Neighbour discovery keeps the provider's IPv6 link working; other IPv6 is dropped.",
  "\t\ticmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert, packet-too-big } accept",
];

const dropTail = (chain: string) => [
  `\t\tlimit rate 10/second burst 20 packets log prefix "standort ${chain} drop: " level info`,
  `\t\tcounter comment "dropped by policy"`,
];

/**
 * The firewall's map from protocol to outbound NAT address where the provider
 * assigns the NAT address at creation (Hetzner Cloud): `ip standort_nat` table,
 * filled and flushed by the failover script.
 */
export const NAT_SOURCE_MAP = "nat_source";

/**
 * Renders the nftables ruleset of one host: the edge firewall's full
 * ruleset for firewall hosts, a host packet filter for every other role.
 * Validates first and throws `RenderInputError` naming site, host, field and rule.
 */
export function renderNftablesRuleset(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  problems.parse(allowlistSchema, model.management.allowlist, "management.allowlist");
  const services = checkServices(options.services ?? DEFAULT_SERVICES, problems);
  const isFirewall = host?.role === "firewall";
  // The firewall forwards replication and storage accepts it: both need the partner's supernet.
  const needsPartners = host?.role === "firewall" || host?.role === "storage" || host?.role === "virtualization";
  let partners: SiteModel[] = [];
  if (needsPartners) {
    if (!options.sites) {
      problems.add("options.sites", `is required for ${host.role} hosts: the partner ${model.partner}'s supernet comes from its model`);
    } else {
      partners = partnerSites(model, options.sites, options.tunnelPeers);
      if (!partners.some((p) => p.name === model.partner)) {
        problems.add("partner", `${model.partner} is not among the site models passed in options.sites`);
      }
      for (const p of partners) {
        if (ipv4Prefix.safeParse(p.supernet).success && overlaps(cidr(p.supernet), cidr(model.supernet))) {
          problems.add("partner", `${p.name}'s supernet ${p.supernet} overlaps this site's ${model.supernet}`);
        }
      }
    }
  }
  if (isFirewall) {
    if (model.public.mode === "own-prefix") {
      const pub = model.public;
      if (!inPrefix(pub.proxyAddress, pub.prefix))
        problems.add("public.proxyAddress", `${pub.proxyAddress} is outside the own prefix ${pub.prefix}`);
      if (!inPrefix(pub.natAddress, pub.prefix))
        problems.add("public.natAddress", `${pub.natAddress} is outside the own prefix ${pub.prefix}`);
      if (!model.pairs.find((p) => p.role === "proxy")?.vips.some((v) => v.segment === "dmz")) {
        problems.add("pairs", "the proxy pair has no VIP in dmz to forward the public proxy address to");
      }
    }
  }
  problems.throwIfAny();
  const h = host!;

  const policy = zonePolicy(model, partners, services, options.tunnelPeers);
  const internal = h.interfaces.map((i) => `"${interfaceName(i.segment)}"`);
  const carrier = adapterOf(model).segments;
  if (carrier.kind === "routed") internal.push(...carrier.nics.map((n) => `"${n}"`));
  const mine = (rule: ZoneRule) => rule.targets.includes(h.role);
  const lines: string[] = [
    "#!/usr/sbin/nft -f",
    `# standort: packet filter of ${h.name} (${h.role}, ${model.name}). Rendered from ${model.file}; do not edit.`,
    isFirewall
      ? "# Edge firewall: zone policy on forward, own input, anti-spoofing, NAT. Default deny."
      : "# Host packet filter: only what the zone policy sends to this role. Default deny.",
    "",
    "table inet standort",
    "delete table inet standort",
    "",
    "table inet standort {",
    ...namedSet("internal_ifs", "ifname", internal, false),
    ...namedSet("mgmt_allowlist", "ipv4_addr", mergePrefixes(model.management.allowlist), true),
  ];
  if (isFirewall) {
    const spoofed = mergePrefixes([model.supernet, ...(model.public.mode === "own-prefix" ? [model.public.prefix] : []), "127.0.0.0/8"]);
    lines.push(
      ...namedSet("partner_supernets", "ipv4_addr", mergePrefixes(partners.map((p) => p.supernet)), true),
      "",
      "\tchain prerouting {",
      "\t\ttype filter hook prerouting priority raw; policy accept;",
      '\t\tiifname "lo" accept',
      `\t\tiifname != @internal_ifs ip saddr ${set(spoofed)} counter drop comment "anti-spoofing: internal or own-prefix source from outside"`,
      ...(carrier.kind === "routed"
        ? [
            // Hetzner Cloud delivers every segment through the network's router, and each segment link routes the
            // whole network: a strict check would find the route on another segment link and drop the heartbeat.
            '\t\tiifname != @internal_ifs fib saddr . iif oif missing counter drop comment "anti-spoofing: reverse path check"',
            '\t\tiifname @internal_ifs fib saddr oif missing counter drop comment "anti-spoofing: reverse path check (routed network)"',
          ]
        : ['\t\tfib saddr . iif oif missing counter drop comment "anti-spoofing: reverse path check"']),
      "\t}",
    );
  }
  lines.push("", "\tchain input {", "\t\ttype filter hook input priority filter; policy drop;", ...INPUT_HEAD);
  if (h.role === "virtualization") {
    lines.push(
      "\t\t# Containers reach their host through the runtime's bridges.",
      ...CONTAINER_INTERFACES.map((i) => `\t\tiifname ${i} accept`),
    );
  }
  // The routed private network's addresses come by DHCP.
  if (carrier.kind === "routed") lines.push('\t\tudp sport 67 udp dport 68 accept comment "dhcp-client"');
  const otherHosts = new Set(model.hosts.filter((o) => o.name !== h.name).flatMap((o) => o.interfaces.map((i) => `${i.address}/32`)));
  const inputRules = policy.filter(mine).flatMap((r) => inputRule(r, h, otherHosts) ?? []);
  lines.push(...inputRules.map((r) => `\t\t${r}`), ...dropTail("input"), "\t}");

  if (h.role === "virtualization") {
    // The container runtime forwards for its containers with its own chains (docker's, the CNI's), which this file
    // never flushes. This chain only holds published ports to the zone policy: a connection from a segment that the
    // runtime translated (DNAT) to a container passes only where a zone rule sends its original port to this role.
    const published = policy
      .filter((r) => mine(r) && (r.protocol === "tcp" || r.protocol === "udp") && r.ports.length > 0)
      .map(
        (r) =>
          `\t\tiifname @internal_ifs ct status dnat ${[...sourceClause(r), `meta l4proto ${r.protocol}`, `ct original proto-dst ${set(r.ports)}`, accept(r)].join(" ")}`,
      );
    lines.push(
      "",
      "\tchain forward {",
      "\t\ttype filter hook forward priority filter; policy accept;",
      "\t\tct state established,related accept",
      ...published,
      '\t\tiifname @internal_ifs ct status dnat counter drop comment "published container port outside the zone policy"',
      "\t}",
    );
  } else {
    lines.push(
      "",
      "\tchain forward {",
      "\t\ttype filter hook forward priority filter; policy drop;",
      ...(isFirewall
        ? [
            "\t\tct state invalid counter drop",
            "\t\tct state established,related accept",
            ...policy.filter((r) => r.forwarded).map((r) => `\t\t${forwardRule(model, r)}`),
            ...dropTail("forward"),
          ]
        : ["\t\t# This host does not route."]),
      "\t}",
    );
  }
  lines.push("}");

  if (isFirewall) {
    const tunnelPorts = [...new Set((options.tunnelPeers ?? []).map((t) => t.listenPort))].sort((a, b) => a - b);
    const partnerExclusion = partners.length > 0 ? " ip daddr != @partner_supernets" : "";
    const declaredNat = model.public.mode === "provider-failover-ips" ? model.public.declared?.nat : undefined;
    // Hetzner Cloud assigns the NAT floating IP at creation: the failover script puts it into this map once it
    // holds it, and until then (or where there is none) outbound NAT takes the member's own address.
    const runtimeNat = model.public.mode === "provider-failover-ips" && !declaredNat && adapterOf(model).failoverIps === "assigned";
    const nat =
      model.public.mode === "own-prefix"
        ? `snat to ${model.public.natAddress} comment "outbound NAT to the own prefix's NAT address"`
        : declaredNat
          ? `snat to ${declaredNat} comment "outbound NAT to the NAT failover IP"`
          : 'masquerade comment "outbound NAT to the provider address"';
    lines.push(
      "",
      "table ip standort_nat",
      "delete table ip standort_nat",
      "",
      "table ip standort_nat {",
      ...namedSet("internal_ifs", "ifname", internal, false),
      ...namedSet("partner_supernets", "ipv4_addr", mergePrefixes(partners.map((p) => p.supernet)), true),
      ...(runtimeNat
        ? [
            "",
            `\t# Filled by the failover script with the NAT floating IP (${NAT_SOURCE_MAP}): the same source on either member.`,
            `\tmap ${NAT_SOURCE_MAP} {`,
            "\t\ttype inet_proto : ipv4_addr",
            "\t}",
          ]
        : []),
      "",
      "\tchain prerouting {",
      "\t\ttype nat hook prerouting priority dstnat; policy accept;",
    );
    const dnat = publicWebDnat(model);
    if (dnat) {
      lines.push(
        `\t\tiifname != @internal_ifs ip daddr ${dnat.address} tcp dport ${set(dnat.ports)} dnat to ${dnat.to} comment "public proxy address to the proxy VIP"`,
      );
    }
    const dns = publicDnsDnat(model);
    if (dns) {
      lines.push(
        `\t\tiifname != @internal_ifs ip daddr ${dns.address} meta l4proto { tcp, udp } th dport ${dns.port} dnat to ${dns.to} comment "public proxy address to the name server on the proxy VIP"`,
      );
    }
    lines.push(
      "\t}",
      "",
      "\tchain postrouting {",
      "\t\ttype nat hook postrouting priority srcnat; policy accept;",
      // Hairpin: a site host (its supernet address or its own uplink) reaching the public proxy address is DNATed
      // back inside; without a new source the proxy would answer it directly (or drop it as its own address)
      // and the connection never completes. The name servers' health checks of their own site take this path.
      ...(dnat
        ? [
            `\t\toifname @internal_ifs ct status dnat ip daddr ${dnat.to} ip saddr ${set([model.supernet, ...model.hosts.flatMap((h) => (h.publicAddress ? [h.publicAddress] : []))])} masquerade comment "hairpin to the public proxy address"`,
          ]
        : []),
      ...(runtimeNat
        ? [
            `\t\toifname != @internal_ifs ip saddr ${model.supernet}${partnerExclusion} snat ip to meta l4proto map @${NAT_SOURCE_MAP} comment "outbound NAT to the NAT floating IP, once held"`,
          ]
        : []),
      `\t\toifname != @internal_ifs ip saddr ${model.supernet}${partnerExclusion} ${nat}`,
      // The tunnels' own datagrams leave from the address partners dial and accept (the endpoint), not from the
      // member's uplink address: the peer's firewall admits tunnel packets from that endpoint only.
      ...(tunnelPorts.length > 0
        ? [
            ...(runtimeNat
              ? [
                  `\t\toifname != @internal_ifs udp sport ${set(tunnelPorts)} snat ip to meta l4proto map @${NAT_SOURCE_MAP} comment "WireGuard from the NAT floating IP, once held"`,
                ]
              : []),
            `\t\toifname != @internal_ifs udp sport ${set(tunnelPorts)} ${nat.replace(/comment ".*"$/, 'comment "WireGuard from the tunnel endpoint"')}`,
          ]
        : []),
      "\t}",
      "}",
    );
  }
  return lines.join("\n") + "\n";
}
