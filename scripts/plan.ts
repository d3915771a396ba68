/**
 * `npm run plan -- <location> [--json FILE] [--diff] [--update] [--expect-no-changes] [--files DIR] [--sites DIR] [--stacks DIR] [--plans DIR]`
 * `npm run plan -- --footprint [--mermaid FILE]`
 *
 * The offline plan: runs the real stack program under the Pulumi SDK's mock
 * runtime and prints what `pulumi preview` would register. Exit codes: 0 ok,
 * 1 changes found with --expect-no-changes, 2 invalid input.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { z } from "zod";
import { REPOSITORY_ROOT } from "../lib/model/load";
import { loadFootprint, renderFootprintMermaid, renderFootprintText } from "../lib/footprint";
import { writeRenderedFiles } from "../lib/render";
import { planHostFiles } from "../lib/preview/files";
import { addressPlan, SiteModel } from "../lib/model/model";
import { InputError } from "../lib/model/validate";
import { outputFileProblems, parseFlags, pathKind, reportInputError, runAsProcess } from "./lib/cli";
import { slug } from "../lib/model/schema";
import { adapterOf } from "../lib/providers/registry";
import { STACKS_DIR, planStack, stackProviderEnv } from "../lib/preview/run-stack";
import { readPlanSnapshot } from "../lib/preview/snapshot-file";
import {
  PlanSnapshot,
  countByType,
  diffPlans,
  hasChanges,
  renderDiff,
  renderTable,
  renderTree,
  stableJson,
  toSnapshot,
} from "../lib/preview/plan";

/** CLI flags, validated like every other user input. */
export const PlanFlagsSchema = z
  .strictObject({
    location: slug.optional(),
    json: z.string().min(1).optional(),
    diff: z.boolean().default(false),
    update: z.boolean().default(false),
    expectNoChanges: z.boolean().default(false),
    files: z.string().min(1).optional(),
    footprint: z.boolean().default(false),
    mermaid: z.string().min(1).optional(),
    /** Site files to plan from. @default the repository's sites/ */
    sites: z.string().min(1).optional(),
    /** Where plan snapshots live. @default stacks/plans/ */
    plans: z.string().min(1).optional(),
    /** Stack files (`Pulumi.<location>.yaml`) to plan with. @default the repository's stacks/ */
    stacks: z.string().min(1).optional(),
  })
  .superRefine((flags, ctx) => {
    if (!flags.footprint && !flags.location) {
      ctx.addIssue({ code: "custom", path: ["location"], message: "name a location (npm run plan -- vienna) or pass --footprint" });
    }
    if (flags.expectNoChanges && !flags.diff) {
      ctx.addIssue({ code: "custom", path: ["expect-no-changes"], message: "only makes sense with --diff" });
    }
    if (flags.mermaid && !flags.footprint) {
      ctx.addIssue({ code: "custom", path: ["mermaid"], message: "only makes sense with --footprint" });
    }
    if (flags.footprint && flags.location) {
      ctx.addIssue({ code: "custom", path: ["footprint"], message: `plans no location: drop ${flags.location} or --footprint` });
    }
    if (flags.footprint) {
      for (const flag of ["json", "diff", "update", "files", "plans", "stacks"] as const) {
        if (flags[flag]) ctx.addIssue({ code: "custom", path: [flag], message: "only makes sense with a location, not with --footprint" });
      }
    }
  });
export type PlanFlags = z.infer<typeof PlanFlagsSchema>;

export function parsePlanFlags(argv: string[]): PlanFlags {
  return parseFlags(
    "plan",
    argv,
    {
      json: { type: "string" },
      diff: { type: "boolean" },
      update: { type: "boolean" },
      "expect-no-changes": { type: "boolean" },
      files: { type: "string" },
      footprint: { type: "boolean" },
      mermaid: { type: "string" },
      sites: { type: "string" },
      plans: { type: "string" },
      stacks: { type: "string" },
    },
    PlanFlagsSchema,
  );
}

/** Where a location's committed plan snapshot lives. */
export function snapshotPath(location: string, plansDir: string = join(STACKS_DIR, "plans")): string {
  return join(plansDir, `${location}.json`);
}

