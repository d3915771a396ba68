/**
 * Who holds which address, sampled every 100 ms on the members of a pair:
 * the pair's VIPs and the public address its failover script moves. The
 * failover and partition scenarios read takeover times and split-brain
 * windows from the same samples.
 */
import { performance } from "node:perf_hooks";
import type { PairModel } from "../../lib/model/model";
import type { SiteTwin } from "./site";

/** Sampling interval (ms): the resolution of every takeover time and split-brain window. */
export const SAMPLE_MS = 100;

export interface HolderSample {
  /** Epoch milliseconds. */
  readonly at: number;
  /** Address → members holding it. */
  readonly holders: ReadonlyMap<string, ReadonlyArray<string>>;
}

/** The addresses a pair serves: its VIPs and the public address it moves (failover IP, the static next hop). */
export function pairAddresses(twin: SiteTwin, pair: PairModel): string[] {
  const out = pair.vips.map((v) => v.address);
  const pub = twin.model.public;
  if (pub.mode === "own-prefix" && pub.routing.kind === "static" && pair.role === "firewall") out.push(pub.routing.nextHop);
  if (pub.mode === "provider-failover-ips") {
    const ips = pub.declared ?? twin.world.failoverIps;
    if (ips && pair.role === "proxy") out.push(ips.proxy);
    if (ips && pair.role === "firewall") out.push(ips.nat);
  }
  return out;
}

/**
 * The addresses `ip -4 -o addr show` lists on a host's links, lo left out: an
 * address on lo answers no ARP (`arp_ignore = 1`), so a member that stands by
 * with its VIPs there (to finish connections it still serves) holds nothing.
 */
export function linkAddresses(ipAddrShow: string): string {
  return ipAddrShow
    .split("\n")
    .filter((l) => !/^\d+:\s+lo\s/.test(l))
    .join("\n");
}

export class HolderMonitor {
  readonly samples: HolderSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly twin: SiteTwin,
    private readonly members: ReadonlyArray<string>,
    readonly addresses: ReadonlyArray<string>,
  ) {
    this.loop = this.poll();
  }

  private async poll(): Promise<void> {
    while (this.running) {
      const started = performance.now();
      const listed = await Promise.all(
        this.members.map(async (m) => {
          if (!this.twin.isUp(m)) return "";
          const r = await this.twin.hosts.get(m)!.machine.exec(["ip", "-4", "-o", "addr", "show"], { timeoutMs: 3_000 });
          return linkAddresses(r.stdout);
        }),
      );
      const holders = new Map<string, string[]>();
      for (const a of this.addresses)
        holders.set(
          a,
          this.members.filter((_m, i) => listed[i].includes(` ${a}/`)),
        );
      this.samples.push({ at: Date.now(), holders });
      await new Promise((r) => setTimeout(r, Math.max(0, SAMPLE_MS - (performance.now() - started))));
    }
  }

  /** The first sample at or after `from` (epoch ms) in which `test` holds, waiting up to `timeoutMs`. */
  async waitFor(from: number, test: (s: HolderSample) => boolean, timeoutMs: number): Promise<HolderSample | undefined> {
    let seen = 0;
    while (Date.now() - from < timeoutMs) {
      for (; seen < this.samples.length; seen++) {
        const s = this.samples[seen];
        if (s.at >= from && test(s)) return s;
      }
      await new Promise((r) => setTimeout(r, SAMPLE_MS / 4));
    }
    return undefined;
  }

  /** True in a sample where `member` alone holds every one of `addresses`. */
  static sole(member: string, addresses: ReadonlyArray<string>): (s: HolderSample) => boolean {
    return (s) => addresses.every((a) => (s.holders.get(a) ?? []).length === 1 && s.holders.get(a)![0] === member);
  }

  /**
   * Between `from` and `to` (epoch ms): the most members that held one
   * address at once, and the longest run of samples in which some address
   * had more than one holder (ms, from the first such sample to the first
   * sample without).
   */
  splitBrain(from: number, to: number): { maxHolders: number; windowMs: number } {
    const window = this.samples.filter((s) => s.at >= from && s.at <= to);
    let maxHolders = 0;
    let longest = 0;
    let runStart: number | undefined;
    for (const s of window) {
      const most = Math.max(0, ...[...s.holders.values()].map((h) => h.length));
      maxHolders = Math.max(maxHolders, most);
      if (most > 1) runStart ??= s.at;
      else if (runStart !== undefined) {
        longest = Math.max(longest, s.at - runStart);
        runStart = undefined;
      }
    }
    if (runStart !== undefined) longest = Math.max(longest, (window[window.length - 1]?.at ?? runStart) - runStart + SAMPLE_MS);
    return { maxHolders, windowMs: longest };
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/**
 * The member that serves the pair now: the one that alone holds every VIP, or
 * undefined while none or both do. After a failover the named active member
 * may stand by for a while (a failback delay), so scenarios act on this one.
 */
export async function currentHolder(twin: SiteTwin, pair: PairModel): Promise<string | undefined> {
  const vips = pair.vips.map((v) => v.address);
  const held = await Promise.all(vips.map((a) => twin.holders(a, pair.members)));
  const sole = held.every((h) => h.length === 1 && h[0] === held[0][0]) ? held[0][0] : undefined;
  return sole;
}
