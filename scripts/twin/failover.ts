/**
 * Scenario failover: customers' load (`loads.ts`: 800 clients on the web
 * through the site's public address, 200 on the storage address; one request
 * a second each) while the active member of each
 * pair crashes (every process killed with SIGKILL, its links gone) and later
 * returns (boots again from its files). Per pair and event it reports the
 * requests sent in the event's window, those that failed, the longest gap
 * without a successful response, the time until the other member holds the
 * pair's VIPs alone (takeover), and, where the pair moves the site's public
 * path (the own prefix's next hop or BGP route, a failover IP), the time
 * until the provider delivers it to the new holder.
 */
import type { PairModel } from "../../lib/model/model";
import type { PairedRole } from "../../lib/model/schema";
import { FAILOVER_SCRIPT, failbackDelaySeconds, failoverMove } from "../../lib/render/keepalived";
import { adapterOf } from "../../lib/providers/registry";
import { HolderMonitor, SAMPLE_MS, currentHolder, pairAddresses } from "./holders";
import { Load, LoadRecord, loadTarget, startLoad, streamFigures, streamTarget, waitServed, windowFigures } from "./loads";
import { settle } from "./reachability";
import type { SiteTwin } from "./site";

/**
 * What happens to the serving member: a planned move by the operator command (`handover`, and
 * `handback`: the command's flag cleared, so the named active member takes its role back), or a crash
 * (every process killed) and its return (booted again from its files).
 */
export type FailoverEvent = "handover" | "handback" | "crash" | "return";

export interface FailoverEntry {
  readonly pair: string;
  readonly event: FailoverEvent;
  /** The member that handed over (or back), crashed or returned. */
  readonly member: string;
  /** The customers' load that ran (web for the firewall and proxy pairs, the storage address for the storage pair). */
  readonly load: string;
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
  /** Firewall pair: long-lived TCP streams through the outbound NAT open when the event happened (`STREAMS` started). */
  readonly streamsOpen?: number;
  /** Of those, the ones that still carried data after the takeover (and after the public path was back), unbroken. */
  readonly streamsKept?: number;
  /**
   * Planned moves: TCP connections still open on the member that gave the VIPs up at the end of the window,
   * served there through the drain (their packets passed back by the new holder).
   */
  readonly drainedConnections?: number;
}

export interface FailoverOptions {
  readonly pairs?: ReadonlyArray<PairedRole>;
  /** @default handover, handback, crash, return */
  readonly events?: ReadonlyArray<FailoverEvent>;
  /** Clients of the load. @default 800 on the web, 200 on the storage address */
  readonly clients?: number;
  /**
   * Wait, before a pair's crash, until the provider would move its address again (Netcup: 5 minutes after
   * the last move). @default true
   */
  readonly awaitMoveInterval?: boolean;
  /** Boot a member that is still down when the pair's events are over. @default true */
  readonly restore?: boolean;
  readonly log?: (line: string) => void;
}

/** How long a takeover may take before the scenario reports it as not happening. */
export const TAKEOVER_BOUND_MS = 60_000;

/** A measured duration for people: `3485 ms`, or `not within 60 s` where it never happened. */
export function duration(ms: number | null): string {
  return ms === null ? `not within ${TAKEOVER_BOUND_MS / 1000} s` : `${ms} ms`;
}
/** Load kept after each takeover, so failures after it show. */
const AFTER_MS = 5_000;
/**
 * After a firewall takeover, how long the streams get to carry data again once the path is back: TCP
 * retransmits a lost segment after its backed-off timeout (RFC 6298: doubling from 200 ms here), so a stream
 * stalled for 9 s resumes up to ~13 s later.
 */
const STREAM_SETTLE_MS = 20_000;

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

