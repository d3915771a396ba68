/**
 * The reachability probes of the site twin, derived from the zone policy
 * (`zonePolicy`), never written by hand: one probe per allow rule and
 * destination that must pass, and probes for zone pairs and ports no rule
 * allows that must be blocked. A small evaluator reads the policy for a
 * concrete flow (source address, destination address, protocol, port) and
 * names the rule that allows it, independently of nftables, so the twin
 * compares what the policy says with what the booted site does.
 *
 * Pure: the site model, its policy, its services and the twin's world in,
 * probes out (stable order and ids, so two runs compare line by line).
 */
import type { SiteModel } from "../model/model";
import { adapterOf } from "../providers/registry";
import type { Role } from "../model/schema";
import { cidr, containsAddress, parseAddress } from "../net/ipv4";
import { EGRESS, NFS_PORT, SSH_PORT, ZoneRule, publicDnsDnat, publicWebDnat } from "../render/policy";
import type { ProxiedService } from "../render/types";
import type { TwinWorld } from "./world";

/** One probe as the probe runner executes it inside a machine. */
export interface ProbeAction {
  readonly id: string;
  readonly protocol: "tcp" | "udp" | "icmp" | "tls" | "http";
  /** Local address to send from; absent: the kernel picks. */
  readonly source?: string;
  readonly target: string;
  readonly port?: number;
  /** TLS SNI (tls) or Host header (http). */
  readonly sni?: string;
  readonly timeoutMs: number;
}

/** What came back. */
export interface ProbeOutcome {
  readonly id: string;
  readonly result: "answered" | "refused" | "timeout" | "unreachable" | "error";
  readonly answer?: string;
  readonly ms: number;
}

/** Where a probe starts or ends. */
export interface Endpoint {
  /** The twin machine holding the address: a host name, `internet`, `neighbour`, `provider` or `partner-<site>`. */
  readonly machine: string;
  readonly address: string;
  readonly kind: "site" | "vip" | "public" | "dnat" | "internet" | "allowlist" | "neighbour" | "partner" | "bgp-peer";
  readonly label: string;
  /** The site host whose own address this is (site and public addresses). */
  readonly host?: string;
  /** The role of the host or pair holding the address. */
  readonly role?: Role;
  /** The segment the address lies in (site addresses and VIPs). */
  readonly segment?: string;
  /** Every segment the host of a site address joins (it sends to them directly, not through the firewall). */
  readonly joins?: ReadonlyArray<string>;
  /** Pair members that may hold a VIP. */
  readonly holders?: ReadonlyArray<string>;
  readonly partner?: string;
}

export type Protocol = "tcp" | "udp" | "icmp";

/** A flow the evaluator judges. */
export interface Flow {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly protocol: Protocol;
  readonly port?: number;
}

/** A probe of the reachability scenario. */
export interface Probe {
  readonly id: string;
  readonly expect: "pass" | "blocked";
  /** The allow rule a passing probe exercises; for a blocked probe, none. */
  readonly rule?: string;
  /** Why a blocked probe must be blocked, or what a passing one proves. */
  readonly reason: string;
  /** The machine the probe runs in. */
  readonly machine: string;
  readonly action: ProbeAction;
  /** Hosts one of which must answer (stand-ins and sshd name their host). */
  readonly answerFrom?: ReadonlyArray<string>;
  /** Source address the answering stand-in must have seen (outbound NAT). */
  readonly seenAs?: string;
  /** Access mode the backend must report (`rw` on 8443, `ro` on 8444). */
  readonly mode?: string;
  /** For blocked probes: an allowed probe shares its source and destination, so the path itself works. */
  readonly controlled?: boolean;
  /**
   * For blocked probes that pass the edge firewall: the hosts the packet must never reach (the destination,
   * or the members that may hold its VIP). Seen there, the edge let through what the policy denies.
   */
  readonly stoppedBefore?: ReadonlyArray<string>;
}

/** A check that is not a packet: a pair's VRRP election, a BGP session, connection tracking state synchronised between firewalls. */
export interface StateCheck {
  readonly id: string;
  readonly rule: string;
  readonly kind: "vrrp" | "bgp" | "conntrack-sync" | "dns" | "alertmanager-cluster";
  /** The pair (vrrp, conntrack-sync), the BGP peer name (bgp), the transport (dns: `udp` or `tcp`). */
  readonly subject: string;
  readonly reason: string;
}

