/**
 * systemd-networkd files that create one interface per segment, named by
 * `interfaceName`, carrying the host's address in that segment.
 *
 * Pre-provisioned hosts: a VLAN per segment on the internal NIC
 * (`options.internalNic`, default `eth1`), ids from `vlanId`; where the
 * adapter's VLANs ride on the uplink (`nic: "uplink"`, Hetzner Robot's
 * vSwitch), on the uplink NIC (`options.uplinkNic`, default `eth0`) instead,
 * whose `.network` keeps the address and routes the provider's image
 * configured (`KeepConfiguration=static`) and leaves its MTU and IPv6 alone;
 * only the VLAN links take the provider's MTU.
 * Hetzner Cloud hosts: the private network is routed, not switched, and drops
 * tagged frames, so each segment is an IPVLAN (L2) child of the private NIC
 * instead, holding its address as a /32 (no neighbour is on-link: everything
 * goes through the network's gateway); the components attach the segment
 * addresses to the server (alias IPs). No DHCP: the addresses are the ones
 * the components attach, and the private MTU is Hetzner's 1450.
 * Every segment file carries the host's routes and source rules (`hostRouting`).
 * Otherwise the provider's public NIC is never touched: delivery arrives on it.
 */
import type { SiteModel } from "../model/model";
import { runsConntrackd } from "./conntrackd";
import { ProblemCollector } from "./errors";
import { checkHost, findSegment, interfaceName, nicNames } from "./interfaces";
import { adapterOf } from "../providers/registry";
import { partnerSites } from "./policy";
import { hostRouting, linkPrefixLength } from "./routing";
import type { RenderOptions } from "./types";

export const NETWORKD_DIR = "/etc/systemd/network";

/** One networkd file: its name (inside `/etc/systemd/network`) and content. */
export interface NetworkdFile {
  readonly name: string;
  readonly content: string;
}

function ini(sections: Array<[string, Array<[string, string]>]>): string {
  return sections.map(([name, entries]) => [`[${name}]`, ...entries.map(([k, v]) => `${k}=${v}`)].join("\n")).join("\n\n") + "\n";
}

/**
 * Renders the networkd files of one host, in a stable order: the parent NIC's
 * `.network`, then per segment (in the model's segment order) a `.netdev` and
 * a `.network`. Validates first and throws `RenderInputError` naming site,
 * host, field and rule.
 */
