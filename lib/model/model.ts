/**
 * The site model: everything a stack, a renderer or a policy needs to know
 * about a location, computed once from its validated site file. Pure: no
 * Pulumi, no I/O. Address assignment follows fixed offsets per role so that a
 * host's address depends only on its role and ordinal, never on list order.
 */
import {
  Cidr,
  carveFirstFit,
  cidr,
  containsAddress,
  formatAddress,
  formatCidr,
  hostAddress,
  lastAddress,
  parseAddress,
  subnets,
  usableRange,
} from "../net/ipv4";
import { HEARTBEAT_SEGMENTS, PAIRED_ROLES, PairedRole, Role, STANDARD_SEGMENTS, SiteFile, shown } from "./schema";
import { adapterOf } from "../providers/registry";

/** Short role names used in host names: `<code>-<short>-<n>`. */
export const ROLE_SHORT: Record<Role, string> = { firewall: "fw", proxy: "proxy", virtualization: "virt", storage: "stor" };

/**
 * Host numbers inside every non-heartbeat segment. The firewall pair's VIP is
 * the segment gateway; the other pairs' VIPs sit below the first member hosts.
 */
export const HOST_OFFSETS = {
  gatewayVip: 1,
  firewall: 2,
  proxyVip: 4,
  storageVip: 5,
  proxy: 10,
  storage: 20,
  virtualization: 32,
} as const;

/** The segments each role's hosts join (the firewall joins every segment). */
export const ROLE_SEGMENTS: Record<Role, ReadonlyArray<string>> = {
  firewall: STANDARD_SEGMENTS,
  proxy: ["dmz", "mgmt"],
  virtualization: ["app", "mgmt"],
  storage: ["data", "mgmt"],
};

/** Where each pair's service address lives. */
export const PAIR_VIP: Record<PairedRole, { segments: "all-routed" | ReadonlyArray<string>; offset: number }> = {
  firewall: { segments: "all-routed", offset: HOST_OFFSETS.gatewayVip },
  proxy: { segments: ["dmz"], offset: HOST_OFFSETS.proxyVip },
  storage: { segments: ["data"], offset: HOST_OFFSETS.storageVip },
};

export const VRRP_PRIORITY = { active: 150, passive: 100 } as const;

export interface SegmentPlan {
  readonly name: string;
  readonly kind: "standard" | "heartbeat" | "extra";
  readonly cidr: string;
  readonly prefixLength: number;
  /** The firewall pair's VIP in the segment; heartbeat segments are not routed and have none. */
  readonly gateway?: string;
  readonly firstUsable: string;
  readonly lastUsable: string;
  readonly usable: number;
  readonly members: ReadonlyArray<Role>;
  /** For a heartbeat segment: the pair it carries. */
  readonly cluster?: PairedRole;
}

export interface HostInterface {
  readonly segment: string;
  readonly address: string;
  readonly prefixLength: number;
}

export interface HostModel {
  readonly name: string;
  readonly role: Role;
  readonly ordinal: number;
  /** Physical machine for pre-provisioned hosts; the spread placement group for API-provisioned ones. */
  readonly physical: string;
  /** Provider-assigned address of a pre-provisioned host; API-provisioned hosts learn theirs at creation. */
  readonly publicAddress?: string;
  readonly interfaces: ReadonlyArray<HostInterface>;
}

export interface Vip {
  readonly segment: string;
  readonly address: string;
  readonly prefixLength: number;
}

export interface PairModel {
  readonly role: PairedRole;
  /** Stable key: `<code>-<role>`. */
  readonly name: string;
  readonly members: readonly [string, string];
  readonly active: string;
  readonly passive: string;
  readonly dissolved: boolean;
  readonly heartbeatSegment: string;
  readonly heartbeat: Readonly<Record<string, string>>;
  /**
   * Each member's address in `mgmt`: the pair's second VRRP path (a takeover
   * needs the peer silent on both the heartbeat and mgmt) and the path the
   * fence takes to the peer.
   */
  readonly mgmt: Readonly<Record<string, string>>;
  readonly vips: ReadonlyArray<Vip>;
  readonly vrid: number;
  readonly priorities: Readonly<Record<string, number>>;
}

export interface PublicBlocks {
  readonly failover: string;
  readonly nat: string;
  readonly reserve: string;
  readonly services: string;
}

