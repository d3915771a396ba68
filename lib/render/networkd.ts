/**
 * systemd-networkd files that create one interface per segment, named by
 * `interfaceName`, carrying the host's address in that segment.
 *
 * Pre-provisioned hosts: a VLAN per segment on the internal NIC
 * (`options.internalNic`, default `eth1`), ids from `vlanId`.
 * Hetzner Cloud hosts: the private network is routed, not switched, and drops
 * tagged frames, so each segment is an IPVLAN (L2) child of the private NIC
 * instead; the components attach the segment addresses to the server (alias
 * IPs). The provider's public NIC is never touched: delivery arrives on it.
 */
import type { SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { HCLOUD_PRIVATE_NICS, checkHost, findSegment, interfaceName, nicNames, vlanId } from "./interfaces";
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
  const hcloud = model.provider.kind === "hcloud";
  if (host && !hcloud) {
    const ids = new Map<number, string>();
    for (const iface of host.interfaces) {
      const id = vlanId(model, iface.segment);
      if (id === undefined || id < 1 || id > 4094) {
        problems.add(`segments.${iface.segment}`, `VLAN id ${String(id)} must be between 1 and 4094`);
        continue;
      }
      const other = ids.get(id);
      if (other) problems.add(`segments.${iface.segment}`, `VLAN id ${id} is already used by ${other}`);
      ids.set(id, iface.segment);
    }
  }
  problems.throwIfAny();
  const h = host!;
  const ordered = [...h.interfaces].sort(
    (a, b) => model.segments.findIndex((s) => s.name === a.segment) - model.segments.findIndex((s) => s.name === b.segment),
  );
  const kind = hcloud ? "IPVLAN" : "VLAN";
  const parent = hcloud ? HCLOUD_PRIVATE_NICS.join(" ") : nicNames(options).internal;
  const header = `# standort: ${h.name} (${model.name}). Rendered from ${model.file}; do not edit.`;
  const files: NetworkdFile[] = [
    {
      name: "10-standort-internal.network",
      content:
        `${header}\n# The NIC that carries the site's segments (${hcloud ? "Hetzner Cloud private network" : "one VLAN per segment"}).\n` +
        ini([
          ["Match", [["Name", parent]]],
          [
            "Network",
            [
              ...(hcloud ? ([["DHCP", "ipv4"]] as Array<[string, string]>) : [["LinkLocalAddressing", "no"] as [string, string]]),
              ["IPv6AcceptRA", "no"],
              ["ConfigureWithoutCarrier", "yes"],
              ...ordered.map((i) => [kind, interfaceName(i.segment)] as [string, string]),
            ],
          ],
        ]),
    },
  ];
  for (const iface of ordered) {
    const name = interfaceName(iface.segment);
    const segment = findSegment(model, iface.segment)!;
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
                ["Kind", hcloud ? "ipvlan" : "vlan"],
                ["Description", `standort segment ${segment.name} ${segment.cidr}`],
              ],
            ],
            hcloud ? ["IPVLAN", [["Mode", "L2"]]] : ["VLAN", [["Id", String(vlanId(model, iface.segment))]]],
          ]),
      },
      {
        name: `20-standort-${name}.network`,
        content:
          `${header}\n` +
          ini([
            ["Match", [["Name", name]]],
            [
              "Network",
              [
                ["Address", `${iface.address}/${iface.prefixLength}`],
                ["LinkLocalAddressing", "no"],
                ["IPv6AcceptRA", "no"],
                ["ConfigureWithoutCarrier", "yes"],
              ],
            ],
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
    "net.ipv4.conf.all.rp_filter = 2",
    "net.ipv4.conf.default.rp_filter = 2",
    "# Answer ARP only for addresses on the asking interface (VIPs move between members).",
    "net.ipv4.conf.all.arp_ignore = 1",
    "net.ipv4.conf.all.arp_announce = 2",
    "",
  ].join("\n");
}
