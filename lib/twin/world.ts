/**
 * What the site twin puts around a site: the internet's addresses (a client,
 * the management allowlist's address, the partners' tunnel ends, the provider
 * API), the provider's side of each host's uplink, and the stand-ins for the
 * partner sites. Everything inside the site (segments, addresses, routes,
 * rules) comes from the rendered files; this module only decides what a
 * provider or the internet would hand the site, and says so.
 *
 * Pure: the site models in, the twin's plan of the outside world out.
 */
import type { HostModel, SiteModel } from "../model/model";
import type { Role } from "../model/schema";
import { cidr, containsAddress, formatAddress, formatCidr, hostAddress, parseAddress } from "../net/ipv4";
import { partnerSites } from "../render/policy";
import { NETCUP_MOVE_INTERVAL_SECONDS } from "../providers/netcup";
import { ROBOT_API } from "../providers/hetzner-robot/schema";
import { adapterOf } from "../providers/registry";
import type { TunnelPeer } from "../render/types";

/** The internet client the twin sends customer traffic from (TEST-NET-3, RFC 5737). */
export const INTERNET_CLIENT = "203.0.113.10";
/** A server on the internet that keeps connections open (the long-lived streams through the outbound NAT). */
export const STREAM_SERVER = "203.0.113.20";
/** Its port: HTTPS, which egress allows (`EGRESS.tcp`). */
export const STREAM_PORT = 443;
/** Where the provider API stand-in listens (names of the real APIs resolve to it inside the twin). */
export const PROVIDER_API_ADDRESS = "203.0.113.80";
/** The Hetzner Robot web service's host name (`ROBOT_API` of its adapter). */
export const ROBOT_API_NAME = new URL(ROBOT_API).hostname;
/** Host names of provider APIs the rendered scripts call; they resolve to the stand-in. */
export const PROVIDER_API_NAMES = ["api.hetzner.cloud", "api.ionos.com", ROBOT_API_NAME] as const;
/** The link between the provider's edge and the internet (RFC 6598 shared space: nobody's addresses). */
export const TRANSIT = { provider: "100.64.0.1", internet: "100.64.0.2", prefixLength: 30 } as const;
/** Hetzner Cloud: every server's public gateway, on-link (docs.hetzner.com, "Server configuration"). */
export const HCLOUD_PUBLIC_GATEWAY = "172.31.1.1";
/** Public addresses the Hetzner Cloud stand-in assigns: servers, then floating IPs (benchmarking range, RFC 2544). */
export const HCLOUD_SERVER_POOL = "198.19.90.0/24";
export const HCLOUD_FLOATING_POOL = "198.19.91.0/24";
/**
 * Netcup re-routes a failover IP at most once every 5 minutes (SCP changeIPRouting). Reported, not confirmed
 * by a Netcup page (see PROVIDERS.md): the twin's stand-in refuses a second move of the same address sooner.
 */
export const NETCUP_REROUTE_MIN_INTERVAL_S = NETCUP_MOVE_INTERVAL_SECONDS;
/** Host number of the provider-LAN neighbour: another customer's server next to the site's uplinks. */
export const NEIGHBOUR_HOST = 250;

/** A host's uplink as its provider configures it (not rendered: the provider's image sets it up). */
export interface Uplink {
  readonly address: string;
  readonly prefixLength: number;
  readonly gateway: string;
  /** True when the gateway lies outside the address's prefix (Hetzner Cloud's /32 with an on-link gateway). */
  readonly onLink: boolean;
}

export interface TwinHost {
  readonly name: string;
  readonly role: Role;
  readonly uplink: Uplink;
  /** The NIC that carries the segments, as the rendered networkd files name it. */
  readonly internalNic: string;
  /** Hetzner Cloud: the attachment's IP its DHCP hands out (the host's first segment address). */
  readonly attachment?: string;
}

/** A partner site's tunnel end, as a stand-in: the tunnel interface on the firewalls and the partner's addresses behind it. */
export interface PartnerStandIn {
  readonly site: string;
  /** The tunnel interface name the firewalls' files use (`wg-fkb-vie`). */
  readonly tunnel: string;
  readonly supernet: string;
  /** Addresses of the partner's hosts the stand-in answers for, by the segment they are in at the partner. */
  readonly addresses: Readonly<Record<"data" | "app", string>>;
  /** The partner's tunnel endpoint on the internet, where the site files know it. */
  readonly endpoint?: string;
}

