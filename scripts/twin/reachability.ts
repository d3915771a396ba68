/**
 * Scenario reachability: every probe derived from the zone policy
 * (`lib/twin/probes.ts`) is sent through the booted site, and each outcome is
 * compared with what the policy says. An allowed probe passes when an answer
 * comes back from a host it may come from (and, for egress, through the NAT
 * address; for a service, from a backend in the right mode). A denied probe
 * is blocked when nothing comes back: a TCP reset counts as not blocked (the
 * packet reached a host that had nothing listening).
 */
import { performance } from "node:perf_hooks";
import { Probe, ProbeOutcome, StateCheck, deriveProbes, twinPublicProxy } from "../../lib/twin/probes";
import { nameServerName } from "../../lib/footprint/dns";
import { MONITORING_PORTS } from "../../lib/render/policy";
import { failbackDelaySeconds } from "../../lib/render/keepalived";
import { CONNTRACKD_CONF } from "../../lib/render/conntrackd";
import type { SiteTwin } from "./site";

export interface ProbeFailure {
  readonly probe: string;
  readonly rule?: string;
  readonly expected: "pass" | "blocked";
  readonly happened: string;
}

export interface ReachabilityReport {
  readonly allowed: { readonly tried: number; readonly passed: number };
  readonly denied: { readonly tried: number; readonly blocked: number; readonly controlled: number };
  readonly checks: { readonly tried: number; readonly passed: number };
  readonly failures: ReadonlyArray<ProbeFailure>;
  readonly ms: number;
}

/** Why an outcome does not meet a probe's expectation, or undefined when it does. */
export function judge(probe: Probe, outcome: ProbeOutcome): string | undefined {
  const said = `${outcome.result}${outcome.answer ? ` (${outcome.answer})` : ""} after ${outcome.ms} ms`;
  if (probe.expect === "blocked")
    return outcome.result === "timeout" || outcome.result === "unreachable" ? undefined : `not blocked: ${said}`;
  if (outcome.result !== "answered") return `no answer: ${said}`;
  const answer = outcome.answer ?? "";
  // Stand-ins, sshd (VersionAddendum) and the backends name the host that answered.
  const identifying = /^(standin |SSH-|HTTP\/1\.1 200 OK \| )/.test(answer);
  const tokens = answer.split(/[\s|]+/);
  if (probe.answerFrom && identifying && !probe.answerFrom.some((h) => tokens.includes(h))) {
    return `answered by the wrong host: ${said} (expected one of ${probe.answerFrom.join(", ")})`;
  }
  if (probe.seenAs && !answer.endsWith(` ${probe.seenAs}`)) return `arrived from the wrong source: ${said} (expected ${probe.seenAs})`;
  if (probe.mode) {
    const fields = answer.split("|").pop()?.trim().split(" ") ?? [];
    // backend answer: "<host> <mode> <port> <sni> <peer>"
    if (fields[2] !== probe.mode || fields[3] !== probe.action.sni)
      return `reached the wrong backend: ${said} (expected port ${probe.mode}, SNI ${String(probe.action.sni)})`;
  }
  return undefined;
}

