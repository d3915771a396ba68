/**
 * Scenario failover: customers' load (800 clients, one request a second
 * each, through the site's public address) while the active member of each
 * pair crashes (every process killed with SIGKILL, its links gone) and later
 * returns (boots again from its files). Per pair and event it reports the
 * requests sent in the event's window, those that failed, the longest gap
 * without a successful response, the time until the other member holds the
 * pair's VIPs alone (takeover), and, where the pair moves the site's public
 * path (the own prefix's next hop or BGP route, a failover IP), the time
 * until the provider delivers it to the new holder.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { PairModel } from "../../lib/model/model";
import type { PairedRole } from "../../lib/model/schema";
import { publicWebDnat } from "../../lib/render/policy";
import { HolderMonitor, SAMPLE_MS, pairAddresses } from "./holders";
import { startUnit } from "./init";
import { settle } from "./reachability";
import type { SiteTwin } from "./site";

export interface FailoverEntry {
  readonly pair: string;
  readonly event: "crash" | "return";
  /** The member that crashed or returned. */
  readonly member: string;
  readonly requests: number;
  readonly failed: number;
  /** Longest time in the event's window without a successful response (ms). */
  readonly gapMs: number;
  /** How long the event's window was: from the event until the takeover (or the bound) plus five seconds (ms). */
  readonly windowMs: number;
  /** From the event until one member holds every VIP of the pair alone: the other one after a crash, the returning one after a return (ms; null: not within the bound). */
  readonly takeoverMs: number | null;
  /** From the event until the provider delivers the pair's public path to that member (ms); absent where the pair moves none. */
  readonly publicMs?: number | null;
}

export interface FailoverOptions {
  readonly pairs?: ReadonlyArray<PairedRole>;
  readonly events?: ReadonlyArray<"crash" | "return">;
  readonly clients?: number;
  /** Boot a member that is still down when the pair's events are over. @default true */
  readonly restore?: boolean;
  readonly log?: (line: string) => void;
}

/** How long a takeover may take before the scenario reports it as not happening. */
export const TAKEOVER_BOUND_MS = 60_000;
/** Load kept after each takeover, so failures after it show. */
const AFTER_MS = 5_000;

/** True when the provider delivers the pair's public path to `member` (undefined: the pair moves none). */
async function publicFollows(twin: SiteTwin, pair: PairModel, member: string): Promise<boolean | undefined> {
  const pub = twin.model.public;
  if (pub.mode === "own-prefix" && pair.role === "firewall") {
    if (pub.routing.kind === "static") return twin.routed.get(pub.routing.nextHop) === member;
    const uplink = twin.world.hosts.find((h) => h.name === member)!.uplink.address;
    const r = await twin.machine("provider").exec(["ip", "-4", "route", "show", pub.prefix]);
    return r.stdout.includes(`via ${uplink} `);
  }
  if (pub.mode === "provider-failover-ips" && (pair.role === "proxy" || pair.role === "firewall")) {
    const ips = pub.declared ?? twin.world.failoverIps;
    const ip = pair.role === "proxy" ? ips?.proxy : ips?.nat;
    if (!ip) return undefined;
    return twin.routed.get(ip) === member && (await twin.holders(ip, [member])).length === 1;
  }
  return undefined;
}

async function timeUntil(check: () => Promise<boolean | undefined>, from: number, boundMs: number): Promise<number | null | undefined> {
  for (;;) {
    const ok = await check();
    if (ok === undefined) return undefined;
    if (ok) return Date.now() - from;
    if (Date.now() - from > boundMs) return null;
    await new Promise((r) => setTimeout(r, SAMPLE_MS));
  }
}

/** The public address and name the load goes to: the first service the site answers read-write, else any. */
function loadTarget(twin: SiteTwin): { address: string; sni: string } {
  const pub = twin.model.public;
  const address =
    publicWebDnat(twin.model)?.address ??
    (pub.mode === "provider-failover-ips" ? (pub.declared?.proxy ?? twin.world.failoverIps?.proxy) : undefined);
  const service = [...twin.services].sort((a, b) => a.port - b.port).find((s) => s.hostnames.some((h) => !h.startsWith("*.")));
  if (!address || !service) throw new Error(`${twin.model.name}: no public address or service to send load to`);
  return { address, sni: service.hostnames.find((h) => !h.startsWith("*."))! };
}

