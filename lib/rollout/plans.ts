/**
 * The offline plans a rollout compares: every stack's plan in the working
 * tree (this process, the real stack program under the mock runtime) and at a
 * git ref (that commit's own code and files, unpacked into a temporary folder
 * and planned by its own `scripts/plan.ts`). No credentials, no backend.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { REPOSITORY_ROOT, SITES_DIR } from "../model/load";
import { InputError } from "../model/validate";
import { loadFootprint } from "../footprint/load";
import { renderFootprintMermaid } from "../footprint/report";
import { STACKS_DIR, planStack } from "../preview/run-stack";
import { PlanSnapshot, diffPlans, hasChanges, stableJson, toSnapshot, type PlanDiff } from "../preview/plan";
import { readPlanSnapshot } from "../preview/snapshot-file";

/** The stack files' names: `stacks/Pulumi.<stack>.yaml`. */
const STACK_FILE = /^Pulumi\.([a-z0-9-]+)\.yaml$/;

/** The stacks of a stacks folder, by their stack files, sorted. */
export function stackNames(stacksDir: string = STACKS_DIR): string[] {
  if (!existsSync(stacksDir)) return [];
  return readdirSync(stacksDir)
    .map((f) => STACK_FILE.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();
}

/** Every stack's offline plan at one point in history, and the footprint diagram there. */
export interface PlanSet {
  /** Where the plans come from: `working tree` or `<ref> (<short sha>)`. */
  readonly source: string;
  readonly plans: ReadonlyMap<string, PlanSnapshot>;
  /** Stacks whose plan could not be made there (an invalid site file at that commit), with the reason. */
  readonly failed: ReadonlyMap<string, string>;
  /** The footprint as Mermaid (plan --footprint), absent when it could not be made. */
  readonly mermaid?: string;
}

/**
 * The working tree's plans, in this process. Input errors propagate: a
 * rollout never runs on files that do not validate.
 * @throws InputError naming the file, the field and the rule
 */
export async function workingTreePlans(options: { sitesDir?: string; stacksDir?: string } = {}): Promise<PlanSet> {
  // The plans are a function of this process's code and the input files: the same files are planned once.
  const key = inputsDigest(options.sitesDir ?? SITES_DIR, options.stacksDir ?? STACKS_DIR);
  const cached = treePlans.get(key);
  if (cached) return cached;
  const planned = planTree(options);
  treePlans.set(key, planned);
  planned.catch(() => treePlans.delete(key));
  return planned;
}

const treePlans = new Map<string, Promise<PlanSet>>();

/** A digest of every file a plan reads: the site files (and the footprint, the pools) and the stack files. */
function inputsDigest(sitesDir: string, stacksDir: string): string {
  const hash = createHash("sha256");
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) hash.update(`${path}\0`).update(readFileSync(path)).update("\0");
    }
  };
  walk(sitesDir);
  for (const stack of stackNames(stacksDir)) hash.update(`${stack}\0`).update(readFileSync(join(stacksDir, `Pulumi.${stack}.yaml`)));
  return hash.digest("hex");
}

async function planTree(options: { sitesDir?: string; stacksDir?: string }): Promise<PlanSet> {
  const plans = new Map<string, PlanSnapshot>();
  // The SDK prints a program's pulumi.log.info lines on the console under the mock runtime: the plan command shows
  // them, a rollout that plans every stack would bury its order under them. Warnings still show.
  const log = console.log;
  console.log = (...args: unknown[]) => {
    if (!(typeof args[0] === "string" && args[0].startsWith("info: [runtime]"))) log(...args);
  };
  try {
    for (const stack of stackNames(options.stacksDir)) {
      // Through stableJson, so that key order is the committed snapshots' and a ref's plan compares equal.
      plans.set(stack, JSON.parse(stableJson(toSnapshot(await planStack(stack, options)))) as PlanSnapshot);
    }
  } finally {
    console.log = log;
  }
  const { footprint, sites } = loadFootprint(options.sitesDir);
  return { source: "working tree", plans, failed: new Map(), mermaid: renderFootprintMermaid(footprint, sites).trimEnd() };
}

const git = (root: string, args: string[]) => spawnSync("git", ["-C", root, ...args], { encoding: "utf8" });

/**
 * Resolves a ref to its commit.
 * @throws InputError when it names no commit of the repository
 */
