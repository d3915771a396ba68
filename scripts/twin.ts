/**
 * `npm run twin -- <location> [--scenario reachability|failover|partition|all] [--json FILE] [--files DIR]`
 *
 * Boots the location from the files its stack installs (or from a
 * `plan --files` folder) in Linux network namespaces, with the real daemons,
 * and runs scenarios against it (see README, "The site twin"). Exit codes:
 * 0 every reachability probe as the policy says, 1 a probe failed or the
 * twin could not boot, 2 invalid input. Needs root.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { InputError } from "../lib/model/validate";
import { parseFlags, reportInputError, runAsProcess } from "./lib/cli";
import { slug } from "../lib/model/schema";
import { TwinInputError } from "../lib/twin/world";
import { SiteTwin } from "./twin/site";
import { ReachabilityReport, reachability } from "./twin/reachability";
import { FailoverEntry, failover } from "./twin/failover";
import { PartitionEntry, partition } from "./twin/partition";

export const SCENARIOS = ["reachability", "failover", "partition", "all"] as const;

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
    if (wants("reachability")) {
      const r = await reachability(twin, (l) => out(`  ${l}`));
      report.reachability = r;
      out(
        `reachability: allowed ${r.allowed.passed}/${r.allowed.tried} passed, denied ${r.denied.blocked}/${r.denied.tried} blocked, checks ${r.checks.passed}/${r.checks.tried} (${r.ms} ms)`,
      );
      for (const f of r.failures) out(`  FAIL ${f.probe}${f.rule ? ` [${f.rule}]` : ""}: ${f.happened}`);
      ok = r.failures.length === 0;
    }
    if (wants("failover")) {
      report.failover = await failover(twin, { log: (l) => out(`  ${l}`) });
      out("failover (800 clients, 1 request/s each):");
      for (const f of report.failover) {
        out(
          `  ${f.pair} ${f.event} (${f.member}): ${f.requests} requests, ${f.failed} failed, longest gap ${f.gapMs} ms, VIPs after ${f.takeoverMs ?? "never"} ms${f.publicMs !== undefined ? `, public path after ${f.publicMs ?? "never"} ms` : ""}`,
        );
      }
    }
    if (wants("partition")) {
      report.partition = await partition(twin, { log: (l) => out(`  ${l}`) });
      out("partition (one link of the active member cut for 15 s):");
      for (const p of report.partition) {
        out(
          `  ${p.pair} ${p.link} (${p.member}): at most ${p.maxHolders} holders, ${p.windowMs} ms with more than one${p.fenced.length ? `, fenced ${p.fenced.join(", ")}` : ""}`,
        );
      }
    }
    if (flags.json) writeFileSync(resolve(flags.json), JSON.stringify(report, null, 2) + "\n");
    if (flags.hold) {
      out(`holding the twin for inspection (Ctrl-C ends it): machines as "nsenter --net=/run/netns/<ns> --mount=<file>":`);
      for (const m of twin.machines.values()) out(`  ${m.name}: ${m.enter().slice(0, 3).join(" ")}`);
      for (const h of twin.hosts.values()) out(`  ${h.machine.name}: ${h.machine.enter().slice(0, 3).join(" ")}`);
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