/** The port stand-ins listen on for rules that allow any protocol (the discard port, RFC 863). */
export const ANY_PROTOCOL_PROBE_PORT = 9;
export const ALLOWED_TIMEOUT_MS = 3_000;
export const BLOCKED_TIMEOUT_MS = 1_500;

/** Ports tried for blocked probes, most telling first: each is allowed somewhere in the standard policy. */
export const DENIED_TCP_CATALOGUE = [SSH_PORT, 443, 80, NFS_PORT, 3306, 5432, 8443, 8444, 8404, 6443, 179, 25, 3389] as const;

const inPrefix = (address: string, prefix: string) => containsAddress(cidr(prefix), parseAddress(address)!);

/** Every address the twin can probe from or to, in a stable order. */
export function endpoints(model: SiteModel, world: TwinWorld, sites: ReadonlyArray<SiteModel>): Endpoint[] {
  const out: Endpoint[] = [];
  for (const h of model.hosts) {
    for (const i of h.interfaces) {
      out.push({
        machine: h.name,
        address: i.address,
        kind: "site",
        label: `${h.name} ${i.segment}`,
        host: h.name,
        role: h.role,
        segment: i.segment,
        joins: h.interfaces.map((x) => x.segment),
      });
    }
  }
  for (const p of model.pairs) {
    for (const v of p.vips) {
      out.push({
        machine: p.active,
        address: v.address,
        kind: "vip",
        label: `${p.role} VIP ${v.segment}`,
        role: p.role,
        segment: v.segment,
        holders: p.members,
      });
    }
  }
  for (const h of world.hosts) {
    out.push({ machine: h.name, address: h.uplink.address, kind: "public", label: `${h.name} public`, host: h.name, role: h.role });
  }
  const dnat = publicWebDnat(model);
  if (dnat) out.push({ machine: "provider", address: dnat.address, kind: "dnat", label: "public proxy address" });
  const failoverIps = model.public.mode === "provider-failover-ips" ? (model.public.declared ?? world.failoverIps) : undefined;
  for (const [purpose, address] of Object.entries(failoverIps ?? {})) {
    const role: Role = purpose === "proxy" ? "proxy" : "firewall";
    const pair = model.pairs.find((p) => p.role === role)!;
    out.push({ machine: pair.active, address, kind: "vip", label: `${purpose} failover IP`, role, holders: pair.members });
  }
  out.push({ machine: "internet", address: world.internetClient, kind: "internet", label: "internet client" });
  world.allowlistClients.forEach((a) => out.push({ machine: "internet", address: a, kind: "allowlist", label: `allowlist ${a}` }));
  if (world.provider.kind === "lan") {
    out.push({ machine: "neighbour", address: world.provider.neighbour, kind: "neighbour", label: "provider-LAN neighbour" });
  }
  for (const p of world.partners) {
    out.push({ machine: `partner-${p.site}`, address: p.addresses.data, kind: "partner", label: `${p.site} data`, partner: p.site });
    out.push({ machine: `partner-${p.site}`, address: p.addresses.app, kind: "partner", label: `${p.site} app`, partner: p.site });
    if (p.endpoint)
      out.push({ machine: "internet", address: p.endpoint, kind: "internet", label: `${p.site} tunnel end`, partner: p.site });
  }
  if (model.public.mode === "own-prefix" && model.public.routing.kind === "bgp") {
    for (const peer of model.public.routing.peers) {
      out.push({ machine: "provider", address: peer.address, kind: "bgp-peer", label: `BGP peer ${peer.name}` });
    }
  }
  void sites;
  return out;
}

const OUTSIDE = new Set<Endpoint["kind"]>(["internet", "allowlist", "neighbour", "partner", "bgp-peer"]);
const HELD = new Set<Endpoint["kind"]>(["site", "vip", "public"]);

/** True when the flow passes the edge firewall's forward chain rather than arriving at its destination directly. */
export function crossesEdge(model: SiteModel, flow: Flow): boolean {
  const { from, to } = flow;
  // The firewall receives what is addressed to it on its own input, whichever segment it comes from.
  if (HELD.has(to.kind) && to.role === "firewall") return false;
  if (OUTSIDE.has(from.kind)) return to.kind !== "public" && !(to.kind === "vip" && to.segment === undefined);
  if (to.kind === "internet" || to.kind === "allowlist" || to.kind === "partner" || to.kind === "public" || to.kind === "dnat") return true;
  // A host reaches a segment it joins over its own link; on Hetzner Cloud the network's router joins them all.
  if (to.segment && from.joins?.includes(to.segment)) return false;
  if (adapterOf(model).segments.kind === "routed" && inPrefix(to.address, model.supernet)) return false;
  const segment = model.segments.find((s) => s.name === from.segment);
  return !segment || !inPrefix(to.address, segment.cidr);
}