export type ProviderNetwork =
  /** Pre-provisioned: the hosts' uplinks share the provider's LAN; the provider's router is its gateway. */
  | { readonly kind: "lan"; readonly prefix: string; readonly gateways: ReadonlyArray<string>; readonly neighbour: string }
  /** Hetzner Cloud: public /32s behind an on-link gateway, and a routed private network. */
  | {
      readonly kind: "hcloud";
      readonly publicGateway: string;
      /** The private network's router (the network's first address). */
      readonly privateGateway: string;
      readonly network: string;
    };

export interface TwinWorld {
  readonly site: string;
  readonly internetClient: string;
  /** The echo server long-lived streams from inside the site go to (`STREAM_SERVER`). */
  readonly streamServer: string;
  /** One address inside each allowlist prefix, held by the internet namespace. */
  readonly allowlistClients: ReadonlyArray<string>;
  readonly apiAddress: string;
  readonly provider: ProviderNetwork;
  readonly hosts: ReadonlyArray<TwinHost>;
  readonly partners: ReadonlyArray<PartnerStandIn>;
  /** Hetzner Cloud: the floating IPs the stand-in API assigns at creation (pre-provisioned sites declare theirs). */
  readonly failoverIps?: Readonly<{ proxy: string; nat: string }>;
}

/** A problem with a site the twin cannot stand in for; names the file and field. */
export class TwinInputError extends Error {
  constructor(readonly problems: ReadonlyArray<string>) {
    super(problems.join("\n"));
    this.name = "TwinInputError";
  }
}

/** The /24 that holds `address`. */
function slash24(address: string): string {
  return formatCidr({ network: ((parseAddress(address)! >>> 8) << 8) >>> 0, length: 24 });
}

/** An address inside an allowlist prefix: host 10, or the address itself for a /31 or /32. */
export function allowlistClient(prefix: string): string {
  const c = cidr(prefix);
  return c.length >= 31 ? formatAddress(c.network) : formatAddress(hostAddress(c, Math.min(10, 2 ** (32 - c.length) - 2)));
}

function addressIn(host: HostModel, segment: string): string | undefined {
  return host.interfaces.find((i) => i.segment === segment)?.address;
}

/**
 * The outside world of one site's twin.
 * Pre-provisioned: every host's uplink is its site-file address in the /24
 * that holds it, behind the provider's router at the first BGP peer's address
 * or else the /24's first host (the twin's reading of "a handed-over server";
 * the site file gives no netmask). Every provider-side address the site file
 * names (host addresses, next hop, BGP peers, declared failover IPs) must lie
 * in that /24.
 * Hetzner Cloud: public /32 addresses from `HCLOUD_SERVER_POOL` in host order,
 * gateway 172.31.1.1 on-link; the private attachment IP is the host's first
 * segment address (as `serverNetworkPlan` attaches it).
 * @throws TwinInputError when the site's provider-side addresses do not fit
 */