export type PublicPlan =
  | {
      readonly mode: "own-prefix";
      readonly prefix: string;
      readonly routing: Extract<SiteFile["public"], { mode: "own-prefix" }>["routing"];
      readonly blocks: PublicBlocks;
      /** Public failover address of the proxy pair (DNAT to the proxy VIP). */
      readonly proxyAddress: string;
      /** Source address of outbound NAT. */
      readonly natAddress: string;
    }
  | {
      readonly mode: "provider-failover-ips";
      readonly reason: string;
      readonly failoverIps: ReadonlyArray<"proxy" | "nat">;
      /** Addresses the provider handed over (pre-provisioned sites); absent where an API assigns them at creation. */
      readonly declared?: Readonly<{ proxy: string; nat: string }>;
    };

export interface SiteModel {
  readonly file: string;
  readonly name: string;
  readonly code: string;
  readonly country: string;
  /** The site that stands by for this one and that it replicates to (its own partner). */
  readonly partner: string;
  /** The other sites this one stands by for (each names it as partner); `partnersOf` joins both directions. */
  readonly standbyFor: ReadonlyArray<string>;
  readonly provider: SiteFile["provider"];
  readonly supernet: string;
  readonly segments: ReadonlyArray<SegmentPlan>;
  readonly hosts: ReadonlyArray<HostModel>;
  readonly pairs: ReadonlyArray<PairModel>;
  readonly public: PublicPlan;
  readonly virtualization: SiteFile["roles"]["virtualization"];
  readonly storage: SiteFile["storage"] & { readonly capacityGb: number; readonly dataDisk?: string };
  readonly management: SiteFile["management"];
  readonly time: SiteFile["time"];
}

/** A problem in one site file: the field path and the rule broken. */
export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

interface SegmentRequest {
  name: string;
  kind: SegmentPlan["kind"];
  prefixLength: number;
  members: Role[];
  cluster?: PairedRole;
  sizePath: string;
}

/**
 * The ordered list of segments a site carves. Order is the contract that keeps
 * addresses stable: standard segments, then one heartbeat per pair, then the
 * site's extra segments in file order. New entries only ever append.
 */
export function segmentRequests(site: SiteFile): SegmentRequest[] {
  const standard = STANDARD_SEGMENTS.map((name) => ({
    name,
    kind: "standard" as const,
    prefixLength: site.network.sizes[name],
    members: (Object.keys(ROLE_SEGMENTS) as Role[]).filter((r) => ROLE_SEGMENTS[r].includes(name)),
    sizePath: `network.sizes.${name}`,
  }));
  const heartbeats = PAIRED_ROLES.map((role) => ({
    name: HEARTBEAT_SEGMENTS[role],
    kind: "heartbeat" as const,
    prefixLength: site.network.sizes.heartbeat,
    members: [role],
    cluster: role,
    sizePath: "network.sizes.heartbeat",
  }));
  const extras = site.network.extraSegments.map((s, i) => ({
    name: s.name,
    kind: "extra" as const,
    prefixLength: s.prefixLength,
    members: [...new Set<Role>(["firewall", ...s.members])],
    sizePath: `network.extraSegments[${i}].prefixLength`,
  }));
  return [...standard, ...heartbeats, ...extras];
}

/** Addresses of the supernet the provider keeps for itself (its adapter's `reservedAddresses`). */
export function providerReserved(site: SiteFile): Cidr[] {
  return adapterOf(site).reservedAddresses(site);
}

/** Carves the site's segments from its supernet, first-fit in request order, around provider-reserved addresses. */
export function carveSegments(site: SiteFile): { segments: SegmentPlan[]; problems: FieldProblem[] } {
  const supernet = cidr(site.network.supernet);
  const requests = segmentRequests(site);
  const carved = carveFirstFit(
    supernet,
    requests.map((r) => r.prefixLength),
    providerReserved(site),
  );
  const problems: FieldProblem[] = [];
  const segments: SegmentPlan[] = [];
  requests.forEach((request, i) => {
    const c = carved[i];
    if (!c) {
      problems.push({
        path: request.sizePath,
        message: `segment ${request.name} (/${request.prefixLength}) no longer fits in the supernet ${site.network.supernet}: use a larger supernet or smaller segments`,
      });
      return;
    }
    const range = usableRange(c);
    segments.push({
      name: request.name,
      kind: request.kind,
      cidr: formatCidr(c),
      prefixLength: c.length,
      gateway: request.kind === "heartbeat" ? undefined : formatAddress(hostAddress(c, HOST_OFFSETS.gatewayVip)),
      firstUsable: formatAddress(range.first),
      lastUsable: formatAddress(range.last),
      usable: range.count,
      members: request.members,
      cluster: request.cluster,
    });
  });
  return { segments, problems };
}