/** Waits (bounded) until every pair has elected one holder of its VIPs and every failover address is held. */
export async function settle(twin: SiteTwin, timeoutMs = 45_000): Promise<string[]> {
  const from = performance.now();
  let pending: string[] = [];
  while (performance.now() - from < timeoutMs) {
    pending = [];
    for (const pair of twin.model.pairs) {
      const members = pair.dissolved ? [pair.active] : [...pair.members];
      const holders = await twin.holders(pair.vips[0].address, members);
      if (holders.length !== 1) pending.push(`${pair.name}: ${pair.vips[0].address} held by ${holders.length}`);
    }
    for (const [ip, host] of twin.routed) {
      const holders = await twin.holders(ip, [host]);
      if (holders.length !== 1) pending.push(`${ip} routed to ${host}, which does not hold it`);
    }
    const pub = twin.model.public;
    if (pub.mode === "own-prefix" && pub.routing.kind === "bgp") {
      const r = await twin.machine("provider").exec(["ip", "-4", "route", "show", pub.prefix]);
      if (!r.stdout.includes("via")) pending.push(`the provider has no route to ${pub.prefix}`);
    }
    if (pending.length === 0) {
      // HAProxy checks its backends every 2 s and needs two successes: let them come up.
      await new Promise((r) => setTimeout(r, 4_500));
      return [];
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return pending;
}

/** How long the Alertmanager cluster check waits for a young pair to settle (ms). */
const ALERTMANAGER_SETTLE_MS = 30_000;

/** Each storage member's Alertmanager, unless it is ready and sees every member of `members`. */
async function alertmanagerProblems(twin: SiteTwin, members: ReadonlyArray<string>): Promise<string[]> {
  const problems: string[] = [];
  for (const m of members) {
    const r = await twin
      .machine(m)
      .exec(["curl", "-s", "--max-time", "3", `http://127.0.0.1:${MONITORING_PORTS.alertmanager}/api/v2/status`]);
    let peers = -1;
    let status = "";
    try {
      const cluster = (JSON.parse(r.stdout) as { cluster?: { peers?: unknown[]; status?: string } }).cluster;
      peers = cluster?.peers?.length ?? -1;
      status = cluster?.status ?? "";
    } catch {
      // not JSON: no Alertmanager answered
    }
    if (peers !== members.length || status !== "ready")
      problems.push(`${m}: cluster ${status || "unknown"} with ${peers < 0 ? "no answer" : `${peers} peer(s)`}`);
  }
  return problems;
}

async function runCheck(twin: SiteTwin, check: StateCheck): Promise<string | undefined> {
  if (check.kind === "vrrp") {
    const pair = twin.model.pairs.find((p) => p.name === check.subject)!;
    const holders = await twin.holders(pair.vips[0].address, pair.members);
    // A pair that waits before failing back may serve from either member; otherwise the named one serves.
    const serving = failbackDelaySeconds(twin.model, pair.role) > 0 && holders.length === 1 ? holders[0] : pair.active;
    if (holders.length !== 1 || holders[0] !== serving) {
      return `${pair.vips[0].address} held by ${holders.length ? holders.join(", ") : "no member"}: expected ${serving} alone`;
    }
    // The failover script records each state keepalived enters: the other member must stand by, having heard the adverts.
    const states = await Promise.all(pair.members.map((m) => twin.failoverState(m, pair.name)));
    const expected = pair.members.map((m) => (m === serving ? "master" : "backup"));
    return states.every((st, i) => st === expected[i])
      ? undefined
      : `failover states ${pair.members.map((m, i) => `${m} ${states[i] ?? "(none: keepalived never ran its script)"}`).join(", ")}; expected ${pair.members.map((m, i) => `${m} ${expected[i]}`).join(", ")}`;
  }
  if (check.kind === "alertmanager-cluster") {
    // Each Alertmanager of the storage pair sees both members in its cluster (gossip over UDP and TCP 9094).
    const members = twin.model.hosts.filter((h) => h.role === "storage" && twin.isUp(h.name)).map((h) => h.name);
    // Alertmanager settles its gossip for about 10 s after it starts (and a peer that was not up yet joins at its
    // next retry, 10 s later): a young site is asked again, for at most ALERTMANAGER_SETTLE_MS.
    const deadline = Date.now() + ALERTMANAGER_SETTLE_MS;
    let problems = await alertmanagerProblems(twin, members);
    while (problems.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1_000));
      problems = await alertmanagerProblems(twin, members);
    }
    return problems.length === 0 ? undefined : problems.join("; ");
  }
  if (check.kind === "dns") {
    // A customer's resolver asks the site's name server (its public proxy address) for the server's own name.
    const address = twinPublicProxy(twin.model, twin.world);
    if (!address) return "the site has no public proxy address in the twin";
    const name = nameServerName(twin.model.name, twin.footprint.domain);
    const r = await twin
      .machine("internet")
      .exec([
        "dig",
        "+norecurse",
        "+time=2",
        "+tries=2",
        ...(check.subject === "tcp" ? ["+tcp"] : []),
        "-b",
        twin.world.internetClient,
        `@${address}`,
        name,
        "A",
      ]);
    const authoritative = /flags:[^;]*\baa\b/.test(r.stdout) && /status: NOERROR/.test(r.stdout);
    const answer = r.stdout.split("\n").find((l) => l.startsWith(`${name}.`) && /\sA\s/.test(l));
    return authoritative && answer
      ? undefined
      : `dig over ${check.subject} @${address} ${name}: ${r.code !== 0 ? `exited ${r.code}: ${(r.stdout + r.stderr).trim().split("\n").pop()}` : "no authoritative answer"}`;
  }
  if (check.kind === "conntrack-sync") {
    const pair = twin.model.pairs.find((p) => p.name === check.subject)!;
    const holders = await twin.holders(pair.vips[0].address, pair.members);
    if (holders.length !== 1) return `${pair.vips[0].address} held by ${holders.length} members: no standby to ask`;
    const standby = pair.members.find((m) => m !== holders[0])!;
    // The egress probes went out through the serving member: their connections must be in the standby's
    // external cache (conntrackd -e), carried over the heartbeat link.
    const r = await twin.machine(standby).exec(["conntrackd", "-C", CONNTRACKD_CONF, "-e", "ct"]);
    const entries = r.stdout.split("\n").filter((l) => /\bsrc=/.test(l));
    const egress = entries.filter((l) => l.includes(` dst=${twin.world.internetClient} `));
    return egress.length > 0
      ? undefined
      : `${standby}'s conntrackd holds none of ${holders[0]}'s egress connections (external cache: ${entries.length} entries${r.code !== 0 ? `; conntrackd -e exited ${r.code}: ${r.stderr.trim()}` : ""})`;
  }
  const pub = twin.model.public;
  if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") return "no BGP at this site";
  const r = await twin.machine(twin.bgpPeerMachine(check.subject)).exec(["birdc", "-s", "/run/bird/bird.ctl", "show", "protocols"]);
  const fws = twin.model.pairs.find((p) => p.role === "firewall")!.members.map((m) => m.replace(/-/g, "_"));
  const lines = r.stdout.split("\n").filter((l) => fws.some((f) => l.startsWith(`${f} `)));
  const up = lines.filter((l) => /\bEstablished\b/.test(l));
  return up.length === fws.length
    ? undefined
    : `BGP sessions of ${check.subject}: ${lines.map((l) => l.replace(/\s+/g, " ")).join("; ") || "none"}`;
}