export function twinWorld(model: SiteModel, sites: ReadonlyArray<SiteModel>, tunnelPeers: ReadonlyArray<TunnelPeer>): TwinWorld {
  const problems: string[] = [];
  const allowlistClients = model.management.allowlist.map(allowlistClient);
  let provider: ProviderNetwork;
  let hosts: TwinHost[];
  let failoverIps: { proxy: string; nat: string } | undefined;
  if (adapterOf(model).hosts.kind === "handed-over") {
    const first = model.hosts[0].publicAddress!;
    const lan = slash24(first);
    const named: Array<[string, string]> = model.hosts.map((h, i) => [`provider.hosts[${i}].address`, h.publicAddress!]);
    const pub = model.public;
    if (pub.mode === "own-prefix" && pub.routing.kind === "static") named.push(["public.routing.nextHop", pub.routing.nextHop]);
    if (pub.mode === "own-prefix" && pub.routing.kind === "bgp")
      pub.routing.peers.forEach((p, i) => named.push([`public.routing.peers[${i}].address`, p.address]));
    if (pub.mode === "provider-failover-ips" && pub.declared) {
      named.push(["public.addresses.proxy", pub.declared.proxy], ["public.addresses.nat", pub.declared.nat]);
    }
    for (const [field, address] of named) {
      if (!containsAddress(cidr(lan), parseAddress(address)!)) {
        problems.push(
          `${model.file}: ${field}: ${address} is outside the provider LAN ${lan} the twin builds from ${model.hosts[0].name}'s address`,
        );
      }
    }
    const gateways =
      pub.mode === "own-prefix" && pub.routing.kind === "bgp"
        ? pub.routing.peers.map((p) => p.address)
        : [formatAddress(hostAddress(cidr(lan), 1))];
    const neighbour = formatAddress(hostAddress(cidr(lan), NEIGHBOUR_HOST));
    for (const [field, address] of named) {
      if (address === neighbour) problems.push(`${model.file}: ${field}: ${address} is the twin's LAN neighbour address: use another`);
      if (!field.includes("peers") && gateways.includes(address))
        problems.push(`${model.file}: ${field}: ${address} is the provider's gateway`);
    }
    provider = { kind: "lan", prefix: lan, gateways, neighbour };
    hosts = model.hosts.map((h) => ({
      name: h.name,
      role: h.role,
      uplink: { address: h.publicAddress!, prefixLength: 24, gateway: gateways[0], onLink: false },
      internalNic: "eth1",
    }));
  } else {
    const pool = cidr(HCLOUD_SERVER_POOL);
    provider = {
      kind: "hcloud",
      publicGateway: HCLOUD_PUBLIC_GATEWAY,
      privateGateway: formatAddress(cidr(model.supernet).network + 1),
      network: model.supernet,
    };
    hosts = model.hosts.map((h, i) => ({
      name: h.name,
      role: h.role,
      uplink: { address: formatAddress(hostAddress(pool, 10 + i)), prefixLength: 32, gateway: HCLOUD_PUBLIC_GATEWAY, onLink: true },
      internalNic: "ens10",
      attachment: h.interfaces[0].address,
    }));
    const floating = cidr(HCLOUD_FLOATING_POOL);
    failoverIps = { proxy: formatAddress(hostAddress(floating, 10)), nat: formatAddress(hostAddress(floating, 11)) };
  }
  const partners = partnerSites(model, sites, tunnelPeers).map((p) => {
    const peer = tunnelPeers.find((t) => t.site === p.name);
    const firstOf = (role: Role, segment: string) =>
      p.hosts
        .filter((h) => h.role === role)
        .map((h) => addressIn(h, segment))
        .find((a) => a !== undefined);
    const data = firstOf("storage", "data");
    const app = firstOf("virtualization", "app");
    if (!peer)
      problems.push(
        `${model.file}: partner: ${p.name} has no tunnel to ${model.name} in the footprint (the twin stands in for the tunnel end)`,
      );
    if (!data || !app) problems.push(`${p.file}: provider.hosts: ${p.name} needs a storage host in data and a virtualization host in app`);
    return {
      site: p.name,
      tunnel: peer?.tunnel ?? "",
      supernet: p.supernet,
      addresses: { data: data ?? "", app: app ?? "" },
      ...(peer?.endpoint ? { endpoint: peer.endpoint } : {}),
    };
  });
  if (problems.length > 0) throw new TwinInputError(problems);
  return {
    site: model.name,
    internetClient: INTERNET_CLIENT,
    streamServer: STREAM_SERVER,
    allowlistClients,
    apiAddress: PROVIDER_API_ADDRESS,
    provider,
    hosts,
    partners,
    ...(failoverIps ? { failoverIps } : {}),
  };
}

/**
 * The public address space the provider routes to a site in the twin: the
 * provider LAN's /24 and the own prefix of a pre-provisioned site, or the
 * Hetzner Cloud pools. Another twin's `internet` sends these to this site's
 * (pair mode joins the two `internet` namespaces like two transit networks).
 */
export function publicRanges(model: SiteModel, world: TwinWorld): string[] {
  const ranges = world.provider.kind === "lan" ? [world.provider.prefix] : [HCLOUD_SERVER_POOL, HCLOUD_FLOATING_POOL];
  if (model.public.mode === "own-prefix") ranges.push(model.public.prefix);
  return ranges;
}

/**
 * The address a partner's tunnel reaches this site on in the twin: the site
 * files' endpoint, else the NAT floating IP the stand-in API assigns (what
 * the stack's `tunnelEndpoint` output reports after a deploy).
 */
export function twinTunnelEndpoint(model: SiteModel, world: TwinWorld): string | undefined {
  if (model.public.mode === "own-prefix") return model.public.natAddress;
  return model.public.declared?.nat ?? world.failoverIps?.nat;
}