function fromMatches(model: SiteModel, rule: ZoneRule, e: Endpoint): boolean {
  if (rule.sources.length > 0 && !rule.sources.some((s) => inPrefix(e.address, s))) return false;
  switch (rule.from.kind) {
    case "internet":
      return OUTSIDE.has(e.kind);
    case "allowlist":
      return model.management.allowlist.some((a) => inPrefix(e.address, a));
    case "segment": {
      const s = model.segments.find((x) => x.name === (rule.from as { segment: string }).segment);
      return e.kind === "site" && s !== undefined && inPrefix(e.address, s.cidr);
    }
    case "site":
      return e.kind === "site" && inPrefix(e.address, model.supernet);
    case "partner":
      return e.kind === "partner" && e.partner === rule.from.site;
    case "bgp-peer":
      return e.kind === "bgp-peer";
    case "hosts":
      return false;
  }
}

function toMatches(model: SiteModel, rule: ZoneRule, e: Endpoint): boolean {
  if (rule.destinations.length > 0 && !rule.destinations.some((d) => inPrefix(e.address, d))) return false;
  const held = HELD.has(e.kind);
  if (held ? !rule.targets.includes(e.role!) : rule.targets.length > 0) return false;
  switch (rule.to.kind) {
    case "internet":
      return e.kind === "internet" || e.kind === "allowlist";
    case "segment": {
      // A rule that names its destinations (a provider failover IP on the proxies' uplink) is matched by them.
      if (rule.destinations.length > 0) return held;
      const s = model.segments.find((x) => x.name === (rule.to as { segment: string }).segment);
      return held && s !== undefined && inPrefix(e.address, s.cidr);
    }
    case "hosts":
      return held;
    case "site":
      return held && inPrefix(e.address, model.supernet);
    case "partner":
      return e.kind === "partner" && e.partner === rule.to.site;
    default:
      return false;
  }
}

function protocolMatches(rule: ZoneRule, flow: Flow): boolean {
  if (rule.protocol === "any") return true;
  if (rule.protocol !== flow.protocol) return false;
  if (flow.protocol === "icmp") return true;
  return rule.ports.length === 0 || rule.ports.includes(flow.port!);
}

/**
 * The flow as the policy sees it: web traffic to an own prefix's public proxy
 * address lands on the proxy VIP (`publicWebDnat`).
 */
export function translate(model: SiteModel, all: ReadonlyArray<Endpoint>, flow: Flow): Flow {
  let out = flow;
  const dnat = publicWebDnat(model);
  if (dnat && flow.to.address === dnat.address && flow.protocol === "tcp" && dnat.ports.includes(flow.port!)) {
    const vip = all.find((e) => e.kind === "vip" && e.address === dnat.to);
    if (vip) out = { ...out, to: vip };
  }
  const dns = publicDnsDnat(model);
  if (dns && flow.to.address === dns.address && (flow.protocol === "tcp" || flow.protocol === "udp") && flow.port === dns.port) {
    const vip = all.find((e) => e.kind === "vip" && e.address === dns.to);
    if (vip) out = { ...out, to: vip };
  }
  return out;
}

/**
 * True when `rule` allows `flow` (already translated). A flow that crosses
 * the edge needs a `forwarded` rule; one that arrives directly (same segment,
 * a public address, the firewall itself) needs the destination's role among
 * the rule's `targets`, which `toMatches` checks for every held address.
 */
export function ruleAllows(model: SiteModel, rule: ZoneRule, flow: Flow): boolean {
  if (!protocolMatches(rule, flow) || !fromMatches(model, rule, flow.from) || !toMatches(model, rule, flow.to)) return false;
  if (crossesEdge(model, flow)) return rule.forwarded;
  // A rule from a segment that is not forwarded is bound to that segment's link: it reaches addresses in it.
  if (rule.from.kind === "segment" && !rule.forwarded) {
    const s = model.segments.find((x) => x.name === (rule.from as { segment: string }).segment);
    return s !== undefined && inPrefix(flow.to.address, s.cidr);
  }
  return true;
}

