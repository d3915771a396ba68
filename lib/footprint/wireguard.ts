/**
 * Site-to-site WireGuard tunnels between the firewall pairs of two sites.
 *
 * A tunnel exists between partner sites (each site file names its partner;
 * a site that stands by for several has one tunnel to each)
 * and, for as long as a migration lasts, between the old and the new site of
 * a moving service. It carries only the two sites' internal supernets: each
 * side's AllowedIPs is exactly the other side's supernet, so WireGuard itself
 * drops anything else in both directions (cryptokey routing).
 *
 * The tunnel runs on the active firewall; both members share its keys so the
 * peer keeps talking to the failover address after a takeover. Keys never
 * appear here: the renderer takes them as arguments and the plan fills in
 * placeholders that name the stack secret to use. Pure.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { cidr } from "../net/ipv4";
import type { TunnelPeer } from "../render/types";
import { SiteModel } from "../model/model";
import { partnersOf } from "../model/partners";
import { Footprint } from "./schema";
import { placeAll, siteIndex } from "./placement";

/** Why a tunnel exists. */
export type TunnelPurpose = "partner" | "migration";

export interface TunnelEnd {
  readonly site: string;
  readonly code: string;
  readonly supernet: string;
  /** UDP port this end listens on: derived from the peer's supernet so adding a tunnel never moves another. */
  readonly listenPort: number;
  /**
   * Where the peer reaches this end: the site's outbound NAT address when it
   * routes an own prefix, otherwise its provider failover IP, which is only
   * known after the stack has run (a placeholder naming it).
   */
  readonly endpoint: string;
}

export interface TunnelPlan {
  /** `wg-<code>-<code>`, codes in site-name order: stable and at most 15 characters (an interface name). */
  readonly name: string;
  readonly purpose: TunnelPurpose;
  readonly ends: readonly [TunnelEnd, TunnelEnd];
  /** Rendered wg-quick configuration per site name. */
  readonly configs: Readonly<Record<string, string>>;
}

/** Secrets of one end, supplied at deploy time; the plan uses placeholders. */
export interface TunnelKeys {
  readonly privateKey: string;
  readonly peerPublicKey: string;
  readonly presharedKey: string;
}

/**
 * Listen port for traffic from a peer: 40000 plus the peer supernet's
 * /20-block number within its private range. Distinct for every private /20,
 * so two tunnels of one site never collide and none moves when one is added.
 */
export function listenPortFor(peerSupernet: string): number {
  return 40000 + ((cidr(peerSupernet).network >>> 12) & 0x3fff);
}

/**
 * The address a partner reaches a site's firewall pair on, where the site
 * files say it: the NAT address of an own prefix, or the NAT failover IP a
 * provider handed over. Undefined where an API assigns it at creation: the
 * partner then reads it from the site's stack (`tunnelEndpoint` output).
 */
export function knownEndpoint(site: SiteModel): string | undefined {
  if (site.public.mode === "own-prefix") return site.public.natAddress;
  return site.public.declared?.nat;
}

/** The endpoint for the plan: the known address, or a placeholder naming where it comes from. */
export function tunnelEndpoint(site: SiteModel): string {
  return knownEndpoint(site) ?? `(failover IP nat of ${site.name}, known after deploy)`;
}

/** DER prefix of a PKCS#8 X25519 private key; the 32 key bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * The WireGuard public key of a base64 private key (what `wg pubkey` prints):
 * X25519 of the clamped scalar with the base point, base64. Pure, so the key
 * pair can come from 32 random bytes of the random provider.
 */
