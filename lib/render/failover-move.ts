/**
 * What a pair moves at the provider when a member becomes master (a failover
 * IP, the static next hop of an own prefix, or nothing): the one fact the
 * failover script, the drain and the twin read.
 */
import type { SiteModel } from "../model/model";
import type { PairedRole } from "../model/schema";

/** What the failover script moves when its host becomes master. */
export type FailoverMove =
  | { readonly kind: "none" }
  /** A provider failover IP named `<site>-<purpose>` (Hetzner Cloud floating IP name), or given in provider.env. */
  | {
      readonly kind: "failover-ip";
      readonly purpose: "proxy" | "nat";
      readonly name: string;
      /** The address, where the site file declares it (pre-provisioned); Hetzner Cloud assigns it at creation. */
      readonly address?: string;
    }
  /** The provider-side address an own prefix is statically routed to. */
  | { readonly kind: "next-hop"; readonly address: string };

/**
 * What a pair moves on takeover: on provider-failover-ips sites the proxy pair
 * takes the `proxy` IP and the firewall pair the `nat` IP; on own-prefix sites
 * with a static route the firewall pair takes the next hop; BGP needs no move.
 */
export function failoverMove(model: SiteModel, role: PairedRole): FailoverMove {
  if (model.public.mode === "provider-failover-ips") {
    const purpose = role === "proxy" ? "proxy" : role === "firewall" ? "nat" : undefined;
    if (!purpose) return { kind: "none" };
    const address = model.public.declared?.[purpose];
    return { kind: "failover-ip", purpose, name: failoverIpName(model, purpose), ...(address ? { address } : {}) };
  }
  if (role === "firewall" && model.public.routing.kind === "static") return { kind: "next-hop", address: model.public.routing.nextHop };
  return { kind: "none" };
}

/** Name of a provider failover IP (the Hetzner Cloud floating IP the provisioning component creates): `<site>-<purpose>`. */
export function failoverIpName(model: SiteModel, purpose: "proxy" | "nat"): string {
  return `${model.name}-${purpose}`;
}