/** The first rule of `policy` that allows `flow`, or undefined when none does (the flow must be dropped). */
export function allowingRule(
  model: SiteModel,
  policy: ReadonlyArray<ZoneRule>,
  all: ReadonlyArray<Endpoint>,
  raw: Flow,
): ZoneRule | undefined {
  const flow = translate(model, all, raw);
  return policy.find((rule) => ruleAllows(model, rule, flow));
}

/** The hosts whose answer a probe to `to` may carry. */
function answerers(to: Endpoint): ReadonlyArray<string> | undefined {
  if (to.host) return [to.host];
  if (to.holders) return to.holders;
  return undefined;
}

function action(id: string, flow: Flow, timeoutMs: number): ProbeAction {
  return {
    id,
    protocol: flow.protocol,
    source: flow.from.address,
    target: flow.to.address,
    ...(flow.protocol === "icmp" ? {} : { port: flow.port }),
    timeoutMs,
  };
}

const flowId = (f: Flow) => `${f.from.label}->${f.to.label}:${f.protocol}${f.port ? `/${f.port}` : ""}`;

/** What the twin needs to know to derive probes. */
export interface ProbeInput {
  readonly model: SiteModel;
  readonly sites: ReadonlyArray<SiteModel>;
  readonly policy: ReadonlyArray<ZoneRule>;
  readonly services: ReadonlyArray<ProxiedService>;
  readonly world: TwinWorld;
}

/** Sources the twin sends from: one representative per segment (not a firewall: it routes), the pair members on heartbeats, and everything outside. */
function sources(model: SiteModel, all: ReadonlyArray<Endpoint>): Endpoint[] {
  const preference: Role[] = ["virtualization", "proxy", "storage"];
  const out: Endpoint[] = [];
  for (const s of model.segments) {
    if (s.kind === "heartbeat") {
      out.push(...all.filter((e) => e.kind === "site" && e.segment === s.name));
      continue;
    }
    const candidates = all.filter((e) => e.kind === "site" && e.segment === s.name && e.role !== "firewall");
    const pick = preference.map((r) => candidates.find((c) => c.role === r)).find((c) => c !== undefined);
    if (pick) out.push(pick);
    // mgmt is shared by every role: also send from a second role, so a rule bound to one host's view shows.
    if (s.name === "mgmt") {
      const second = candidates.find((c) => c.role !== pick?.role && c.role === "proxy");
      if (second) out.push(second);
    }
  }
  out.push(...all.filter((e) => OUTSIDE.has(e.kind) || (e.kind === "internet" && e.partner !== undefined)));
  return out;
}

/** Destinations: every address of every host, the VIPs, public and translated addresses, the internet client and the partners. */
function destinations(all: ReadonlyArray<Endpoint>): Endpoint[] {
  const order = (e: Endpoint) => (e.kind === "public" || e.kind === "dnat" ? 0 : 1);
  return all
    .filter(
      (e) => (e.kind === "internet" && e.partner === undefined) || !["bgp-peer", "internet", "allowlist", "neighbour"].includes(e.kind),
    )
    .map((e, i) => ({ e, i }))
    .sort((a, b) => order(a.e) - order(b.e) || a.i - b.i)
    .map(({ e }) => e);
}

function portsOf(rule: ZoneRule): Array<{ protocol: Protocol; port?: number }> {
  switch (rule.protocol) {
    case "tcp":
    case "udp":
      return rule.ports.length > 0
        ? rule.ports.map((port) => ({ protocol: rule.protocol as Protocol, port }))
        : [{ protocol: rule.protocol, port: ANY_PROTOCOL_PROBE_PORT }];
    case "icmp":
      return [{ protocol: "icmp" }];
    case "any":
      return [{ protocol: "tcp", port: ANY_PROTOCOL_PROBE_PORT }];
    case "vrrp":
      return [];
  }
}

/**
 * Flows the twin sends: not to the sender itself or a VIP its own pair may
 * hold; not between two outside addresses; not from inside to a public
 * address (that path is the provider's LAN, not the site's); and not from an
 * address of a host that has its own address in the destination's segment
 * (the kernel would send it out of that link with a foreign source, which no
 * host does and strict reverse-path checks rightly drop) for a probe that
 * must pass.
 */