/** Runs the scenario; the twin must be booted and settled. */
export async function failover(twin: SiteTwin, options: FailoverOptions = {}): Promise<FailoverEntry[]> {
  const log = options.log ?? (() => undefined);
  // The firewall pair last: where the provider limits how often an address moves (Netcup), its moves would
  // otherwise still be held against the other pairs' runs.
  const roles = options.pairs ?? ["proxy", "storage", "firewall"];
  const events = options.events ?? ["handover", "handback", "crash", "return"];
  const entries: FailoverEntry[] = [];
  for (const role of roles) {
    const pair = twin.model.pairs.find((p) => p.role === role);
    if (!pair || pair.dissolved) continue;
    // Where the provider refuses a second move of an address within an interval (Netcup: 5 minutes), a crash
    // soon after the last move leaves the public path with the dead member until the interval is over. That
    // case is stated, not measured again: the crash comes once the provider would move the address.
    const move = failoverMove(twin.model, role);
    const interval = adapterOf(twin.model).failover.moveIntervalSeconds;
    const address = move.kind === "none" ? undefined : move.address;
    const moved = address ? twin.lastMoved(address) : undefined;
    if (interval && moved !== undefined && options.awaitMoveInterval !== false) {
      const wait = moved + interval * 1_000 + 1_000 - Date.now();
      if (wait > 0) {
        log(
          `${pair.name}: the provider moved ${address} ${Math.round((Date.now() - moved) / 1000)} s ago and refuses another move within ${interval} s: waiting ${Math.ceil(wait / 1000)} s before the crash`,
        );
        await new Promise((r) => setTimeout(r, wait));
      }
    }
    const pending = await settle(twin);
    if (pending.length > 0) log(`${pair.name}: the site did not settle before the crash: ${pending.join("; ")}`);
    const addresses = pairAddresses(twin, pair);
    const monitor = new HolderMonitor(twin, pair.members, addresses);
    const target = loadTarget(twin, pair, options.clients);
    const waited = await waitServed(twin, target);
    if (waited === null || waited > 2_000)
      log(`${pair.name}: served again ${waited === null ? "not within 60 s" : `after ${waited} ms`} before the crash`);
    const load = await startLoad(twin, target, `load-${pair.name}`);
    // Through the firewall pair also long-lived connections out through the NAT, which a takeover must keep.
    let streams: Load | undefined;
    try {
      streams = pair.role === "firewall" ? await startLoad(twin, streamTarget(twin), `streams-${pair.name}`) : undefined;
    } catch (error) {
      await load.stop();
      await monitor.stop();
      throw error;
    }
    let records: LoadRecord[] = [];
    let streamRecords: LoadRecord[] = [];
    const windows: Array<{
      event: FailoverEvent;
      drainedConnections?: number;
      member: string;
      from: number;
      to: number;
      takeoverMs: number | null;
      publicMs?: number | null;
      /** When the path was back for the streams (epoch ms; null: never within the bound). */
      back: number | null;
    }> = [];
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      const failback = failbackDelaySeconds(twin.model, pair.role);
      const otherOf = (m: string) => pair.members.find((x) => x !== m)!;
      let handedOver: string | undefined;
      let crashed: string | undefined;
      for (const event of events) {
        const planned = event === "handover" || event === "handback";
        if (planned && failback > 0) {
          log(`${pair.name}: no planned move measured: the peer takes over only after the pair's failback delay (${failback} s)`);
          continue;
        }
        if ((event === "handback" && !handedOver) || (event === "return" && !crashed)) continue;
        // The member that serves now (after an earlier event it may be the named passive one).
        const serving = (await currentHolder(twin, pair)) ?? pair.active;
        let member: string;
        let newHolder: string;
        if (event === "handover" || event === "crash") {
          member = serving;
          newHolder = otherOf(member);
        } else if (event === "handback") {
          // With the flag cleared the named active member preempts; a passive one that handed over stays standby.
          member = handedOver!;
          newHolder = member === pair.active ? member : serving;
        } else {
          // On return the crashed member takes the VIPs back, unless the pair waits before failing back.
          member = crashed!;
          newHolder = failback > 0 ? otherOf(member) : member;
          if (failback > 0)
            log(`${pair.name}: ${member} returns as standby; the pair fails back only after ${failback} s (the provider's move interval)`);
        }
        const from = Date.now();
        if (event === "crash") {
          crashed = member;
          await twin.crash(member);
        } else if (event === "return") await twin.restore(member);
        else {
          if (event === "handover") handedOver = member;
          const r = await twin
            .machine(member)
            .exec(["sh", FAILOVER_SCRIPT, event === "handover" ? "handover" : "handover-clear"], { timeoutMs: TAKEOVER_BOUND_MS });
          if (r.code !== 0) log(`${pair.name}: ${event} on ${member} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
        }
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
          `${pair.name} ${event} of ${member}: VIPs with ${newHolder} after ${duration(takeoverMs)}${publicMs !== undefined ? `, public path after ${duration(publicMs)}` : ""}`,
        );
        const back = takeoverMs === null || publicMs === null ? null : from + Math.max(takeoverMs, publicMs ?? 0);
        await new Promise((r) => setTimeout(r, streams && back !== null && !planned ? STREAM_SETTLE_MS : AFTER_MS));
        const gaveUp = event === "handover" ? member : event === "handback" && newHolder !== serving ? serving : undefined;
        const drained = gaveUp !== undefined ? await openConnections(twin, pair, gaveUp) : undefined;
        windows.push({
          event,
          member,
          from,
          to: Date.now(),
          takeoverMs,
          back,
          ...(publicMs !== undefined ? { publicMs } : {}),
          ...(drained !== undefined ? { drainedConnections: drained } : {}),
        });
      }
    } finally {
      records = await load.stop();
      streamRecords = (await streams?.stop()) ?? [];
      await monitor.stop();
      for (const m of pair.members) if (twin.isUp(m)) await twin.machine(m).exec(["sh", FAILOVER_SCRIPT, "handover-clear"]);
      if (options.restore !== false) for (const m of pair.members) if (!twin.isUp(m)) await twin.restore(m);
    }
    for (const w of windows) {
      entries.push({
        pair: pair.name,
        event: w.event,
        member: w.member,
        load: load.what,
        ...windowFigures(records, w.from, w.to),
        windowMs: w.to - w.from,
        takeoverMs: w.takeoverMs,
        ...(w.publicMs !== undefined ? { publicMs: w.publicMs } : {}),
        ...(streams
          ? w.back === null
            ? { ...streamFigures(streamRecords, w.from, w.to, w.to), streamsKept: 0 }
            : streamFigures(streamRecords, w.from, w.back, w.to)
          : {}),
        ...(w.drainedConnections !== undefined ? { drainedConnections: w.drainedConnections } : {}),
      });
    }
  }
  return entries;
}

/** TCP connections to the pair's addresses still established on `member` (what it serves through the drain). */
async function openConnections(twin: SiteTwin, pair: PairModel, member: string): Promise<number> {
  const r = await twin.machine(member).exec(["ss", "-Htn", "state", "established"]);
  const addresses = pairAddresses(twin, pair);
  return r.stdout.split("\n").filter((l) => addresses.some((a) => l.includes(` ${a}:`))).length;
}