export function resolveCommit(ref: string, root: string = REPOSITORY_ROOT): string {
  const result = git(root, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
  if (result.status !== 0 || !/^[0-9a-f]{40}$/.test(result.stdout.trim())) {
    throw new InputError([
      `rollout: --changed-since: ${ref} names no commit of this repository (git rev-parse --verify ${ref}); in CI, fetch the history (actions/checkout with fetch-depth: 0)`,
    ]);
  }
  return result.stdout.trim();
}

/** Runs one command of the ref's tree; resolves with its exit code and the tail of its output. */
function run(cwd: string, args: string[]): Promise<{ code: number; tail: string }> {
  return new Promise((done) => {
    const env = { ...process.env };
    // npm's INIT_CWD would send the ref's command back to this folder (runAsProcess changes to it).
    delete env.INIT_CWD;
    const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("close", (code) => done({ code: code ?? 1, tail: output.trim() }));
  });
}

/** How many of the ref's plans run at once (each is one Node.js process, mostly CPU). */
const PARALLEL_PLANS = 2;

/**
 * Every stack's plan at a git ref, made by that commit's own code from that
 * commit's files (`git archive` into a temporary folder, the working tree's
 * node_modules linked in): a change to the code shows as a plan change like
 * a change to a site file. The folder is removed, also on failure.
 * @throws InputError when the ref names no commit
 */
export async function plansAtRef(ref: string, root: string = REPOSITORY_ROOT): Promise<PlanSet> {
  const commit = resolveCommit(ref, root);
  // A commit's plans never change: a process that compares against it twice plans it once.
  const key = `${root}\0${commit}`;
  const cached = refPlans.get(key);
  if (cached) return { ...(await cached), source: `${ref} (${commit.slice(0, 12)})` };
  const planned = planCommit(commit, `${ref} (${commit.slice(0, 12)})`, root);
  refPlans.set(key, planned);
  planned.catch(() => refPlans.delete(key));
  return planned;
}

const refPlans = new Map<string, Promise<PlanSet>>();

async function planCommit(commit: string, source: string, root: string): Promise<PlanSet> {
  const dir = mkdtempSync(join(tmpdir(), "standort-rollout-ref-"));
  try {
    const tar = join(dir, "ref.tar");
    const tree = join(dir, "tree");
    mkdirSync(tree);
    for (const [command, args] of [
      ["git", ["-C", root, "archive", "--format=tar", "-o", tar, commit]],
      ["tar", ["-xf", tar, "-C", tree]],
    ] as const) {
      const result = spawnSync(command, args, { encoding: "utf8" });
      if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${result.stderr.trim()}`);
    }
    // The working tree's dependencies (a committed link named node_modules gives way).
    rmSync(join(tree, "node_modules"), { recursive: true, force: true });
    symlinkSync(join(root, "node_modules"), join(tree, "node_modules"), "dir");
    const out = join(dir, "plans");
    mkdirSync(out);
    const stacks = stackNames(join(tree, "stacks"));
    const plans = new Map<string, PlanSnapshot>();
    const failed = new Map<string, string>();
    const jobs: Array<() => Promise<void>> = stacks.map((stack) => async () => {
      const file = join(out, `${stack}.json`);
      const { code, tail } = await run(tree, ["scripts/plan.ts", stack, "--json", file]);
      if (code === 0 && existsSync(file)) {
        plans.set(stack, readPlanSnapshot(file, `the plan of ${stack} at ${source}`, "a rollout bug: report it"));
      } else {
        failed.set(stack, tail.split("\n").slice(-3).join(" / ") || `exit ${code}`);
      }
    });
    let mermaid: string | undefined;
    jobs.push(async () => {
      const file = join(out, "footprint.md");
      const { code } = await run(tree, ["scripts/plan.ts", "--footprint", "--mermaid", file]);
      if (code === 0 && existsSync(file)) mermaid = /```mermaid\n([\s\S]*?)\n```/.exec(readFileSync(file, "utf8"))?.[1];
    });
    const queue = [...jobs];
    await Promise.all(
      Array.from({ length: PARALLEL_PLANS }, async () => {
        for (let job = queue.shift(); job; job = queue.shift()) await job();
      }),
    );
    return { source, plans: new Map([...plans].sort(([a], [b]) => (a < b ? -1 : 1))), failed, mermaid };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Why a stack is part of a rollout. */
export type AffectedReason =
  /** `plan`: its plan in the working tree, everything it will create. */
  | { readonly kind: "new"; readonly why: string; readonly plan?: PlanSnapshot }
  | { readonly kind: "changed"; readonly diff: PlanDiff }
  | { readonly kind: "selected" };

/** A stack of the base that the working tree no longer has: the rollout does not destroy it. */
export interface RemovedStack {
  readonly stack: string;
}

/**
 * The stacks whose offline plan differs between `base` and `now`: new ones
 * (no plan at the base, or its plan failed there), and those with any added,
 * removed or changed resource or output. Stacks only the base has are
 * reported as removed, never destroyed.
 */
export function affectedStacks(base: PlanSet, now: PlanSet): { affected: Map<string, AffectedReason>; removed: RemovedStack[] } {
  const affected = new Map<string, AffectedReason>();
  for (const [stack, plan] of now.plans) {
    const before = base.plans.get(stack);
    if (!before) {
      const why = base.failed.get(stack);
      affected.set(stack, {
        kind: "new",
        why: why ? `new: its plan at ${base.source} failed: ${why}` : `new: no stack file at ${base.source}`,
        plan,
      });
      continue;
    }
    const diff = diffPlans(before, plan);
    if (hasChanges(diff)) affected.set(stack, { kind: "changed", diff });
  }
  const removed = [...base.plans.keys()].filter((s) => !now.plans.has(s)).map((stack) => ({ stack }));
  return { affected, removed };
}