function sendable(all: ReadonlyArray<Endpoint>, from: Endpoint, to: Endpoint, purpose: "pass" | "blocked" = "pass"): boolean {
  if (from.machine === to.machine) return false;
  if (from.host && to.holders?.includes(from.host)) return false;
  // The internet has no route into private space: only the provider-LAN neighbour and partners send there.
  if ((from.kind === "internet" || from.kind === "allowlist") && (to.kind === "site" || (to.kind === "vip" && to.segment !== undefined)))
    return false;
  if (from.kind === "partner" && (to.kind === "public" || to.kind === "dnat" || (to.kind === "vip" && to.segment === undefined)))
    return false;
  if (from.kind === "bgp-peer" && to.kind !== "public") return false;
  // Outside to outside does not cross the site.
  if (OUTSIDE.has(from.kind) && (to.kind === "internet" || to.kind === "partner")) return false;
  if (from.kind === "site" && (to.kind === "dnat" || to.kind === "public" || (to.kind === "vip" && to.segment === undefined))) return false;
  // A blocked probe may: it stands for a compromised workload sending from the wrong address, which the
  // destination's filter (or the firewall's reverse-path check) must drop (app to mgmt on the mgmt wire).
  const foreignSource =
    from.host && to.segment && from.segment !== to.segment && all.some((e) => e.host === from.host && e.segment === to.segment);
  return purpose === "blocked" || !foreignSource;
}

/**
 * Every probe of the reachability scenario, plus the state checks for rules
 * that are not sent as probes (VRRP adverts, BGP sessions).
 */
