/**
 * `npm run twin -- <location> [--scenario reachability|failover|partition|all] [--json FILE] [--files DIR]`
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

/** `none` boots the location and runs nothing (with --hold: to look around). */
export const SCENARIOS = ["reachability", "failover", "partition", "all", "none"] as const;
/** Failures the summary prints; --json holds all of them. */
const SHOWN_FAILURES = 40;

export const TwinFlagsSchema = z.strictObject({
  location: slug,
  scenario: z.enum(SCENARIOS).default("reachability"),
  json: z.string().min(1).optional(),
  files: z.string().min(1).optional(),
  sites: z.string().min(1).optional(),
  hold: z.boolean().default(false),
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
  let twin: SiteTwin | undefined;
  const stop = () => {
    twin?.destroy();
    process.exit(130);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const report: { -readonly [K in keyof TwinReport]: TwinReport[K] } = { location: flags.location, started: new Date().toISOString() };
  const wants = (s: (typeof SCENARIOS)[number]) => flags.scenario === s || flags.scenario === "all";
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
    if (flags.json) writeFileSync(resolve(flags.json), JSON.stringify(report, null, 2) + "\n");
    if (flags.hold) {
      out(`holding the twin for inspection (Ctrl-C ends it): machines as "nsenter --net=/run/netns/<ns> --mount=<file>":`);
      for (const m of twin.machines.values()) out(`  ${m.name}: ${m.enter().slice(0, 3).join(" ")}`);
      await new Promise<never>(() => undefined);
    }
    return ok ? 0 : 1;
  } catch (error) {
    if (error instanceof TwinInputError || error instanceof InputError) {
      error.problems.forEach((p) => err(p));
      return 2;
    }
    err(`twin: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  } finally {
    twin?.destroy();
  }
}

if (require.main === module) runAsProcess(main);