export function renderNetworkdFiles(model: SiteModel, hostName: string, options: RenderOptions = {}): NetworkdFile[] {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  const carrier = adapterOf(model).segments;
  if (host && carrier.kind === "vlans") {
    const ids = new Map<number, string>();
    const [low, high] = carrier.vlanRange;
    for (const iface of host.interfaces) {
      const id = carrier.vlanId(model, iface.segment);
      if (id === undefined || id < low || id > high) {
        problems.add(`segments.${iface.segment}`, `VLAN id ${String(id)} must be between ${low} and ${high}`);
        continue;
      }
      const other = ids.get(id);
      if (other) problems.add(`segments.${iface.segment}`, `VLAN id ${id} is already used by ${other}`);
      ids.set(id, iface.segment);
    }
  }
  const replicates = host?.role !== "firewall" && host?.interfaces.some((i) => i.segment === "app" || i.segment === "data");
  if (host && replicates && !options.sites) {
    problems.add(
      "options.sites",
      `is required for ${host.role} hosts: the routes to the partner ${model.partner}'s supernet come from its model`,
    );
  }
  problems.throwIfAny();
  const h = host!;
  const partners = options.sites ? partnerSites(model, options.sites, options.tunnelPeers).map((p) => p.supernet) : [];
  const routing = hostRouting(model, h.name, partners);
  const ordered = [...h.interfaces].sort(
    (a, b) => model.segments.findIndex((s) => s.name === a.segment) - model.segments.findIndex((s) => s.name === b.segment),
  );
  const routed = carrier.kind === "routed";
  const kind = routed ? "IPVLAN" : "VLAN";
  const mtu = carrier.mtu !== undefined ? ([["MTUBytes", String(carrier.mtu)]] as Array<[string, string]>) : [];
  const header = `# standort: ${h.name} (${model.name}). Rendered from ${model.file}; do not edit.`;
  const segmentLinks = ordered.map((i) => [kind, interfaceName(i.segment)] as [string, string]);
  const files: NetworkdFile[] = [
    carrier.kind === "vlans" && carrier.nic === "uplink"
      ? {
          name: "10-standort-uplink.network",
          content:
            `${header}\n# The uplink NIC: it holds the provider's public address and carries the site's segments too (one VLAN per segment).\n` +
            "# KeepConfiguration=static: the address and routes the provider's image configured stay; its MTU and IPv6 are left alone.\n" +
            ini([
              ["Match", [["Name", nicNames(options).uplink]]],
              ["Network", [["KeepConfiguration", "static"], ["ConfigureWithoutCarrier", "yes"], ...segmentLinks]],
            ]),
        }
      : {
          name: "10-standort-internal.network",
          content:
            `${header}\n# The NIC that carries the site's segments (${routed ? "Hetzner Cloud private network, routed: each segment address is an alias IP" : "one VLAN per segment"}).\n` +
            ini([
              ["Match", [["Name", routed ? carrier.nics.join(" ") : nicNames(options).internal]]],
              ...(mtu.length > 0 ? ([["Link", mtu]] as Array<[string, Array<[string, string]>]>) : []),
              ["Network", [["LinkLocalAddressing", "no"], ["IPv6AcceptRA", "no"], ["ConfigureWithoutCarrier", "yes"], ...segmentLinks]],
            ]),
        },
  ];
  for (const iface of ordered) {
    const name = interfaceName(iface.segment);
    const segment = findSegment(model, iface.segment)!;
    const routes = routing.routes.filter((r) => r.segment === iface.segment);
    const rules = routing.rules.filter((r) => r.segment === iface.segment);
    files.push(
      {
        name: `20-standort-${name}.netdev`,
        content:
          `${header}\n` +
          ini([
            [
              "NetDev",
              [
                ["Name", name],
                ["Kind", routed ? "ipvlan" : "vlan"],
                ["Description", `standort segment ${segment.name} ${segment.cidr}`],
                ...mtu,
              ],
            ],
            carrier.kind === "routed" ? ["IPVLAN", [["Mode", "L2"]]] : ["VLAN", [["Id", String(carrier.vlanId(model, iface.segment))]]],
          ]),
      },
      {
        name: `20-standort-${name}.network`,
        content:
          `${header}\n` +
          (routes.length + rules.length > 0 ? `# Routes and rules: lib/render/routing.ts (hostRouting).\n` : "") +
          ini([
            ["Match", [["Name", name]]],
            [
              "Network",
              [
                ["Address", `${iface.address}/${linkPrefixLength(model, iface.prefixLength)}`],
                ["LinkLocalAddressing", "no"],
                ["IPv6AcceptRA", "no"],
                ["ConfigureWithoutCarrier", "yes"],
              ],
            ],
            ...routes.map((r): [string, Array<[string, string]>] => [
              "Route",
              [
                ...(r.destination !== "0.0.0.0/0" ? ([["Destination", r.destination]] as Array<[string, string]>) : []),
                ["Gateway", r.gateway],
                ...(r.onLink ? ([["GatewayOnLink", "yes"]] as Array<[string, string]>) : []),
                ...(r.table !== undefined ? ([["Table", String(r.table)]] as Array<[string, string]>) : []),
                ...(r.metric !== undefined ? ([["Metric", String(r.metric)]] as Array<[string, string]>) : []),
              ],
            ]),
            ...rules.map((r): [string, Array<[string, string]>] => [
              "RoutingPolicyRule",
              [
                ...(r.from ? ([["From", r.from]] as Array<[string, string]>) : []),
                ["Table", String(r.table)],
                ["Priority", String(r.priority)],
                ...(r.suppressPrefixLength !== undefined
                  ? ([["SuppressPrefixLength", String(r.suppressPrefixLength)]] as Array<[string, string]>)
                  : []),
              ],
            ]),
          ]),
      },
    );
  }
  return files;
}

/**
 * Renders `/etc/sysctl.d/90-standort.conf`: firewalls forward IPv4 (they route
 * between the segments); proxies and storage do not; virtualization hosts
 * leave it to their container runtime. Strict reverse path
 * filtering is left to nftables (`fib`), so the kernel's is loose.
 */
export function renderSysctlConfig(model: SiteModel, hostName: string, options: RenderOptions = {}): string {
  const problems = new ProblemCollector(model.name, hostName);
  const host = checkHost(model, hostName, problems, options);
  problems.throwIfAny();
  const role = host!.role;
  return [
    `# standort: kernel settings of ${hostName} (${model.name}). Rendered; do not edit.`,
    role === "virtualization"
      ? "# Forwarding is left to the container runtime, which turns it on for its bridges."
      : `net.ipv4.ip_forward = ${role === "firewall" ? 1 : 0}`,
    ...(adapterOf(model).segments.kind === "routed" && role === "firewall"
      ? [
          "# Hetzner Cloud: forwarded traffic arrives on the private NIC, which holds no address (its segment links do),",
          "# and the kernel's reverse path check refuses every source on an address-less link. nftables' fib check",
          "# does the reverse path filtering instead.",
          "net.ipv4.conf.all.rp_filter = 0",
          "net.ipv4.conf.default.rp_filter = 0",
        ]
      : ["net.ipv4.conf.all.rp_filter = 2", "net.ipv4.conf.default.rp_filter = 2"]),
    ...(runsConntrackd(model, hostName)
      ? [
          "# conntrackd: a connection seen in mid-stream is not picked up as new; after a takeover it waits for the",
          "# peer's entry (committed from conntrackd's cache), whose NAT a fresh entry would contradict.",
          "net.netfilter.nf_conntrack_tcp_loose = 0",
        ]
      : []),
    "# Answer ARP only for addresses on the asking interface (VIPs move between members).",
    "net.ipv4.conf.all.arp_ignore = 1",
    "net.ipv4.conf.all.arp_announce = 2",
    "",
  ].join("\n");
}