function describeSite(model: SiteModel): string[] {
  const provider = adapterOf(model).describe(model.provider);
  const standby = model.standbyFor.length > 0 ? `, stands by also for ${model.standbyFor.join(", ")}` : "";
  const lines = [`site ${model.name} (${model.code}, ${model.country}) on ${provider}, partner ${model.partner}${standby}`];
  if (model.public.mode === "own-prefix") {
    const r = model.public.routing;
    const how =
      r.kind === "static"
        ? `routed statically to ${r.nextHop}`
        : `announced by BGP from AS${r.localAsn} to ${r.peers.map((p) => `${p.name} ${p.address} AS${p.asn}`).join(", ")}`;
    const b = model.public.blocks;
    lines.push(`public: own prefix ${model.public.prefix}, ${how}`);
    lines.push(
      `        failover ${b.failover} (proxy ${model.public.proxyAddress}), nat ${b.nat} (${model.public.natAddress}), services ${b.services}, reserve ${b.reserve}`,
    );
  } else {
    lines.push(`public: provider-assigned failover IPs (${model.public.failoverIps.join(", ")}): ${model.public.reason}`);
  }
  // What the provider asks of the operator beyond the validation rules (limits, what to order); none for most.
  lines.push(
    ...adapterOf(model)
      .notes(model)
      .map((n) => `provider: ${n}`),
  );
  return lines;
}

/** Prints the footprint: services, placement, replication, shares, losses, violations, and the Mermaid diagram. */
export function planFootprint(flags: PlanFlags, out: (line: string) => void): number {
  const { footprint, sites } = loadFootprint(flags.sites ? resolve(flags.sites) : undefined);
  renderFootprintText(footprint, sites)
    .trimEnd()
    .split("\n")
    .forEach((l) => out(l));
  const mermaid = renderFootprintMermaid(footprint, sites).trimEnd();
  out("");
  out("```mermaid");
  mermaid.split("\n").forEach((l) => out(l));
  out("```");
  if (flags.mermaid) {
    // A Markdown file with a mermaid block renders as a diagram on a pull request page.
    writeText(flags.mermaid, `# standort footprint\n\n\`\`\`mermaid\n${mermaid}\n\`\`\`\n`, "--mermaid");
    out("");
    out(`wrote ${flags.mermaid}`);
  }
  return 0;
}

/** Prints the plan of one location; returns the process exit code. */
export async function planLocation(flags: PlanFlags & { location: string }, out: (line: string) => void): Promise<number> {
  const sitesDir = flags.sites ? resolve(flags.sites) : undefined;
  // The footprint's policies are checked before every plan, not only with --footprint.
  const { sites, footprint } = loadFootprint(sitesDir);
  const model = sites.find((s) => s.name === flags.location);
  if (!model) throw new InputError([`plan: location: ${flags.location} has no site file (known: ${sites.map((s) => s.name).join(", ")})`]);
  const stacksDir = flags.stacks ? resolve(flags.stacks) : undefined;
  // Every file is read before anything is printed: a broken snapshot stops the plan like a broken site file.
  const snapshotFile = snapshotPath(flags.location, flags.plans);
  const before = flags.diff && existsSync(snapshotFile) ? readSnapshot(snapshotFile, flags.location) : undefined;
  const run = await planStack(flags.location, { sitesDir, stacksDir });
  const snapshot = toSnapshot(run);

  out(`Previewing ${run.project}/${run.stack} (offline, Pulumi mock runtime; secrets are placeholders shown as [secret])`);
  out("");
  describeSite(model).forEach((l) => out(l));
  out("");
  out("Resources:");
  renderTree(run.resources).forEach((l) => out(`  ${l}`));
  out("");
  out("Counts per type:");
  renderTable(
    ["type", "count"],
    countByType(run.resources).map(([t, n]) => [t, String(n)]),
  ).forEach((l) => out(`  ${l}`));
  out(`  ${run.resources.length} resources`);
  out("");
  out("Address plan:");
  renderTable(
    ["segment", "cidr", "gateway", "first usable", "last usable", "vips"],
    addressPlan(model).map((r) => [r.segment, r.cidr, r.gateway, r.firstUsable, r.lastUsable, r.vips]),
  ).forEach((l) => out(`  ${l}`));
  out("");
  out("Hosts:");
  renderTable(
    ["host", "role", "physical", "addresses"],
    model.hosts.map((h) => [h.name, h.role, h.physical, h.interfaces.map((i) => `${i.segment} ${i.address}`).join(", ")]),
  ).forEach((l) => out(`  ${l}`));
  out("");
  out("Pairs:");
  renderTable(
    ["pair", "active", "passive", "heartbeat", "vrid", "vips"],
    model.pairs.map((p) => [
      p.name,
      p.active,
      p.dissolved ? "(dissolved)" : p.passive,
      p.heartbeatSegment,
      String(p.vrid),
      p.vips.map((v) => v.address).join(", "),
    ]),
  ).forEach((l) => out(`  ${l}`));

  if (flags.files) {
    const providerEnv = stackProviderEnv(flags.location, stacksDir);
    const files = planHostFiles(model, sites, footprint, providerEnv);
    const written = writable("--files", flags.files, () => writeRenderedFiles(resolve(flags.files!), files, { clean: true }));
    out("");
    out(`Host files (placeholder secrets), ${written.length} files for ${model.hosts.length} hosts, written to ${flags.files}:`);
    for (const host of model.hosts) out(`  ${host.name}: ${written.filter((w) => w.startsWith(`${host.name}/`)).length} files`);
  }

  if (flags.json) {
    writeText(flags.json, stableJson(snapshot));
    out("");
    out(`wrote ${flags.json}`);
  }
  let code = 0;
  if (flags.diff) {
    out("");
    if (!before) {
      out(`Diff: no snapshot at ${relativeToRoot(snapshotFile)} yet (create it with --update)`);
      code = flags.expectNoChanges ? 1 : 0;
    } else {
      const diff = diffPlans(before, snapshot);
      out(`Diff against ${relativeToRoot(snapshotFile)}:`);
      renderDiff(diff).forEach((l) => out(`  ${l}`));
      if (flags.expectNoChanges && hasChanges(diff)) code = 1;
    }
  }
  if (flags.update) {
    writeText(snapshotPath(flags.location, flags.plans), stableJson(snapshot), "--update");
    out(`updated ${relativeToRoot(snapshotPath(flags.location, flags.plans))}`);
  }
  return code;
}