/** Splits an own /23 into its blocks: failover /26, NAT /26, reserve /25, services /24. */
export function splitPublicPrefix(prefix: string): PublicBlocks {
  const [low, high] = subnets(cidr(prefix), 24);
  const [lowHalf, reserve] = subnets(low, 25);
  const [failover, nat] = subnets(lowHalf, 26);
  return { failover: formatCidr(failover), nat: formatCidr(nat), reserve: formatCidr(reserve), services: formatCidr(high) };
}

interface HostSeed {
  name: string;
  role: Role;
  ordinal: number;
  physical: string;
  publicAddress?: string;
  pinned: Record<string, string>;
  path: string;
}

const HOST_NAME = /^([a-z]{3})-(fw|proxy|virt|stor)-([1-9]\d{0,2})$/;

function hostSeeds(site: SiteFile): { seeds: HostSeed[]; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const origin = adapterOf(site).hosts;
  if (origin.kind === "created") {
    const counts: Record<Role, number> = { firewall: 2, proxy: 2, storage: 2, virtualization: site.roles.virtualization.count };
    const seeds = (Object.keys(counts) as Role[]).flatMap((role) =>
      Array.from({ length: counts[role] }, (_, i) => ({
        name: `${site.code}-${ROLE_SHORT[role]}-${i + 1}`,
        role,
        ordinal: i + 1,
        physical: origin.physical(role, i + 1),
        pinned: {},
        path: `roles.${role}`,
      })),
    );
    return { seeds, problems };
  }
  const seeds: HostSeed[] = [];
  origin.hosts(site.provider).forEach((host, i) => {
    const path = `provider.hosts[${i}]`;
    const match = HOST_NAME.exec(host.name);
    const short = ROLE_SHORT[host.role];
    if (!match || match[1] !== site.code || match[2] !== short) {
      problems.push({ path: `${path}.name`, message: `${host.name} must be named ${site.code}-${short}-<n> (site code, role, number)` });
      return;
    }
    seeds.push({
      name: host.name,
      role: host.role,
      ordinal: Number(match[3]),
      physical: host.physical,
      publicAddress: host.address,
      pinned: host.segments ?? {},
      path,
    });
  });
  // Pair and pool checks only make sense once every name parses.
  if (problems.length > 0) return { seeds, problems };
  for (const role of PAIRED_ROLES) {
    const members = seeds
      .filter((s) => s.role === role)
      .map((s) => s.ordinal)
      .sort();
    if (members.join(",") !== "1,2") {
      problems.push({
        path: "provider.hosts",
        message: `the ${role} pair needs exactly two hosts, ${site.code}-${ROLE_SHORT[role]}-1 and ${site.code}-${ROLE_SHORT[role]}-2 (found ${members.length})`,
      });
    }
  }
  if (!seeds.some((s) => s.role === "virtualization")) {
    problems.push({ path: "provider.hosts", message: `at least one virtualization host (${site.code}-virt-1) is needed` });
  }
  return { seeds, problems };
}

/** The address a host pins in a segment, if it pins one (an own key only: a segment may be named `constructor`). */
function pinnedIn(seed: HostSeed, segment: string): string | undefined {
  return Object.hasOwn(seed.pinned, segment) ? seed.pinned[segment] : undefined;
}

/** The host number a host takes in a segment: its ordinal on heartbeats, role offset + ordinal elsewhere. */
function hostNumber(segment: SegmentPlan, seed: Pick<HostSeed, "role" | "ordinal">): number {
  return segment.kind === "heartbeat" ? seed.ordinal : HOST_OFFSETS[seed.role] + seed.ordinal - 1;
}

/** One problem per segment too small for the hosts that join it, naming the size that fits. */
function capacityProblems(site: SiteFile, segments: ReadonlyArray<SegmentPlan>, seeds: ReadonlyArray<HostSeed>): FieldProblem[] {
  return segments.flatMap((segment) => {
    const needing = seeds.filter((seed) => segment.members.includes(seed.role) && pinnedIn(seed, segment.name) === undefined);
    const over = needing.filter((seed) => hostNumber(segment, seed) > segment.usable);
    if (over.length === 0) return [];
    const highest = Math.max(...over.map((seed) => hostNumber(segment, seed)));
    const fits = 32 - Math.ceil(Math.log2(highest + 2));
    const extraIndex = site.network.extraSegments.findIndex((e) => e.name === segment.name);
    const path =
      segment.kind === "extra"
        ? `network.extraSegments[${extraIndex}].prefixLength`
        : `network.sizes.${segment.kind === "heartbeat" ? "heartbeat" : segment.name}`;
    const names = over.length === 1 ? over[0].name : `${over[0].name} … ${over[over.length - 1].name}`;
    return [
      {
        path,
        message: `segment ${segment.name} (${segment.cidr}) has ${segment.usable} usable addresses but ${names} need host numbers up to ${highest}: use a /${fits} or larger`,
      },
    ];
  });
}