export function deriveProbes(input: ProbeInput): { probes: Probe[]; checks: StateCheck[] } {
  const { model, policy, world, services } = input;
  const all = endpoints(model, world, input.sites);
  const from = sources(model, all);
  // Allowed flows also start at each pair member's mgmt address (the fence is sent from there); denied ones
  // need no more sources than the segment's representatives.
  const passFrom = [
    ...from,
    ...all.filter(
      (e) =>
        e.kind === "site" && e.segment === "mgmt" && !from.includes(e) && model.pairs.some((p) => !p.dissolved && p.passive === e.host),
    ),
  ];
  const to = destinations(all);
  const probes: Probe[] = [];
  const checks: StateCheck[] = [];
  const ids = new Set<string>();
  const add = (p: Probe) => {
    if (ids.has(p.id)) return;
    ids.add(p.id);
    probes.push(p);
  };
  // Outbound NAT as the firewall renders it: the own prefix's NAT address, the declared NAT failover IP, or
  // the floating IP the provider assigned at creation (Hetzner Cloud, put into nftables by the failover script),
  // else (masquerade) the active firewall's own address.
  const activeFirewall = model.pairs.find((p) => p.role === "firewall")!.active;
  const nat =
    model.public.mode === "own-prefix"
      ? model.public.natAddress
      : (model.public.declared?.nat ?? world.failoverIps?.nat ?? world.hosts.find((h) => h.name === activeFirewall)?.uplink.address);

  // Allowed: per rule, each destination (host or VIP) and port once, from the first source the rule admits.
  for (const rule of policy) {
    if (rule.protocol === "vrrp") {
      const segment = (rule.from as { segment?: string }).segment;
      // The heartbeat path, or the second path over mgmt: one pair state proves both are heard.
      const pair = model.pairs.find((p) => p.heartbeatSegment === segment || (segment === "mgmt" && rule.targets.includes(p.role)));
      if (pair && !pair.dissolved)
        checks.push({ id: `check:${rule.name}`, rule: rule.name, kind: "vrrp", subject: pair.name, reason: rule.description });
      continue;
    }
    if (rule.provedBy === "alertmanager-cluster") {
      checks.push({
        id: `check:${rule.name}`,
        rule: rule.name,
        kind: "alertmanager-cluster",
        subject: "storage",
        reason: rule.description,
      });
      continue;
    }
    if (rule.provedBy === "dns") {
      checks.push({ id: `check:${rule.name}`, rule: rule.name, kind: "dns", subject: rule.protocol, reason: rule.description });
      continue;
    }
    if (rule.provedBy === "conntrack-sync") {
      const pair = model.pairs.find((p) => p.role === "firewall" && !p.dissolved);
      if (pair)
        checks.push({ id: `check:${rule.name}`, rule: rule.name, kind: "conntrack-sync", subject: pair.name, reason: rule.description });
      continue;
    }
    if (rule.from.kind === "bgp-peer") {
      checks.push({ id: `check:${rule.name}`, rule: rule.name, kind: "bgp", subject: rule.from.peer, reason: rule.description });
      continue;
    }
    for (const { protocol, port } of portsOf(rule)) {
      const seen = new Set<string>();
      for (const d of to) {
        const key = d.host ?? d.address;
        if (seen.has(key)) continue;
        for (const s of passFrom) {
          if (!sendable(all, s, d)) continue;
          const flow: Flow = { from: s, to: d, protocol, port };
          if (!ruleAllows(model, rule, translate(model, all, flow))) continue;
          seen.add(key);
          const id = `pass:${rule.name}:${flowId(flow)}`;
          const egress = d.kind === "internet" && s.kind === "site";
          add({
            id,
            expect: "pass",
            rule: rule.name,
            reason: rule.description,
            machine: s.machine,
            action: action(id, flow, ALLOWED_TIMEOUT_MS),
            ...(protocol !== "icmp" && answerers(translate(model, all, flow).to)
              ? { answerFrom: answerers(translate(model, all, flow).to) }
              : {}),
            ...(egress && nat && protocol !== "icmp" ? { seenAs: nat } : {}),
          });
          break;
        }
      }
    }
  }

  // Services: a customer's HTTPS request with the service's name reaches a backend in the right mode.
  const publicProxy = twinPublicProxy(model, world);
  if (publicProxy) {
    const backends = model.hosts.filter((h) => h.role === "virtualization").map((h) => h.name);
    for (const service of services) {
      for (const name of service.hostnames) {
        const sni = name.startsWith("*.") ? `probe${name.slice(1)}` : name;
        const id = `pass:service:${service.name}:${sni}`;
        add({
          id,
          expect: "pass",
          rule: `service ${service.name}`,
          reason: `HTTPS for ${sni} reaches ${service.name}'s backend on port ${service.port}`,
          machine: "internet",
          action: { id, protocol: "tls", source: world.internetClient, target: publicProxy, port: 443, sni, timeoutMs: ALLOWED_TIMEOUT_MS },
          answerFrom: backends,
          mode: `${service.port}`,
        });
      }
    }
  }

  // Blocked: for every source and every destination, each catalogue port (TCP, UDP, ICMP) no rule allows.
  const passed = new Set(probes.map((p) => `${p.action.source}>${p.action.target}`));
  // Every port some rule opens somewhere (near misses tell most), a few it opens nowhere, ICMP.
  const opened = (protocol: "tcp" | "udp", extra: ReadonlyArray<number>) =>
    [...new Set([...extra, ...policy.filter((r) => r.protocol === protocol).flatMap((r) => r.ports)])].sort((a, b) => a - b);
  const tries: Array<{ protocol: Protocol; port?: number }> = [
    ...opened("tcp", [...DENIED_TCP_CATALOGUE, ANY_PROTOCOL_PROBE_PORT]).map((port) => ({ protocol: "tcp" as const, port })),
    ...opened("udp", EGRESS.udp).map((port) => ({ protocol: "udp" as const, port })),
    { protocol: "icmp" as const },
  ];
  for (const s of from.filter((e) => !model.segments.some((x) => x.kind === "heartbeat" && x.name === e.segment))) {
    for (const d of to) {
      if (!sendable(all, s, d, "blocked")) continue;
      for (const t of tries) {
        const flow: Flow = { from: s, to: d, ...t };
        if (allowingRule(model, policy, all, flow) !== undefined) continue;
        const id = `block:${flowId(flow)}`;
        // Where the flow passes the edge firewall, the edge must stop it: the destination's own filter is the second wall.
        const edge =
          crossesEdge(model, translate(model, all, flow)) && (d.kind === "site" || (d.kind === "vip" && d.segment !== undefined));
        add({
          id,
          expect: "blocked",
          reason: `no rule allows ${flow.protocol}${flow.port ? ` ${flow.port}` : ""} from ${s.label} to ${d.label}`,
          machine: s.machine,
          action: action(id, flow, BLOCKED_TIMEOUT_MS),
          controlled: passed.has(`${s.address}>${d.address}`),
          ...(edge ? { stoppedBefore: d.host ? [d.host] : [...(d.holders ?? [])] } : {}),
        });
      }
    }
  }
  return { probes, checks };
}

/** The address customers reach the site's proxies on in the twin: the site file's, or the stand-in provider's floating IP. */
export function twinPublicProxy(model: SiteModel, world: TwinWorld): string | undefined {
  return (
    publicWebDnat(model)?.address ??
    (model.public.mode === "provider-failover-ips" ? (model.public.declared?.proxy ?? world.failoverIps?.proxy) : undefined)
  );
}