export function wireguardPublicKey(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64, "base64");
  if (raw.length !== 32) throw new Error(`a WireGuard private key is 32 bytes, got ${raw.length}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32).toString("base64");
}

/** The keys and peer facts one end needs at deployment; the peer's part is absent until its stack has run. */
export interface TunnelEndSecrets {
  readonly privateKey: string;
  readonly presharedKey?: string;
  readonly peerPublicKey?: string;
  /** Overrides the peer end's planned endpoint (an address its stack reported). */
  readonly peerEndpoint?: string;
}

/**
 * The deployed configuration of `siteName`'s end of a tunnel. Until the peer's
 * stack has published its public key (and, for the second end, the preshared
 * key), the file holds the interface only: a valid configuration that waits,
 * so the first of two sites can be deployed alone and the tunnel comes up when
 * the second one runs and the first one is applied again.
 */
export function renderTunnelEnd(
  tunnel: Pick<TunnelPlan, "name" | "purpose" | "ends">,
  siteName: string,
  secrets: TunnelEndSecrets,
): string {
  const local = tunnel.ends.find((e) => e.site === siteName);
  const peer = tunnel.ends.find((e) => e.site !== siteName);
  if (!local || !peer) throw new Error(`${tunnel.name} has no end at ${siteName}`);
  const endpoint = secrets.peerEndpoint ?? knownEndpointOf(peer);
  if (secrets.peerPublicKey === undefined || secrets.presharedKey === undefined || endpoint === undefined) {
    const missing = [
      secrets.peerPublicKey === undefined ? "public key" : undefined,
      secrets.presharedKey === undefined ? "preshared key" : undefined,
      endpoint === undefined ? "endpoint" : undefined,
    ].filter(Boolean);
    return [
      `# ${tunnel.name}: ${tunnel.purpose} tunnel ${local.site} (${local.supernet}) <-> ${peer.site} (${peer.supernet})`,
      "# Generated by standort from the site files and sites/footprint.yaml: do not edit.",
      `# Waiting for ${peer.site}: its stack has not published the tunnel's ${missing.join(", ")} yet.`,
      `# Deploy ${peer.site}, then this site again; the [Peer] section appears then.`,
      "[Interface]",
      `ListenPort = ${local.listenPort}`,
      `PrivateKey = ${secrets.privateKey}`,
      "",
    ].join("\n");
  }
  return renderWireGuardConfig(
    tunnel,
    local,
    { ...peer, endpoint },
    {
      privateKey: secrets.privateKey,
      peerPublicKey: secrets.peerPublicKey,
      presharedKey: secrets.presharedKey,
    },
  );
}

/** A planned endpoint that is an address, not a placeholder. */
function knownEndpointOf(end: TunnelEnd): string | undefined {
  return end.endpoint.startsWith("(") ? undefined : end.endpoint;
}

/** Placeholders the plan renders instead of keys: they name the secret to supply. */
export function placeholderKeys(tunnel: string, site: string, peer: string): TunnelKeys {
  return {
    privateKey: `(secret: standort:wireguard.${tunnel}.${site}.privateKey)`,
    peerPublicKey: `(public key of ${peer} in ${tunnel})`,
    presharedKey: `(secret: standort:wireguard.${tunnel}.presharedKey)`,
  };
}

/** Renders the wg-quick configuration of one end of a tunnel. */
export function renderWireGuardConfig(
  tunnel: Pick<TunnelPlan, "name" | "purpose">,
  local: TunnelEnd,
  peer: TunnelEnd,
  keys: TunnelKeys,
): string {
  return [
    `# ${tunnel.name}: ${tunnel.purpose} tunnel ${local.site} (${local.supernet}) <-> ${peer.site} (${peer.supernet})`,
    "# Generated by standort from the site files and sites/footprint.yaml: do not edit.",
    "# No tunnel addresses: forwarded traffic keeps its source in the local supernet,",
    "# and AllowedIPs admits only the peer's supernet, so nothing else crosses.",
    "[Interface]",
    `ListenPort = ${local.listenPort}`,
    `PrivateKey = ${keys.privateKey}`,
    "",
    "[Peer]",
    `# ${peer.site}`,
    `PublicKey = ${keys.peerPublicKey}`,
    `PresharedKey = ${keys.presharedKey}`,
    `Endpoint = ${peer.endpoint}:${peer.listenPort}`,
    `AllowedIPs = ${peer.supernet}`,
    // Keeps NAT and provider state tables open so that either side can start a copy.
    "PersistentKeepalive = 25",
    "",
  ].join("\n");
}

export interface ParsedWireGuardPeer {
  readonly publicKey?: string;
  readonly endpoint?: string;
  readonly allowedIps: ReadonlyArray<string>;
}

export interface ParsedWireGuardConfig {
  readonly listenPort?: number;
  readonly addresses: ReadonlyArray<string>;
  readonly peers: ReadonlyArray<ParsedWireGuardPeer>;
}

/**
 * Parses wg-quick configuration text: sections, `Key = value` lines, comments.
 * Repeated AllowedIPs / Address lines accumulate, as wg-quick does.
 */