/**
 * The service addresses of a pair: host `PAIR_VIP[role].offset` of each
 * segment the pair serves (the firewall pair: every routed segment, where its
 * VIP is the gateway). The one place that derives them.
 */
export function pairVips(role: PairedRole, segments: ReadonlyArray<SegmentPlan>): Vip[] {
  const spec = PAIR_VIP[role];
  return segments
    .filter((s) =>
      spec.segments === "all-routed" ? s.kind !== "heartbeat" && s.members.includes("firewall") : spec.segments.includes(s.name),
    )
    .map((s) => ({ segment: s.name, address: formatAddress(hostAddress(cidr(s.cidr), spec.offset)), prefixLength: s.prefixLength }));
}

/** Why a pinned address cannot be a host's address in `segment`: outside it, or its network or broadcast address. */
function pinnedAddressProblem(pinned: string, segment: SegmentPlan): string | undefined {
  const c = cidr(segment.cidr);
  const address = parseAddress(pinned)!;
  if (!containsAddress(c, address)) return `${pinned} is outside segment ${segment.name} (${segment.cidr})`;
  if (c.length < 31 && (address === c.network || address === lastAddress(c))) {
    const which = address === c.network ? "network" : "broadcast";
    return `${pinned} is the ${which} address of segment ${segment.name} (${segment.cidr}): pin a host address from ${segment.firstUsable} to ${segment.lastUsable}`;
  }
  return undefined;
}

