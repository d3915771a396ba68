/**
 * Scenario partition: each single link of each pair's active member is cut
 * in turn (the heartbeat, each service segment, the uplink) while both
 * members are alive: the link keeps its carrier, only frames stop, as when a
 * switch port or a VLAN fails. Every address the pair serves is sampled on
 * both members every 100 ms, while customers' load runs through the pair
 * (`loads.ts`); per pair and link the scenario reports the most members that
 * held one address at once, the longest time more than one did (a split
 * brain), and the requests that failed, from the cut until the pair has
 * settled after the heal: a cut that splits nothing can still stop service.
 */
import type { PairedRole } from "../../lib/model/schema";
import { HolderMonitor, currentHolder, pairAddresses } from "./holders";
import { LoadRecord, loadTarget, startLoad, waitServed, windowFigures } from "./loads";
import { settle } from "./reachability";
import type { SiteTwin } from "./site";

export interface PartitionEntry {
  readonly pair: string;
  readonly member: string;
  readonly link: string;
  readonly maxHolders: number;
  readonly windowMs: number;
  /** The customers' load that ran during the cut (web for the firewall and proxy pairs, the storage address for storage). */
  readonly load: string;
  /** Requests from the cut until the pair settled again, those that failed, and the longest gap (ms). */
  readonly requests: number;
  readonly failed: number;
  readonly gapMs: number;
  /** Members the provider API powered off (fencing) during the cut. */
  readonly fenced: ReadonlyArray<string>;
}

export interface PartitionOptions {
  readonly pairs?: ReadonlyArray<PairedRole>;
  /** How long each link stays cut (ms): longer than the failover script's grace, so fencing shows. */
  readonly cutMs?: number;
  /** Clients of the load during each cut. @default 800 on the web, 200 on the storage address */
  readonly clients?: number;
  readonly log?: (line: string) => void;
}

export async function partition(twin: SiteTwin, options: PartitionOptions = {}): Promise<PartitionEntry[]> {
  const log = options.log ?? (() => undefined);
  const cutMs = options.cutMs ?? 15_000;
  const entries: PartitionEntry[] = [];
  for (const role of options.pairs ?? ["firewall", "proxy", "storage"]) {
    const pair = twin.model.pairs.find((p) => p.role === role);
    if (!pair || pair.dissolved) continue;
    // A pre-provisioned host's internal NIC is the trunk its VLAN links ride on: each VLAN is cut on its own.
    // On Hetzner Cloud the private NIC is the one link into the network.
    const trunk = twin.world.provider.kind === "lan" ? twin.world.hosts.find((h) => h.name === pair.active)!.internalNic : undefined;
    const links = twin.links(pair.active).filter((l) => l !== trunk);
    for (const link of links) {
      const pending = await settle(twin);
      if (pending.length > 0) log(`${pair.name}: not settled before cutting ${link}: ${pending.join("; ")}`);
      // The member that serves now: after a failover a pair with a failback delay stays with the other one.
      const active = (await currentHolder(twin, pair)) ?? pair.active;
      const vips = pair.vips.map((v) => v.address);
      const target = loadTarget(twin, pair, options.clients);
      const waited = await waitServed(twin, target);
      if (waited === null || waited > 2_000)
        log(`${pair.name}: served again ${waited === null ? "not within 60 s" : `after ${waited} ms`} before cutting ${link}`);
      const monitor = new HolderMonitor(twin, pair.members, pairAddresses(twin, pair));
      const fencedBefore = twin.effects.filter((e) => e.effect === "poweroff").length;
      const load = await startLoad(twin, target, `load-${pair.name}-${link}`);
      let records: LoadRecord[] = [];
      await new Promise((r) => setTimeout(r, 2_000));
      const from = Date.now();
      let to = from;
      try {
        twin.cut(active, link, true);
        await new Promise((r) => setTimeout(r, cutMs));
        twin.cut(active, link, false);
        for (const m of pair.members) if (!twin.isUp(m)) await twin.restore(m);
        // Settled again: one member holds every VIP alone (the named one, or its peer during a failback delay).
        await monitor.waitFor(Date.now(), (x) => pair.members.some((m) => HolderMonitor.sole(m, vips)(x)), 30_000);
        to = Date.now();
      } finally {
        records = await load.stop();
        await monitor.stop();
      }
      const fenced = twin.effects
        .filter((e) => e.effect === "poweroff")
        .slice(fencedBefore)
        .map((e) => e.host!);
      const figures = monitor.splitBrain(from, to);
      const served = windowFigures(records, from, to);
      log(
        `${pair.name}: ${link} of ${active} cut: at most ${figures.maxHolders} holders, ${figures.windowMs} ms with more than one; ${served.failed}/${served.requests} requests failed${fenced.length ? `; fenced ${fenced.join(", ")}` : ""}`,
      );
      entries.push({ pair: pair.name, member: active, link, ...figures, load: load.what, ...served, fenced });
    }
  }
  return entries;
}
