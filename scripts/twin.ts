/**
 * `npm run twin -- <location> [--scenario reachability|workloads|failover|partition|storage|all] [--json FILE] [--files DIR]`
 *   (without --scenario: reachability and workloads)
 * `npm run twin -- <location> <partner> [--scenario tunnels|dns|data|all|none] [--json FILE]` (the pair twin)
 *
 * Boots the location from the files its stack installs (or from a
 * `plan --files` folder) in Linux network namespaces, with the real daemons,
 * and runs scenarios against it (see README, "The site twin"). Exit codes:
 * 0 every reachability probe as the policy says, 1 a probe failed or the
 * twin could not boot, 2 invalid input. Needs root.
 */
import { existsSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { InputError } from "../lib/model/validate";
import { parseFlags, reportInputError, runAsProcess } from "./lib/cli";
import { slug } from "../lib/model/schema";
import { TwinInputError } from "../lib/twin/world";
import { SiteTwin } from "./twin/site";
import { ReachabilityReport, reachability } from "./twin/reachability";
import { FailoverEntry, duration, failover } from "./twin/failover";
import { PartitionEntry, partition } from "./twin/partition";
import { StorageTakeover, storageTakeover } from "./twin/storage";
import { PublishedProbe, WorkloadDataEntry, WorkloadEntry, workloadsScenario } from "./twin/workloads";
import { PairTwin } from "./twin/pair";
import { PairDatabases, RpoEntry } from "./twin/databases";
import { GuardEntry, PairFiles } from "./twin/files";
import { PromotionEntry, promotion } from "./twin/promotion";
import { DnsEntry, dnsSwitch } from "./twin/dns";
import { AlertEntry, watchReplicationAlert } from "./twin/alerts";
import { ReadOnlyEntry, readOnly } from "./twin/readonly";
import { BackupEntry, backups } from "./twin/backups";
import { TunnelDownEntry, TunnelEntry, tunnelDown, tunnelReady, tunnelsUp } from "./twin/tunnels";

/** `none` boots the location and runs nothing (with --hold: to look around). */
export const SCENARIOS = ["reachability", "workloads", "failover", "partition", "storage", "all", "none"] as const;
/** Failures the summary prints; --json holds all of them. */
const SHOWN_FAILURES = 40;

/** Scenarios of the pair twin (two partner locations joined). */
export const PAIR_SCENARIOS = ["tunnels", "dns", "data", "all", "none"] as const;

export const TwinFlagsSchema = z
  .strictObject({
    location: slug,
    /** A partner location: boots both together (the pair twin). */
    partner: slug.optional(),
    scenario: z.enum([...new Set([...SCENARIOS, ...PAIR_SCENARIOS])]).optional(),
    json: z.string().min(1).optional(),
    files: z.string().min(1).optional(),
    sites: z.string().min(1).optional(),
    hold: z.boolean().default(false),
  })
  .superRefine((f, ctx) => {
    const allowed: ReadonlyArray<string> = f.partner ? PAIR_SCENARIOS : SCENARIOS;
    if (f.scenario !== undefined && !allowed.includes(f.scenario))
      ctx.addIssue({
        code: "custom",
        path: ["scenario"],
        message: `${f.partner ? "with a partner location" : "for one location"} the scenarios are ${allowed.join(", ")}`,
      });
    if (f.partner && f.files)
      ctx.addIssue({
        code: "custom",
        path: ["files"],
        message: "the pair twin renders both locations itself (give one location to boot a folder)",
      });
  });
export type TwinFlags = z.infer<typeof TwinFlagsSchema>;

export function parseTwinFlags(argv: string[]): TwinFlags {
  return parseFlags(
    "twin",
    argv,
    {
      scenario: { type: "string" },
      json: { type: "string" },
      files: { type: "string" },
      sites: { type: "string" },
      hold: { type: "boolean" },
    },
    TwinFlagsSchema,
    ["location", "partner"],
  );
}

/** What `--json` writes. */
export interface TwinReport {
  readonly location: string;
  readonly started: string;
  /** Files the twin booted that the stack would not install, or missing ones (only with --files). */
  readonly files?: { readonly differences: ReadonlyArray<string> };
  readonly reachability?: ReachabilityReport;
  readonly failover?: ReadonlyArray<FailoverEntry>;
  readonly partition?: ReadonlyArray<PartitionEntry>;
  /** A file written through the NFS export before the active store crashed, read back after the takeover. */
  readonly storage?: StorageTakeover;
  /** Every instance through every virtualization host's ingress and through the public path (compose sites). */
  readonly workloads?: ReadonlyArray<WorkloadEntry>;
  /** Files written through an instance onto the storage export and read back through another host. */
  readonly workloadData?: ReadonlyArray<WorkloadDataEntry>;
  /** Published container ports probed from other segments (named probes); each must be blocked. */
  readonly published?: ReadonlyArray<PublishedProbe>;
}

export async function main(
  argv: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  let flags: TwinFlags;
  try {
    flags = parseTwinFlags(argv);
  } catch (error) {
    return reportInputError(error, err);
  }
  if (flags.json && !existsSync(dirname(resolve(flags.json)))) {
    err(`twin: json: ${dirname(resolve(flags.json))} does not exist (the report could not be written)`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    err("twin: needs root (it creates network namespaces and runs the daemons)");
    return 2;
  }
  if (flags.partner) return pairMain({ ...flags, partner: flags.partner }, out, err);
  let twin: SiteTwin | undefined;
  const stop = () => {
    twin?.destroy();
    process.exit(130);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const report: { -readonly [K in keyof TwinReport]: TwinReport[K] } = { location: flags.location, started: new Date().toISOString() };
  const scenario = flags.scenario ?? "reachability";
  // Without --scenario: the reachability probes and the workloads behind the ingress.
  const wants = (s: (typeof SCENARIOS)[number]) =>
    scenario === s || scenario === "all" || (flags.scenario === undefined && s === "workloads");
  try {
    twin = await SiteTwin.boot({
      location: flags.location,
      sitesDir: flags.sites ? resolve(flags.sites) : undefined,
      filesDir: flags.files ? resolve(flags.files) : undefined,
      log: (l) => out(`  ${l}`),
    });
    let ok = true;
    if (twin.fileDifferences.length > 0) {
      report.files = { differences: twin.fileDifferences };
      out(`files: the twin booted a different set of files than the stack installs:`);
      for (const d of twin.fileDifferences) out(`  FAIL ${d}`);
      ok = false;
    }
    if (wants("reachability")) {
      const r = await reachability(twin, (l) => out(`  ${l}`));
      report.reachability = r;
      out(
        `reachability: allowed ${r.allowed.passed}/${r.allowed.tried} passed, denied ${r.denied.blocked}/${r.denied.tried} blocked, checks ${r.checks.passed}/${r.checks.tried} (${r.ms} ms)`,
      );
      for (const f of r.failures.slice(0, SHOWN_FAILURES)) out(`  FAIL ${f.probe}${f.rule ? ` [${f.rule}]` : ""}: ${f.happened}`);
      if (r.failures.length > SHOWN_FAILURES) out(`  … and ${r.failures.length - SHOWN_FAILURES} more failures (all in --json)`);
      ok &&= r.failures.length === 0;
    }
    if (wants("workloads")) {
      if (twin.model.virtualization.runtime !== "compose") {
        out(
          `workloads: ${twin.model.name} runs Kubernetes: no cluster runs here (no kubelet, no registry); its ingress ports keep their stand-ins`,
        );
      } else {
        const w = await workloadsScenario(twin, (l) => out(`  ${l}`));
        report.workloads = w.workloads;
        report.workloadData = w.data;
        report.published = w.published;
        const passed = w.workloads.filter((x) => x.ok).length;
        out(
          `workloads: ${passed}/${w.workloads.length} answered in their mode through the real ingress (each host, and the public path) (${w.ms} ms)`,
        );
        for (const x of w.workloads.filter((y) => !y.ok).slice(0, SHOWN_FAILURES))
          out(`  FAIL ${x.service} ${x.mode} ${x.name} via ${x.path} ${x.host}: ${x.answer}`);
        for (const d of w.data)
          out(
            `  ${d.ok ? "" : "FAIL "}data ${d.service}/${d.tree}: written via ${d.writtenVia} ${d.write}${d.readVia ? `, read via ${d.readVia} ${d.read}${d.sameContent ? " (same bytes)" : ""}` : ""}${d.readOnlyWrite !== undefined ? `, read-only instance refused the write (${d.readOnlyWrite})` : ""}`,
          );
        const blocked = w.published.filter((p) => p.blocked && p.control).length;
        out(`  published ports outside the policy: ${blocked}/${w.published.length} blocked (and reachable from the host itself)`);
        for (const p of w.published.filter((x) => !x.blocked || !x.control))
          out(`  FAIL ${p.id}: ${p.blocked ? "blocked" : "reached"}, host itself ${p.control ? "reaches it" : "does not"}`);
        ok &&= passed === w.workloads.length && w.data.every((d) => d.ok) && blocked === w.published.length;
      }
    }
    // Partitions before crashes: a provider that limits how often an address moves (Netcup) would otherwise
    // still hold the crash scenario's moves against the partitions.
    if (wants("partition")) {
      report.partition = await partition(twin, { log: (l) => out(`  ${l}`) });
      out("partition (one link of the active member cut for 15 s, customers' load running):");
      for (const p of report.partition) {
        out(
          `  ${p.pair} ${p.link} (${p.member}): at most ${p.maxHolders} holders, ${p.windowMs} ms with more than one; ${p.failed}/${p.requests} requests failed, longest gap ${p.gapMs} ms${p.fenced.length ? `; fenced ${p.fenced.join(", ")}` : ""}`,
        );
      }
    }
    if (wants("failover")) {
      report.failover = await failover(twin, { log: (l) => out(`  ${l}`) });
      out("failover (customers' load running; a crash, then the return):");
      for (const f of report.failover) {
        out(
          `  ${f.takeoverMs === null ? "FAIL " : ""}${f.pair} ${f.event} (${f.member}): ${f.requests} requests, ${f.failed} failed, longest gap ${f.gapMs} ms, VIPs after ${duration(f.takeoverMs)}${f.publicMs !== undefined ? `, public path after ${duration(f.publicMs)}` : ""}${f.streamsOpen !== undefined ? `; long-lived streams through the NAT kept ${f.streamsKept}/${f.streamsOpen}` : ""}${f.drainedConnections !== undefined ? `; ${f.drainedConnections} connections still served by ${f.member === undefined ? "the old holder" : "the member that gave the VIPs up"}` : ""}`,
        );
      }
      // A figure may be poor; a pair that does not fail over at all is a failure.
      ok &&= report.failover.every((f) => f.takeoverMs !== null);
    }
    if (wants("storage")) {
      const s = await storageTakeover(twin);
      report.storage = s;
      out(
        `storage (a file written over NFS, the active store crashed): ${s.readBack ? "" : "FAIL "}${s.crashed} crashed, ${s.tookOver ?? "nobody"} took over; ${s.tree}/${s.file} ${s.readBack ? `read back after ${s.seconds} s` : "not read back"} (the export answered after ${s.exportSeconds ?? "never"} s; the rest is NFSv4's grace period)`,
      );
      ok &&= s.readBack;
    }
    if (flags.json) writeFileSync(resolve(flags.json), JSON.stringify(report, null, 2) + "\n");
    if (flags.hold) {
      out(`holding the twin for inspection (Ctrl-C ends it): machines as "nsenter --net=/run/netns/<ns> --mount=<file>":`);
      for (const m of twin.machines.values()) out(`  ${m.name}: ${m.enter().slice(0, 3).join(" ")}`);
      await new Promise<never>(() => undefined);
    }
    return ok ? 0 : 1;
  } catch (error) {
    return failed(error, err);
  } finally {
    twin?.destroy();
  }
}

/** The exit code of a twin run that threw: 2 for input the twin refuses (each problem a line), else 1 with the stack. */
function failed(error: unknown, err: (line: string) => void): number {
  if (error instanceof TwinInputError || error instanceof InputError) {
    error.problems.forEach((p) => err(p));
    return 2;
  }
  err(`twin: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return 1;
}

/** What `--json` writes for the pair twin. */
export interface PairReport {
  readonly location: string;
  readonly partner: string;
  readonly started: string;
  readonly tunnels?: ReadonlyArray<TunnelEntry>;
  readonly tunnelDown?: ReadonlyArray<TunnelDownEntry>;
  readonly rpo?: ReadonlyArray<RpoEntry>;
  readonly guards?: ReadonlyArray<GuardEntry>;
  readonly promotion?: PromotionEntry;
  readonly readOnly?: ReadonlyArray<ReadOnlyEntry>;
  readonly backups?: ReadonlyArray<BackupEntry>;
  readonly dns?: DnsEntry;
  readonly alerts?: ReadonlyArray<AlertEntry>;
}

/** The pair twin: both locations booted and joined, then the tunnel and data path scenarios. */
async function pairMain(flags: TwinFlags & { partner: string }, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  let pair: PairTwin | undefined;
  const stop = () => {
    pair?.destroy();
    process.exit(130);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const scenario = flags.scenario ?? "all";
  const wants = (s: (typeof PAIR_SCENARIOS)[number]) => scenario === s || scenario === "all";
  const report: { -readonly [K in keyof PairReport]: PairReport[K] } = {
    location: flags.location,
    partner: flags.partner,
    started: new Date().toISOString(),
  };
  const log = (l: string) => out(`  ${l}`);
  try {
    pair = await PairTwin.boot({
      location: flags.location,
      partner: flags.partner,
      sitesDir: flags.sites ? resolve(flags.sites) : undefined,
      log,
    });
    let ok = true;
    if (wants("tunnels")) {
      report.tunnels = await tunnelsUp(pair, log);
      report.tunnelDown = [await tunnelDown(pair, pair.a, log), await tunnelDown(pair, pair.b, log)];
      out(`tunnels (${pair.tunnel.plan.name}, WireGuard in userspace, the rendered files):`);
      for (const t of report.tunnels)
        out(
          `  ${t.up ? "" : "FAIL "}${t.from} -> ${t.to}: ${t.up ? "up" : "down"}, carries ${t.allowedIps.join(", ") || "nothing"}, handshake ${t.handshakeAgeSeconds ?? "never"} s ago at ${t.firewall ?? "no firewall"}, replication path answered by ${t.answer}`,
        );
      for (const d of report.tunnelDown)
        out(
          `  ${d.blockedWhileDown && d.leakedPackets === 0 && d.backAfterMs !== null ? "" : "FAIL "}stopped at ${d.stoppedAt}: partner traffic ${d.blockedWhileDown ? "blocked" : "ANSWERED"}, ${d.leakedPackets} packets in clear; back ${d.backAfterMs === null ? "not within the bound" : `after ${d.backAfterMs} ms`}`,
        );
      ok &&=
        report.tunnels.every((t) => t.up) &&
        report.tunnelDown.every((d) => d.blockedWhileDown && d.leakedPackets === 0 && d.backAfterMs !== null);
    }
    if (wants("dns")) {
      const d = await dnsSwitch(pair, log);
      if (!d) out("dns: no service has its primary at one of these sites and its standby at the other");
      else {
        report.dns = d;
        const good =
          d.serversAgreed &&
          d.switchSeconds !== null &&
          d.switchSeconds <= 30 &&
          d.backSeconds !== null &&
          !d.bothWritable &&
          d.landedReadOnly;
        out(
          `dns switch of ${d.name} (${d.service}: ${d.primary} cut off, ${d.standby} stands by; PowerDNS ifurlup, TTL ${d.ttlSeconds} s):`,
        );
        out(
          `  ${good ? "" : "FAIL "}to the standby ${d.switchSeconds ?? "never"} s (target 30 s, TTL included), back ${d.backSeconds ?? "never"} s; a request landed ${d.landedReadOnly ? "read-only" : "NOT read-only"} (${d.answer.split(" ").slice(0, 2).join(" ")}), a write got ${d.writeStatus}; both writable: ${d.bothWritable}`,
        );
        ok &&= good;
      }
    }
    if (wants("data")) {
      // The data path needs the tunnel: the first handshake may still be on its way right after the boot.
      if ((await tunnelReady(pair)) === null) throw new Error(`${pair.tunnel.plan.name} did not come up within the bound`);
      const databases = await PairDatabases.start(pair, { sitesDir: flags.sites ? resolve(flags.sites) : undefined, log });
      const files = await PairFiles.prepare(pair, { sitesDir: flags.sites ? resolve(flags.sites) : undefined, log });
      // The copy with the shortest RPO ran its last time in prepare: its alert is watched while the guards run.
      const watch = await watchReplicationAlert(pair, files, log);
      report.guards = await files.guards(log);
      out("replication guards (the rendered unit against a source that must not be copied):");
      for (const g of report.guards) {
        out(
          `  ${g.refused && g.standbyKept ? "" : "FAIL "}${g.job} ${g.case}: ${g.refused ? `refused (${g.reason})` : "not refused"}, standby ${g.standbyKept ? "kept" : "CHANGED"}`,
        );
        ok &&= g.refused && g.standbyKept;
      }
      // Before the recovery-point measurement, which runs the copies again.
      const alert = await watch.done;
      report.alerts = [alert];
      out("alerts (Prometheus on the storage pair, the rendered rules; the copy's timer stopped):");
      const alertGood =
        alert.scraped && alert.fired && alert.quietBefore && alert.afterSeconds !== null && alert.afterSeconds <= alert.boundSeconds;
      out(
        `  ${alertGood ? "" : "FAIL "}${alert.alert} for ${alert.job} (${alert.service} at ${alert.site}): ${alert.fired ? `fired ${alert.afterSeconds} s after the last success` : "did NOT fire"} (RPO ${alert.rpoSeconds} s, bound ${alert.boundSeconds} s)${alert.quietBefore ? "" : ", FIRED BEFORE THE RPO"}${alert.scraped ? "" : ", the success was never scraped"}${alert.error ? `: ${alert.error}` : ""}`,
      );
      ok &&= alertGood;
      report.rpo = [...(await databases.measureRpo(log)), ...(process.env.STANDORT_TWIN_NO_LSYNCD ? [] : await files.measureRpo(log))];
      report.backups = await backups(pair, databases, log, flags.sites ? resolve(flags.sites) : undefined);
      out("backups (the rendered units: dumps as the read-only user, restic over sftp into each store):");
      for (const b of report.backups) {
        const good = b.ran && b.snapshots >= 1 && b.treesIncluded && b.dumpsIncluded;
        out(
          `  ${good ? "" : "FAIL "}${b.job} (${b.placement}, ${b.store}): ${b.ran ? "ran" : `failed: ${b.output}`}; ${b.snapshots} snapshot(s), ${b.files} files, trees ${b.treesIncluded ? "in" : "missing"}, dumps ${b.dumpsIncluded ? "in" : "missing"}`,
        );
        ok &&= good;
      }
      report.readOnly = await readOnly(pair, databases, log);
      out("the standby answers read-only (its name through its public path; the database behind it):");
      for (const r of report.readOnly) {
        const good = r.landedReadOnly && r.writeRefused && r.standbyRows === r.primaryRows && r.primaryRows > 0;
        out(
          `  ${good ? "" : "FAIL "}${r.name} at ${r.site}: ${r.answer.split(" | ").pop()}; ${r.database} reads ${r.standbyRows}/${r.primaryRows} rows, write ${r.writeRefused ? `refused: ${r.error}` : "ACCEPTED"}`,
        );
        ok &&= good;
      }
      const p = await promotion(pair, files, log, databases);
      if (!p) {
        out(
          "promotion: no file copy between these sites runs under systemd (Kubernetes sites copy with CronJobs; the twin runs no cluster yet)",
        );
      } else {
        report.promotion = p;
        out(`promotion of ${p.service} (${p.from} -> ${p.to}) and the old primary's return, writes on both sides (files ${p.tree}):`);
        out(
          `  ${p.staleRefused ? "" : "FAIL "}the old primary's stale copy ${p.staleRefused ? "refused" : "RAN"}; the new primary ${p.newPrimaryKept ? "kept its data" : "CHANGED"}`,
        );
        out(
          `  ${p.lost === 0 && p.newWritesCopied === p.newWrites ? "" : "FAIL "}new primary's writes copied ${p.newWritesCopied}/${p.newWrites}; old primary's unreplicated writes kept aside ${p.keptAside}/${p.unreplicatedWrites}, lost ${p.lost}`,
        );
        for (const d of p.databases) {
          out(
            `  ${d.newPrimaryKept && d.lost === 0 ? "" : "FAIL "}${d.engine} ${d.database}: the new primary kept its ${d.newWrites} writes and took none of the old primary's; the old primary's ${d.unreplicatedWrites} unreplicated rows kept in place ${d.keptInPlace}, lost ${d.lost}`,
          );
        }
        ok &&=
          p.staleRefused &&
          p.newPrimaryKept &&
          p.lost === 0 &&
          p.newWritesCopied === p.newWrites &&
          p.databases.every((d) => d.newPrimaryKept);
      }
      out("recovery point (a write at the primary until readable at the standby, steady load running):");
      for (const r of report.rpo) {
        const met = r.seconds !== null && r.seconds <= r.targetSeconds;
        out(
          `  ${met ? "" : "FAIL "}${r.service}/${r.data} (${r.kind}) ${r.from} -> ${r.to}: ${r.seconds === null ? "not within the bound" : `${r.seconds} s`} (target ${r.targetSeconds} s; ${r.samples.length} writes, load ${r.loadPerSecond}/s)`,
        );
        ok &&= met;
      }
    }
    if (flags.json) writeFileSync(resolve(flags.json), JSON.stringify(report, null, 2) + "\n");
    if (flags.hold) {
      out(`holding the pair twin for inspection (Ctrl-C ends it)`);
      await new Promise<never>(() => undefined);
    }
    return ok ? 0 : 1;
  } catch (error) {
    // What ran before the failure is still worth reading.
    if (flags.json) writeFileSync(resolve(flags.json), JSON.stringify({ ...report, error: String(error) }, null, 2) + "\n");
    return failed(error, err);
  } finally {
    pair?.destroy();
  }
}

if (require.main === module) runAsProcess(main);