/** Requests, failures and the longest gap between successful responses in [from, to). */
export function windowFigures(
  records: ReadonlyArray<[number, number, number]>,
  from: number,
  to: number,
): { requests: number; failed: number; gapMs: number } {
  const inWindow = records.filter((r) => r[0] >= from && r[0] < to);
  const ends = records
    .filter((r) => r[2] === 1 && r[1] >= from && r[1] < to)
    .map((r) => r[1])
    .sort((a, b) => a - b);
  const points = [from, ...ends, to];
  let gap = 0;
  for (let i = 1; i < points.length; i++) gap = Math.max(gap, points[i] - points[i - 1]);
  return { requests: inWindow.length, failed: inWindow.filter((r) => r[2] === 0).length, gapMs: gap };
}

/** Runs the scenario; the twin must be booted and settled. */
export async function failover(twin: SiteTwin, options: FailoverOptions = {}): Promise<FailoverEntry[]> {
  const log = options.log ?? (() => undefined);
  const roles = options.pairs ?? ["firewall", "proxy", "storage"];
  const events = options.events ?? ["crash", "return"];
  const clients = options.clients ?? 800;
  const target = loadTarget(twin);
  const entries: FailoverEntry[] = [];
  for (const role of roles) {
    const pair = twin.model.pairs.find((p) => p.role === role);
    if (!pair || pair.dissolved) continue;
    const pending = await settle(twin);
    if (pending.length > 0) log(`${pair.name}: the site did not settle before the crash: ${pending.join("; ")}`);
    const addresses = pairAddresses(twin, pair);
    const monitor = new HolderMonitor(twin, pair.members, addresses);
    const out = join(twin.dir, `load-${pair.name}.jsonl`);
    const load = await startUnit(
      twin.machine("internet"),
      {
        name: `load-${pair.name}`,
        // 800 connections need more descriptors than the usual soft limit of 1024: raise it to the hard limit.
        prepare: ['ulimit -n "$(ulimit -Hn)"'],
        argv: [
          "node",
          "--import",
          "tsx",
          join(__dirname, "load.ts"),
          "--target",
          target.address,
          "--sni",
          target.sni,
          "--source",
          twin.world.internetClient,
          "--clients",
          String(clients),
          "--duration-ms",
          String(10 * TAKEOVER_BOUND_MS),
          "--out",
          out,
        ],
        readyLine: "ready",
      },
      60_000,
    );
    const done = new Promise<void>((resolve) => load.process.once("exit", () => resolve()));
    const windows: Array<{
      event: "crash" | "return";
      member: string;
      from: number;
      to: number;
      takeoverMs: number | null;
      publicMs?: number | null;
    }> = [];
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      for (const event of events) {
        const member = pair.active;
        const newHolder = event === "crash" ? pair.passive : pair.active;
        const from = Date.now();
        if (event === "crash") await twin.crash(member);
        else await twin.restore(member);
        const took = await monitor.waitFor(
          from,
          HolderMonitor.sole(
            newHolder,
            pair.vips.map((v) => v.address),
          ),
          TAKEOVER_BOUND_MS,
        );
        const takeoverMs = took ? took.at - from : null;
        const publicMs = await timeUntil(() => publicFollows(twin, pair, newHolder), from, TAKEOVER_BOUND_MS);
        log(
          `${pair.name} ${event} of ${member}: VIPs with ${newHolder} after ${takeoverMs ?? "never"} ms${publicMs !== undefined ? `, public path after ${publicMs ?? "never"} ms` : ""}`,
        );
        await new Promise((r) => setTimeout(r, AFTER_MS));
        windows.push({ event, member, from, to: Date.now(), takeoverMs, ...(publicMs !== undefined ? { publicMs } : {}) });
      }
    } finally {
      load.process.kill("SIGTERM");
      await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
      await monitor.stop();
      if (options.restore !== false && !twin.isUp(pair.active)) await twin.restore(pair.active);
    }
    const records = readFileSync(out, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as [number, number, number]);
    rmSync(out, { force: true });
    for (const w of windows) {
      entries.push({
        pair: pair.name,
        event: w.event,
        member: w.member,
        ...windowFigures(records, w.from, w.to),
        windowMs: w.to - w.from,
        takeoverMs: w.takeoverMs,
        ...(w.publicMs !== undefined ? { publicMs: w.publicMs } : {}),
      });
    }
  }
  return entries;
}