export function parseWireGuardConfig(text: string): ParsedWireGuardConfig {
  let listenPort: number | undefined;
  const addresses: string[] = [];
  const peers: Array<{ publicKey?: string; endpoint?: string; allowedIps: string[] }> = [];
  let section: "interface" | "peer" | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    if (/^\[interface\]$/i.test(line)) {
      section = "interface";
      continue;
    }
    if (/^\[peer\]$/i.test(line)) {
      section = "peer";
      peers.push({ allowedIps: [] });
      continue;
    }
    const match = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (!match || !section) continue;
    const key = match[1].toLowerCase();
    const list = () =>
      match[2]
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "");
    if (section === "interface") {
      if (key === "listenport") listenPort = Number(match[2]);
      if (key === "address") addresses.push(...list());
    } else {
      const peer = peers[peers.length - 1];
      if (key === "publickey") peer.publicKey = match[2];
      if (key === "endpoint") peer.endpoint = match[2];
      if (key === "allowedips") peer.allowedIps.push(...list());
    }
  }
  return { listenPort, addresses, peers };
}

/** `wg-<code>-<code>`, codes in site-name order: the same name from either end, at most 15 characters (an interface name). */
export function tunnelName(x: SiteModel, y: SiteModel): string {
  const [a, b] = [x, y].sort((p, q) => p.name.localeCompare(q.name));
  return `wg-${a.code}-${b.code}`;
}

/** Renders a tunnel between two sites, ends in site-name order. */
export function planTunnel(x: SiteModel, y: SiteModel, purpose: TunnelPurpose): TunnelPlan {
  const [a, b] = [x, y].sort((p, q) => p.name.localeCompare(q.name));
  const end = (site: SiteModel, peer: SiteModel): TunnelEnd => ({
    site: site.name,
    code: site.code,
    supernet: site.supernet,
    listenPort: listenPortFor(peer.supernet),
    endpoint: tunnelEndpoint(site),
  });
  const ends = [end(a, b), end(b, a)] as const;
  const name = tunnelName(a, b);
  const configs = {
    [a.name]: renderWireGuardConfig({ name, purpose }, ends[0], ends[1], placeholderKeys(name, a.name, b.name)),
    [b.name]: renderWireGuardConfig({ name, purpose }, ends[1], ends[0], placeholderKeys(name, b.name, a.name)),
  };
  return { name, purpose, ends, configs };
}

/** The unordered key of a site pair. */
export function pairKey(a: string, b: string): string {
  return [a, b].sort().join("|");
}

/**
 * Every tunnel: one per pair of partners (`partnersOf`: a site that stands by
 * for several has one to each), plus one per migration between sites that are
 * not partners. Sorted by name.
 */
export function planTunnels(footprint: Footprint, sites: ReadonlyArray<SiteModel>): TunnelPlan[] {
  const index = siteIndex(sites);
  const planned = new Map<string, TunnelPlan>();
  for (const site of sites) {
    for (const partner of partnersOf(site, sites)) {
      const key = pairKey(site.name, partner.name);
      if (!planned.has(key)) planned.set(key, planTunnel(site, partner, "partner"));
    }
  }
  for (const placement of placeAll(footprint, sites)) {
    for (const path of placement.paths.filter((p) => p.purpose === "migration")) {
      const from = index.get(path.from);
      const to = index.get(path.to);
      if (!from || !to || from.name === to.name) continue;
      const key = pairKey(from.name, to.name);
      if (!planned.has(key)) planned.set(key, planTunnel(from, to, "migration"));
    }
  }
  return [...planned.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The tunnels a site terminates on its firewall pair. */
export function siteTunnels(footprint: Footprint, sites: ReadonlyArray<SiteModel>, siteName: string): TunnelPlan[] {
  return planTunnels(footprint, sites).filter((t) => t.ends.some((e) => e.site === siteName));
}

/**
 * The tunnels of a site as its packet filters see them: the peer, the port
 * this site listens on, and the peer's endpoint where the site files know it.
 */
export function tunnelPeers(tunnels: ReadonlyArray<TunnelPlan>, siteName: string): TunnelPeer[] {
  return tunnels.flatMap((t) => {
    const local = t.ends.find((e) => e.site === siteName);
    const peer = t.ends.find((e) => e.site !== siteName);
    if (!local || !peer) return [];
    const endpoint = peer.endpoint.startsWith("(") ? undefined : peer.endpoint;
    return [{ site: peer.site, tunnel: t.name, listenPort: local.listenPort, ...(endpoint ? { endpoint } : {}) }];
  });
}
