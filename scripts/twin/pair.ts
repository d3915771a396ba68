/**
 * The pair twin: two partner locations booted together, each as the site
 * twin boots one (`site.ts`), their `internet` namespaces joined by one link
 * as two transit networks are, and the tunnel between them real: each
 * firewall runs Debian's `wireguard-go` (this kernel has no WireGuard module)
 * with its rendered file given to `wg setconf` unchanged. The keys are
 * generated here the way the stack generates them (32 random bytes per end,
 * 32 for the preshared key, `components/site-tunnels`), and each end is
 * rendered by `renderTunnelEnd` with the peer's public key and endpoint,
 * as the second deploy of a partner pair renders it.
 */
import { randomBytes } from "node:crypto";
import { loadFootprint } from "../../lib/footprint/load";
import { TunnelPlan, renderTunnelEnd, siteTunnels, wireguardPublicKey } from "../../lib/footprint/wireguard";
import type { SiteModel } from "../../lib/model/model";
import { siteRenderOptions } from "../../lib/preview/files";
import { stackProviderEnv } from "../../lib/preview/run-stack";
import { TwinInputError, publicRanges, twinTunnelEndpoint, twinWorld } from "../../lib/twin/world";
import { cidr, overlaps } from "../../lib/net/ipv4";
import { SiteTwin } from "./site";
import { veth } from "./links";
import { must } from "./machine";

/** The link joining the two `internet` namespaces (shared address space, RFC 6598, next to the twin's transit /30). */
export const JOIN = { a: "100.64.0.5", b: "100.64.0.6", prefixLength: 30 } as const;

export interface PairOptions {
  readonly location: string;
  readonly partner: string;
  readonly sitesDir?: string;
  readonly log?: (line: string) => void;
}

/** The tunnel between the two locations, with each end's file as the firewalls boot it. */
export interface PairTunnel {
  readonly plan: TunnelPlan;
  /** `/etc/wireguard/<name>.conf` content by site name (secret: never printed). */
  readonly files: Readonly<Record<string, string>>;
  /** Public key by site name. */
  readonly publicKeys: Readonly<Record<string, string>>;
}

/**
 * Both ends of the tunnel between `a` and `b`, keys generated.
 * @throws TwinInputError when the footprint plans no tunnel between them
 */
export function pairTunnel(
  a: SiteModel,
  b: SiteModel,
  sites: ReadonlyArray<SiteModel>,
  footprint: Parameters<typeof siteTunnels>[0],
  endpoints: Readonly<Record<string, string | undefined>>,
): PairTunnel {
  const plan = siteTunnels(footprint, sites, a.name).find((t) => t.ends.some((e) => e.site === b.name));
  if (!plan)
    throw new TwinInputError([
      `twin: partner: ${a.name} and ${b.name} have no tunnel between them (partners in the site files, or a migration in the footprint, plan one)`,
    ]);
  const privateKeys = { [a.name]: randomBytes(32).toString("base64"), [b.name]: randomBytes(32).toString("base64") };
  const publicKeys = Object.fromEntries(Object.entries(privateKeys).map(([s, k]) => [s, wireguardPublicKey(k)]));
  const presharedKey = randomBytes(32).toString("base64");
  const files: Record<string, string> = {};
  for (const [site, peer] of [
    [a.name, b.name],
    [b.name, a.name],
  ]) {
    const peerEndpoint = endpoints[peer];
    files[site] = renderTunnelEnd(plan, site, {
      privateKey: privateKeys[site],
      peerPublicKey: publicKeys[peer],
      presharedKey,
      ...(peerEndpoint ? { peerEndpoint } : {}),
    });
  }
  return { plan, files, publicKeys };
}

/** Two partner site twins, joined. */
export class PairTwin {
  private constructor(
    readonly a: SiteTwin,
    readonly b: SiteTwin,
    readonly tunnel: PairTunnel,
  ) {}