/** Runs the scenario against a booted twin. */
export async function reachability(twin: SiteTwin, log: (line: string) => void = () => undefined): Promise<ReachabilityReport> {
  const started = performance.now();
  const pending = await settle(twin);
  if (pending.length > 0) log(`not settled after 45 s: ${pending.join("; ")}`);
  const { probes, checks } = deriveProbes({
    model: twin.model,
    sites: twin.sites,
    policy: twin.policy,
    services: twin.services,
    world: twin.world,
  });
  const byMachine = new Map<string, Probe[]>();
  for (const p of probes) byMachine.set(p.machine, [...(byMachine.get(p.machine) ?? []), p]);
  const failures: ProbeFailure[] = [];
  let passed = 0;
  let blocked = 0;
  // Taps on every host record what reaches it, so a denied flow that should die at the edge firewall but dies
  // only at its destination's own filter shows (defence in depth is not the edge doing its job).
  await twin.tap(true);
  const results = await Promise.all(
    [...byMachine.entries()].map(async ([machine, list]) => ({
      list,
      outcomes: await twin.probe(
        machine,
        list.map((p) => p.action),
      ),
    })),
  );
  const seen = await twin.tapped();
  await twin.tap(false);
  for (const { list, outcomes } of results) {
    list.forEach((probe, i) => {
      const a = probe.action;
      const key = `${a.protocol === "tls" || a.protocol === "http" ? "tcp" : a.protocol} ${a.source} ${a.target} ${a.port ?? ""}`.trim();
      const reached = probe.stoppedBefore?.filter((h) => seen.get(h)?.has(key));
      const why =
        judge(probe, outcomes[i]) ??
        (reached?.length ? `passed the edge firewall: only ${reached.join(", ")}'s own filter dropped it` : undefined);
      if (why) failures.push({ probe: probe.id, ...(probe.rule ? { rule: probe.rule } : {}), expected: probe.expect, happened: why });
      else if (probe.expect === "pass") passed++;
      else blocked++;
    });
  }
  let checksPassed = 0;
  for (const c of checks) {
    const why = await runCheck(twin, c);
    if (why) failures.push({ probe: c.id, rule: c.rule, expected: "pass", happened: why });
    else checksPassed++;
  }
  const allowed = probes.filter((p) => p.expect === "pass");
  const denied = probes.filter((p) => p.expect === "blocked");
  failures.sort((a, b) => a.probe.localeCompare(b.probe));
  return {
    allowed: { tried: allowed.length, passed },
    denied: { tried: denied.length, blocked, controlled: denied.filter((p) => p.controlled).length },
    checks: { tried: checks.length, passed: checksPassed },
    failures,
    ms: Math.round(performance.now() - started),
  };
}
