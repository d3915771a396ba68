/**
 * How a host's packets leave it: one pure function owns the routes and
 * policy rules every renderer and the twin read (`hostRouting`).
 *
 * Pre-provisioned hosts keep the provider's default route on their uplink
 * (delivery arrives there, and the host's own public address answers through
 * it). Inside the site:
 * - the supernet and the partner supernets go through the gateway of the
 *   host's own segment (its role's first segment: proxy dmz, virtualization
 *   app, storage data), the firewall pair's VIP, so segments reach each other
 *   only through the edge firewall and its zone policy;
 * - whatever leaves from a segment address (a reply to a customer the
 *   firewall forwarded to a proxy, a probe bound to the app address) goes
 *   back through that segment's gateway: a rule `from <segment> lookup
 *   <table>` after `lookup main suppress_prefixlength 0` (main without its
 *   default route), so replies take the path their request came on
 *   (symmetric routing through the stateful firewall).
 * The firewalls are the gateways: they route with what they hold.
 *
 * Hetzner Cloud is routed, not switched (docs.hetzner.com, Networks,
 * "Architecture": a cloud server reaches every other address through the
 * network's gateway, the first address of its range). Each segment address is
 * a /32 on its segment link, and every route goes through that gateway
 * on-link; there is no on-link neighbour. The network's own route 0.0.0.0/0
 * leads to the firewall pair, so the source rules send a segment's traffic to
 * Hetzner's gateway, not to the firewall directly.
 */
import type { SiteModel } from "../model/model";
import { ROLE_SEGMENTS } from "../model/model";
import { vlanId } from "./interfaces";
import { adapterOf } from "../providers/registry";

/** Routing table of a segment's source rule: 1000 plus the segment's VLAN id (dmz 1010, app 1020, data 1030, mgmt 1040). */
export const SEGMENT_TABLE_BASE = 1000;
/** Priority of the rule that consults the main table without its default route, before the source rules. */
export const MAIN_WITHOUT_DEFAULT_PRIORITY = 1000;
/** Priority of a segment's source rule: this base plus its table's offset. */
export const SEGMENT_RULE_PRIORITY_BASE = 1100;

export interface HostRoute {
  /** The segment whose link carries the route. */
  readonly segment: string;
  /** A CIDR; `0.0.0.0/0` for a default route. */
  readonly destination: string;
  readonly gateway: string;
  /** The gateway is reached on the link although no connected prefix holds it (Hetzner Cloud). */
  readonly onLink: boolean;
  /** A numbered table, or the main table when absent. */
  readonly table?: number;
  /** Order among routes to the same destination (Hetzner Cloud: one per segment link, the host's own segment first). */
  readonly metric?: number;
}

export interface HostRule {
  /** The segment whose network file carries the rule. */
  readonly segment: string;
  readonly from?: string;
  readonly table: number | "main";
  readonly priority: number;
  readonly suppressPrefixLength?: number;
}

export interface HostRouting {
  readonly routes: ReadonlyArray<HostRoute>;
  readonly rules: ReadonlyArray<HostRule>;
}

/**
 * The prefix length an address gets on its segment link: the segment's own,
 * except on Hetzner Cloud, where nothing is on-link and every address is a
 * /32 (VIPs too: keepalived adds them the same way).
 */
export function linkPrefixLength(model: SiteModel, segmentPrefixLength: number): number {
  return adapterOf(model).segments.kind === "routed" ? 32 : segmentPrefixLength;
}

/**
 * The routes and rules of one host (see the module comment).
 * @param partnerSupernets the supernets the host replicates with (partner sites, tunnel peers), in order
 * @throws Error when the host is not part of the model
 */
export function hostRouting(model: SiteModel, hostName: string, partnerSupernets: ReadonlyArray<string>): HostRouting {
  const host = model.hosts.find((h) => h.name === hostName);
  if (!host) throw new Error(`${hostName} is not a host of ${model.name}`);
  const carrier = adapterOf(model).segments;
  const routed = host.interfaces
    .map((i) => model.segments.find((s) => s.name === i.segment)!)
    .filter((s) => s.kind !== "heartbeat" || carrier.kind === "routed");
  const own = ROLE_SEGMENTS[host.role].map((n) => routed.find((s) => s.name === n)).find((s) => s !== undefined) ?? routed[0];
  const replicates = host.interfaces.some((i) => i.segment === "app" || i.segment === "data");
  const destinations = [model.supernet, ...(replicates ? partnerSupernets : [])];
  const routes: HostRoute[] = [];
  const rules: HostRule[] = [];
  const table = (segment: string) => SEGMENT_TABLE_BASE + (vlanId(model, segment) ?? 0);
  // Whatever leaves from a segment's addresses takes that segment's way out, after the main table without its default.
  const sourceRouting = (
    first: string,
    segments: ReadonlyArray<{ name: string; cidr: string }>,
    gatewayOf: (s: string) => string,
    onLink: boolean,
  ) => {
    rules.push({ segment: first, table: "main", priority: MAIN_WITHOUT_DEFAULT_PRIORITY, suppressPrefixLength: 0 });
    for (const s of segments) {
      routes.push({ segment: s.name, destination: "0.0.0.0/0", gateway: gatewayOf(s.name), onLink, table: table(s.name) });
      rules.push({
        segment: s.name,
        from: s.cidr,
        table: table(s.name),
        priority: SEGMENT_RULE_PRIORITY_BASE + table(s.name) - SEGMENT_TABLE_BASE,
      });
    }
  };

  if (carrier.kind === "routed") {
    const gateway = carrier.gateway(model);
    // Every segment link routes the network through Hetzner's gateway: a socket bound to one link (VRRP on the
    // heartbeat) finds its route there. The host's own segment has the lowest metric, so it is the default choice.
    const ordered = own ? [own, ...routed.filter((s) => s !== own)] : routed;
    ordered.forEach((s, i) => {
      for (const destination of s === own ? destinations : [model.supernet]) {
        routes.push({ segment: s.name, destination, gateway, onLink: true, metric: 100 + i });
      }
      // Traffic to a segment stays on that segment's link, from its address, as on a VLAN: the pair's heartbeat
      // (the failover script's echo requests and conntrackd's sync do not bind the link as VRRP does), and every
      // peer in mgmt (Alertmanager's gossip, Prometheus' scrapes), which the zone policy admits from mgmt
      // addresses only. By the host's own segment they would leave from its address there and be dropped.
      routes.push({ segment: s.name, destination: s.cidr, gateway, onLink: true, metric: 100 + i });
    });
    // The firewalls forward: a source rule would send what they route back into the network.
    if (host.role !== "firewall")
      sourceRouting(
        ordered[0].name,
        ordered.filter((x) => x.kind !== "heartbeat"),
        () => gateway,
        true,
      );
    return { routes, rules };
  }

  if (host.role === "firewall" || !own?.gateway) return { routes, rules };
  for (const destination of destinations) routes.push({ segment: own.name, destination, gateway: own.gateway, onLink: false });
  sourceRouting(
    own.name,
    routed.filter((s) => s.gateway !== undefined),
    (name) => routed.find((s) => s.name === name)!.gateway!,
    false,
  );
  return { routes, rules };
}
