/**
 * One naming scheme for segment interfaces, shared by networkd (which creates
 * them), keepalived (which puts VIPs on them) and nftables (which matches on
 * them). Also the lookups and input checks every host renderer starts with.
 */
import type { HostModel, PairModel, SegmentPlan, SiteModel } from "../model/model";
import { cidr, containsAddress, parseAddress } from "../net/ipv4";
import { ProblemCollector } from "./errors";
import { adapterOf } from "../providers/registry";
import { standardVlanId } from "../providers/vlans";
import type { RenderOptions } from "./types";

/** Linux limits interface names to 15 characters (IFNAMSIZ 16 with the terminator). */
export const MAX_INTERFACE_NAME = 15;

/** FNV-1a, 32 bit: a tiny stable hash so that long names shorten the same way everywhere. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/**
 * The interface name of a segment on every host: the segment name itself
 * (`dmz`, `hb-proxy`), so rules and logs read like the plan. Names longer than
 * Linux allows are shortened to their first 10 characters, a dash and four hex
 * digits of a hash of the full name; the result depends only on the name.
 */
export function interfaceName(segment: string): string {
  if (segment.length <= MAX_INTERFACE_NAME) return segment;
  const hash = (fnv1a(segment) & 0xffff).toString(16).padStart(4, "0");
  return `${segment.slice(0, 10)}-${hash}`;
}

/**
 * The VLAN id of a segment (also the number of its routing table): the
 * provider adapter's where its segments are VLANs, else the standard
 * numbering (`lib/providers/vlans.ts`). Undefined for a segment the model lacks.
 */
export function vlanId(model: SiteModel, segment: string): number | undefined {
  const carrier = adapterOf(model).segments;
  return carrier.kind === "vlans" ? carrier.vlanId(model, segment) : standardVlanId(model, segment);
}

/** The options' NIC names with their defaults applied. */
export function nicNames(options: RenderOptions = {}): { internal: string; uplink: string } {
  return { internal: options.internalNic ?? "eth1", uplink: options.uplinkNic ?? "eth0" };
}

export function findHost(model: SiteModel, hostName: string): HostModel | undefined {
  return model.hosts.find((h) => h.name === hostName);
}

export function findSegment(model: SiteModel, name: string): SegmentPlan | undefined {
  return model.segments.find((s) => s.name === name);
}

/** The pair a host belongs to, if its role is paired. */
export function pairOf(model: SiteModel, hostName: string): PairModel | undefined {
  return model.pairs.find((p) => p.members.includes(hostName));
}

/** The host's address in a segment, if it joins it. */
export function addressIn(host: HostModel, segment: string): string | undefined {
  return host.interfaces.find((i) => i.segment === segment)?.address;
}

/** True when `address` is an IPv4 address inside the prefix `prefix`. */
export function inPrefix(address: string, prefix: string): boolean {
  const a = parseAddress(address);
  return a !== undefined && containsAddress(cidr(prefix), a);
}

const NIC_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/;

/**
 * Checks what every host renderer relies on: the host exists, its interfaces
 * lie in their segments, and the interface names are valid, distinct and do
 * not clash with the host's own NICs. Records problems on `problems` and
 * returns the host when it exists.
 */
export function checkHost(
  model: SiteModel,
  hostName: string,
  problems: ProblemCollector,
  options: RenderOptions = {},
): HostModel | undefined {
  const hostIndex = model.hosts.findIndex((h) => h.name === hostName);
  if (hostIndex < 0) {
    problems.add("hostName", `${hostName} is not a host of ${model.name} (hosts: ${model.hosts.map((h) => h.name).join(", ")})`);
    return undefined;
  }
  const host = model.hosts[hostIndex];
  const nics = nicNames(options);
  for (const [key, value] of [
    ["options.internalNic", nics.internal],
    ["options.uplinkNic", nics.uplink],
  ] as const) {
    if (!NIC_NAME.test(value))
      problems.add(key, `${JSON.stringify(value)} is not a valid interface name (1–15 letters, digits, '_', '.', '-')`);
  }
  const carrier = adapterOf(model).segments;
  const reserved = new Set(["lo", nics.internal, nics.uplink, ...(carrier.kind === "routed" ? carrier.nics : [])]);
  const seen = new Map<string, string>();
  host.interfaces.forEach((iface, i) => {
    const field = `hosts[${hostIndex}].interfaces[${i}]`;
    const segment = findSegment(model, iface.segment);
    if (!segment) {
      problems.add(`${field}.segment`, `${iface.segment} is not a segment of ${model.name}`);
      return;
    }
    if (parseAddress(iface.address) === undefined) {
      problems.add(`${field}.address`, `${iface.address} is not an IPv4 address`);
    } else if (!inPrefix(iface.address, segment.cidr)) {
      problems.add(`${field}.address`, `${iface.address} is outside segment ${segment.name} (${segment.cidr})`);
    }
    if (iface.prefixLength !== segment.prefixLength) {
      problems.add(`${field}.prefixLength`, `/${iface.prefixLength} does not match segment ${segment.name} (${segment.cidr})`);
    }
    const name = interfaceName(iface.segment);
    if (reserved.has(name)) {
      problems.add(
        `${field}.segment`,
        `segment ${iface.segment} would be interface ${name}, which is a NIC of the host: rename the segment`,
      );
    }
    const other = seen.get(name);
    if (other) problems.add(`${field}.segment`, `segments ${other} and ${iface.segment} would share interface name ${name}: rename one`);
    seen.set(name, iface.segment);
  });
  return host;
}
