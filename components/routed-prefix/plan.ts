/**
 * How the site's public addresses reach it, as data: the operator's own /23
 * (announced by BGP from the active firewall, or routed by the provider to a
 * static next hop), or — where the provider cannot route an own prefix —
 * provider-assigned failover IPs. Pure.
 */
import { PairModel, PublicBlocks, SiteModel } from "../../lib/model/model";
import { PairedRole } from "../../lib/model/schema";

export type PrefixMode = "bgp" | "static" | "provider-failover-ips";

/** A public failover address and the pair that holds it. */
export interface PublicAddressPlan {
  /** Stable key: `proxy` (the proxy pair's public address), `nat` (outbound NAT), `prefix-next-hop`. */
  readonly purpose: string;
  readonly holder: PairedRole;
  /** The address where the site plans it; absent where the provider assigns it. */
  readonly address?: string;
  /** The block of the own prefix it lies in. */
  readonly block?: keyof PublicBlocks;
  readonly source: string;
}

export interface BgpAnnouncement {
  readonly localAsn: number;
  readonly peers: ReadonlyArray<{ readonly name: string; readonly address: string; readonly asn: number }>;
  /** Exactly the own prefix; nothing else leaves the site. */
  readonly exports: ReadonlyArray<string>;
  /** Nothing is imported: no route learned from a peer may replace the default route. */
  readonly imports: "none";
  /** The member that announces (the active firewall); the other announces only after a takeover. */
  readonly announcedBy: string;
  readonly standby: string;
}

export interface PrefixPlan {
  readonly mode: PrefixMode;
  /** One plain sentence for the plan. */
  readonly note: string;
  readonly prefix?: string;
  readonly blocks?: PublicBlocks;
  readonly bgp?: BgpAnnouncement;
  /** The provider-side address the prefix is routed to, held by the active firewall. */
  readonly nextHop?: string;
  readonly addresses: ReadonlyArray<PublicAddressPlan>;
}

/**
 * The public plan of a site. `provider` says whether the provider can route
 * an own prefix at all; when it cannot, the own prefix is replaced by
 * provider failover IPs and the note says so.
 */
export function prefixPlan(model: SiteModel, provider: { routable: boolean; how: string }, firewall: PairModel): PrefixPlan {
  const pub = model.public;
  // Pre-provisioned sites declare the failover IPs they were handed; on an API the provider assigns them at creation.
  const declared = pub.mode === "provider-failover-ips" ? pub.declared : undefined;
  const source = declared ? "provider failover IP (site file: public.addresses)" : "provider failover IP";
  const providerIps = (note: string): PrefixPlan => ({
    mode: "provider-failover-ips",
    note,
    addresses: [
      { purpose: "proxy", holder: "proxy", source, ...(declared ? { address: declared.proxy } : {}) },
      { purpose: "nat", holder: "firewall", source, ...(declared ? { address: declared.nat } : {}) },
    ],
  });
  if (pub.mode === "provider-failover-ips") {
    return providerIps(`${model.name} has no own prefix: it uses provider failover IPs (proxy, nat) because ${pub.reason}`);
  }
  if (!provider.routable) {
    return providerIps(
      `${model.name}: ${pub.prefix} cannot be routed here (${provider.how}); it is replaced by provider failover IPs (proxy, nat)`,
    );
  }
  const addresses: PublicAddressPlan[] = [
    // The proxy pair's public address is DNATed by the firewall to the proxy VIP.
    {
      purpose: "proxy",
      holder: "firewall",
      address: pub.proxyAddress,
      block: "failover",
      source: `own prefix, failover block ${pub.blocks.failover}`,
    },
    { purpose: "nat", holder: "firewall", address: pub.natAddress, block: "nat", source: `own prefix, NAT block ${pub.blocks.nat}` },
  ];
  if (pub.routing.kind === "bgp") {
    const bgp: BgpAnnouncement = {
      localAsn: pub.routing.localAsn,
      peers: pub.routing.peers.map((p) => ({ name: p.name, address: p.address, asn: p.asn })),
      exports: [pub.prefix],
      imports: "none",
      announcedBy: firewall.active,
      standby: firewall.passive,
    };
    const peers = bgp.peers.map((p) => `${p.name} (AS${p.asn})`).join(", ");
    return {
      mode: "bgp",
      // The note names no member: a takeover changes priorities, not the sentence.
      note: `${pub.prefix} is announced by BGP (AS${bgp.localAsn}) from the active firewall to ${peers}; only the own prefix is exported, nothing is imported`,
      prefix: pub.prefix,
      blocks: pub.blocks,
      bgp,
      addresses,
    };
  }
  return {
    mode: "static",
    note: `${pub.prefix} is routed by the provider to the static next hop ${pub.routing.nextHop}, held by the active firewall (${provider.how})`,
    prefix: pub.prefix,
    blocks: pub.blocks,
    nextHop: pub.routing.nextHop,
    addresses: [
      ...addresses,
      {
        purpose: "prefix-next-hop",
        holder: "firewall",
        address: pub.routing.nextHop,
        source: "site file: public.routing.nextHop (provider-side)",
      },
    ],
  };
}