/** A record key as a path part: `.key`, or `["key"]` when it is not a plain name. */
function formatKey(key: string): string {
  return /^[A-Za-z_][\w-]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/**
 * Builds the site model. Returns problems instead of throwing so that the
 * caller can report every problem of every file at once.
 */
export function buildSiteModel(file: string, site: SiteFile): { model?: SiteModel; problems: FieldProblem[] } {
  const { segments, problems } = carveSegments(site);
  const seeded = hostSeeds(site);
  problems.push(...seeded.problems);
  if (problems.length > 0) return { problems };

  const hosts: HostModel[] = [];
  problems.push(...capacityProblems(site, segments, seeded.seeds));

  // Every address a host would take, pinned or planned. Planned addresses and the
  // pairs' VIPs are the plan's own: a pinned address that collides with one is the
  // problem, reported at the pinned field whatever the order of the hosts.
  const reserved = new Map<string, string>();
  for (const role of PAIRED_ROLES) {
    for (const vip of pairVips(role, segments)) {
      const gateway = role === "firewall" ? " (the segment's gateway)" : "";
      reserved.set(vip.address, `the ${role} pair's VIP in ${vip.segment}${gateway}`);
    }
  }
  const planned: Array<{ seed: HostSeed; segment: SegmentPlan; text?: string; pinned: boolean }> = [];
  for (const seed of seeded.seeds) {
    const joined = segments.filter((s) => s.members.includes(seed.role));
    for (const segmentName of Object.keys(seed.pinned)) {
      if (!joined.some((s) => s.name === segmentName)) {
        problems.push({
          path: `${seed.path}.segments${formatKey(segmentName)}`,
          message: `${seed.name} (${seed.role}) does not join segment ${shown(segmentName)}: it joins ${joined.map((s) => s.name).join(", ")}`,
        });
      }
    }
    for (const segment of joined) {
      const pinned = pinnedIn(seed, segment.name);
      if (pinned === undefined) {
        const n = hostNumber(segment, seed);
        // Capacity problems are reported once per segment above.
        planned.push({
          seed,
          segment,
          pinned: false,
          text: n > segment.usable ? undefined : formatAddress(hostAddress(cidr(segment.cidr), n)),
        });
        continue;
      }
      const problem = pinnedAddressProblem(pinned, segment);
      if (problem) problems.push({ path: `${seed.path}.segments.${segment.name}`, message: problem });
      planned.push({ seed, segment, pinned: true, text: problem ? undefined : pinned });
    }
  }
  const holders = new Map<string, string>();
  for (const entry of [...planned.filter((p) => !p.pinned), ...planned.filter((p) => p.pinned)]) {
    if (entry.text === undefined) continue;
    const path = `${entry.seed.path}.segments.${entry.segment.name}`;
    const what = reserved.get(entry.text);
    const holder = holders.get(entry.text);
    if (entry.pinned && what) {
      problems.push({ path, message: `${entry.text} is ${what}: pin another address to ${entry.seed.name}` });
      entry.text = undefined;
    } else if (holder) {
      problems.push({ path, message: `${entry.text} is already used by ${holder}` });
      entry.text = undefined;
    } else holders.set(entry.text, entry.seed.name);
  }
  for (const seed of seeded.seeds) {
    hosts.push({
      name: seed.name,
      role: seed.role,
      ordinal: seed.ordinal,
      physical: seed.physical,
      publicAddress: seed.publicAddress,
      interfaces: planned
        .filter((p) => p.seed === seed && p.text !== undefined)
        .map((p) => ({ segment: p.segment.name, address: p.text!, prefixLength: p.segment.prefixLength })),
    });
  }

  const pairs: PairModel[] = PAIRED_ROLES.map((role, i) => {
    const [first, second] = hosts.filter((h) => h.role === role).sort((a, b) => a.ordinal - b.ordinal);
    const setting = site.pairs[role];
    const active = setting.active === 1 ? first : second;
    const passive = setting.active === 1 ? second : first;
    if (adapterOf(site).hosts.kind === "handed-over" && first.physical === second.physical) {
      problems.push({
        path: "provider.hosts",
        message: `${first.name} and ${second.name} form the ${role} pair but share physical machine ${first.physical}: place them on separate machines`,
      });
    }
    const heartbeatSegment = HEARTBEAT_SEGMENTS[role];
    const vips = pairVips(role, segments);
    const interfaceIn = (h: HostModel, segment = heartbeatSegment) => h.interfaces.find((x) => x.segment === segment)?.address ?? "";
    return {
      role,
      name: `${site.code}-${role}`,
      members: [first.name, second.name] as const,
      active: active.name,
      passive: passive.name,
      dissolved: setting.dissolved,
      heartbeatSegment,
      heartbeat: { [first.name]: interfaceIn(first), [second.name]: interfaceIn(second) },
      mgmt: { [first.name]: interfaceIn(first, "mgmt"), [second.name]: interfaceIn(second, "mgmt") },
      vips,
      vrid: site.vrrpIdBase + i,
      priorities: setting.dissolved
        ? { [active.name]: VRRP_PRIORITY.active }
        : { [active.name]: VRRP_PRIORITY.active, [passive.name]: VRRP_PRIORITY.passive },
    };
  });

  const publicPlan: PublicPlan =
    site.public.mode === "own-prefix"
      ? (() => {
          const blocks = splitPublicPrefix(site.public.prefix);
          return {
            mode: "own-prefix" as const,
            prefix: site.public.prefix,
            routing: site.public.routing,
            blocks,
            proxyAddress: formatAddress(hostAddress(cidr(blocks.failover), 1)),
            natAddress: formatAddress(hostAddress(cidr(blocks.nat), 1)),
          };
        })()
      : {
          mode: "provider-failover-ips" as const,
          reason: site.public.reason,
          failoverIps: ["proxy", "nat"] as const,
          ...(site.public.addresses ? { declared: site.public.addresses } : {}),
        };

  if (problems.length > 0) return { problems };
  return {
    problems,
    model: {
      file,
      name: site.name,
      code: site.code,
      country: site.country,
      partner: site.partner,
      standbyFor: site.standbyFor,
      provider: site.provider,
      supernet: site.network.supernet,
      segments,
      hosts,
      pairs,
      public: publicPlan,
      virtualization: site.roles.virtualization,
      storage: {
        ...site.storage,
        capacityGb: site.roles.storage.capacityGb,
        ...(site.roles.storage.dataDisk ? { dataDisk: site.roles.storage.dataDisk } : {}),
      },
      management: site.management,
      time: site.time,
    },
  };
}

/** One row of the address plan table a plan prints. */
export interface AddressPlanRow {
  readonly segment: string;
  readonly cidr: string;
  readonly gateway: string;
  readonly firstUsable: string;
  readonly lastUsable: string;
  readonly vips: string;
}

export function addressPlan(model: SiteModel): AddressPlanRow[] {
  return model.segments.map((s) => ({
    segment: s.name,
    cidr: s.cidr,
    gateway: s.gateway ?? "-",
    firstUsable: s.firstUsable,
    lastUsable: s.lastUsable,
    vips: model.pairs.flatMap((p) => p.vips.filter((v) => v.segment === s.name).map((v) => `${v.address} (${p.role})`)).join(", ") || "-",
  }));
}