/** Reads a committed plan snapshot; a problem says how to recreate it. */
function readSnapshot(path: string, location: string): PlanSnapshot {
  return readPlanSnapshot(path, relativeToRoot(path), `recreate it with npm run plan -- ${location} --update`);
}

/**
 * Folders and files named by flags that are of the wrong kind (a folder where a file is written, a file
 * where a folder is read or written), so that nothing is planned for a run that cannot finish.
 */
function pathFlagProblems(flags: PlanFlags): string[] {
  const problems: string[] = [];
  const kind = pathKind;
  for (const flag of ["json", "mermaid"] as const) problems.push(...outputFileProblems("plan", flag, flags[flag]));
  for (const flag of ["files", "plans"] as const) {
    const path = flags[flag];
    if (path && ["file", "unreachable"].includes(kind(path))) problems.push(`plan: --${flag}: ${path} is not a folder: name a folder`);
  }
  if (flags.stacks && kind(flags.stacks) !== "folder") {
    problems.push(`plan: --stacks: ${flags.stacks} is not a folder: name the folder that holds Pulumi.<location>.yaml`);
  }
  return problems;
}

function relativeToRoot(path: string): string {
  const rel = relative(REPOSITORY_ROOT, path);
  return rel.startsWith("..") ? path : rel;
}

/** Writes an output file; a file system that refuses (read-only, /proc, no room) is an input problem of the flag. */
function writeText(path: string, text: string, flag = "--json"): void {
  const full = resolve(process.cwd(), path);
  writable(flag, path, () => {
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
  });
}

function writable<T>(flag: string, path: string, write: () => T): T {
  try {
    return write();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!code) throw error;
    throw new OutputError([`plan: ${flag}: cannot write ${path} (${code}): name a folder this user can write to`]);
  }
}

/** An output the plan could not write: the plan itself was computed (and printed), so the trailer says so. */
class OutputError extends InputError {}

export async function main(
  argv: string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  try {
    const flags = parsePlanFlags(argv);
    const paths = pathFlagProblems(flags);
    if (paths.length > 0) throw new InputError(paths);
    if (flags.footprint) {
      return planFootprint(flags, out);
    }
    return await planLocation({ ...flags, location: flags.location! }, out);
  } catch (error) {
    return reportInputError(error, err, (n) =>
      error instanceof OutputError
        ? `${n} problem(s); the plan above is complete, its output was not written`
        : `${n} problem(s); nothing was planned`,
    );
  }
}

if (require.main === module) runAsProcess(main);