  /** Boots both locations (one after the other: two cores) and joins them; on any failure both are removed. */
  static async boot(options: PairOptions): Promise<PairTwin> {
    const log = options.log ?? (() => undefined);
    const { sites, footprint } = loadFootprint(options.sitesDir);
    const model = (name: string, field: string) => {
      const m = sites.find((s) => s.name === name);
      if (!m) throw new TwinInputError([`twin: ${field}: ${name} has no site file (known: ${sites.map((s) => s.name).join(", ")})`]);
      return m;
    };
    const a = model(options.location, "location");
    const b = model(options.partner, "partner");
    if (a.name === b.name) throw new TwinInputError([`twin: partner: ${b.name} is the location itself`]);
    const world = (m: SiteModel) => twinWorld(m, sites, siteRenderOptions(m, sites, footprint, stackProviderEnv(m.name)).tunnelPeers);
    const worlds = { [a.name]: world(a), [b.name]: world(b) };
    const ranges = Object.fromEntries([a, b].map((m) => [m.name, publicRanges(m, worlds[m.name])]));
    for (const x of ranges[a.name])
      for (const y of ranges[b.name])
        if (overlaps(cidr(x), cidr(y)))
          throw new TwinInputError([
            `twin: partner: ${a.name}'s public range ${x} overlaps ${b.name}'s ${y} in the twin (two Hetzner Cloud sites share the stand-in's pools; pair them with a pre-provisioned site)`,
          ]);
    const endpoints = Object.fromEntries([a, b].map((m) => [m.name, twinTunnelEndpoint(m, worlds[m.name])]));
    const tunnel = pairTunnel(a, b, sites, footprint, endpoints);
    const path = `/etc/wireguard/${tunnel.plan.name}.conf`;
    // One seed for both sites: each credential has one value, as if both stacks had run and read each other.
    const credentialSeed = randomBytes(16).toString("hex");
    let first: SiteTwin | undefined;
    let second: SiteTwin | undefined;
    try {
      first = await SiteTwin.boot({
        location: a.name,
        sitesDir: options.sitesDir,
        id: "a",
        joined: { sites: [b.name], firewallFiles: { [path]: tunnel.files[a.name] }, credentialSeed },
        log: (l) => log(`${a.name}: ${l}`),
      });
      second = await SiteTwin.boot({
        location: b.name,
        sitesDir: options.sitesDir,
        id: "b",
        joined: { sites: [a.name], firewallFiles: { [path]: tunnel.files[b.name] }, credentialSeed },
        log: (l) => log(`${b.name}: ${l}`),
      });
      const pair = new PairTwin(first, second, tunnel);
      pair.join(ranges[a.name], ranges[b.name]);
      log(`joined: ${a.name}'s internet routes ${ranges[b.name].join(", ")} to ${b.name}'s, and back ${ranges[a.name].join(", ")}`);
      return pair;
    } catch (error) {
      second?.destroy();
      first?.destroy();
      throw error;
    }
  }

  private ranges: { a: ReadonlyArray<string>; b: ReadonlyArray<string> } = { a: [], b: [] };

  /**
   * Cuts the link between the two internets (each site then reaches only its own side), or restores it with the
   * routes over it (a link going down takes its routes along, in both namespaces).
   */
  setJoined(up: boolean): void {
    const na = this.a.machine("internet").ns;
    const nb = this.b.machine("internet").ns;
    must(["ip", "-n", na, "link", "set", "peer", up ? "up" : "down"]);
    if (!up) return;
    for (const r of this.ranges.b) must(["ip", "-n", na, "route", "replace", r, "via", JOIN.b]);
    for (const r of this.ranges.a) must(["ip", "-n", nb, "route", "replace", r, "via", JOIN.a]);
  }

  /** One link between the two `internet` namespaces; each routes the other's public ranges over it. */
  private join(rangesA: ReadonlyArray<string>, rangesB: ReadonlyArray<string>): void {
    this.ranges = { a: rangesA, b: rangesB };
    const na = this.a.machine("internet").ns;
    const nb = this.b.machine("internet").ns;
    veth(na, "peer", nb, "peer");
    const sh = (ns: string, address: string, via: string, ranges: ReadonlyArray<string>) =>
      [
        ["ip", "-n", ns, "addr", "add", `${address}/${JOIN.prefixLength}`, "dev", "peer"],
        ["ip", "-n", ns, "link", "set", "peer", "up"],
        ...ranges.map((r) => ["ip", "-n", ns, "route", "add", r, "via", via]),
        ["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
      ] as const;
    for (const argv of [...sh(na, JOIN.a, JOIN.b, rangesB), ...sh(nb, JOIN.b, JOIN.a, rangesA)]) must(argv);
  }

  /** The twin of a site of the pair. */
  twin(site: string): SiteTwin {
    if (this.a.model.name === site) return this.a;
    if (this.b.model.name === site) return this.b;
    throw new Error(`the pair twin has no site ${site}`);
  }

  /** Removes both twins. Synchronous and idempotent. */
  destroy(): void {
    this.b.destroy();
    this.a.destroy();
  }
}
