/**
 * `npm run rollout -- preview|up [--stacks a,b|all] [--changed-since <git ref>|deployed] [--dry-run] [--comment FILE]`
 *
 * Previews or rolls out the location stacks in the order their dependencies
 * give (which stack reads which peer's outputs), through Pulumi's Automation
 * API. `--changed-since` takes the stacks whose offline plan differs between
 * the ref and the working tree; `--changed-since deployed` compares each stack
 * with the commit of its last succeeded update. `--dry-run` runs no pulumi command: it prints
 * the affected stacks, their plan diffs and the passes. Secret configuration
 * comes from STANDORT_STACK_SECRETS (JSON, see README), set on stdin, never
 * printed. Exit codes: 0 ok, 1 a stack operation failed, 2 invalid input or a
 * selection that cannot run (nothing was run).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { REPOSITORY_ROOT } from "../lib/model/load";
import { InputError } from "../lib/model/validate";
import { SECRET_CONFIG_KEYS } from "../lib/model/stack-config";
import { stackConfigOf } from "../lib/preview/run-stack";
import { diffPlans, hasChanges, renderDiff } from "../lib/preview/plan";
import { stackReads, rolloutOrder } from "../lib/rollout/order";
import { AffectedReason, PlanSet, affectedStacks, plansAtRef, resolveCommit, workingTreePlans } from "../lib/rollout/plans";
import { renderPlanComment } from "../lib/rollout/comment";
import {
  StackOperations,
  StackState,
  errorLine,
  markerMatches,
  parseReadMarker,
  peerOutputsDigest,
  runRollout,
} from "../lib/rollout/engine";
import { automationOperations } from "../lib/rollout/automation";
import { outputFileProblems, parseFlags, reportInputError, runAsProcess } from "./lib/cli";

export const RolloutFlagsSchema = z
  .strictObject({
    operation: z.enum(["preview", "up"]),
    /** Comma-separated location names, or `all`. */
    stacks: z
      .string()
      .regex(/^(all|[a-z0-9-]+(,[a-z0-9-]+)*)$/, "a comma-separated list of locations (vienna,karlsruhe) or all")
      .optional(),
    changedSince: z.string().min(1).optional(),
    dryRun: z.boolean().default(false),
    /** Where the pull request comment (Markdown) is written. */
    comment: z.string().min(1).optional(),
  })
  .superRefine((flags, ctx) => {
    if (!flags.stacks && !flags.changedSince)
      ctx.addIssue({
        code: "custom",
        path: ["stacks"],
        message: "name the stacks (--stacks vienna,karlsruhe or --stacks all) or --changed-since <git ref>",
      });
    if (flags.comment && !flags.changedSince)
      ctx.addIssue({
        code: "custom",
        path: ["comment"],
        message: "only makes sense with --changed-since (the comment shows what changed)",
      });
  });
export type RolloutFlags = z.infer<typeof RolloutFlagsSchema>;

export function parseRolloutFlags(argv: string[]): RolloutFlags {
  return parseFlags(
    "rollout",
    argv,
    { stacks: { type: "string" }, "changed-since": { type: "string" }, "dry-run": { type: "boolean" }, comment: { type: "string" } },
    RolloutFlagsSchema,
    ["operation"],
  );
}

/** The environment variable that carries secret stack configuration from a CI secret store. */
export const SECRETS_VARIABLE = "STANDORT_STACK_SECRETS";

/**
 * The shape of STANDORT_STACK_SECRETS: `{"<location>" | "*": {"<secret key>": "<value>"}}`; `*` applies to every
 * stack, a location's own entry wins. Keys are the stack configuration's secret keys (without `standort:`).
 */
function stackSecretsSchema(stacks: ReadonlyArray<string>) {
  const entry = z.strictObject(Object.fromEntries(SECRET_CONFIG_KEYS.map((k) => [k, z.string().min(1).optional()])));
  return z.partialRecord(z.enum(["*", ...stacks] as [string, ...string[]]), entry);
}

/**
 * Reads STANDORT_STACK_SECRETS. Problems name the variable, a known location or secret key, and the rule: never a
 * value, nor a key the schema does not know (a CI store masks only the whole secret, not pieces of it).
 * @throws InputError
 */
export function stackSecrets(raw: string | undefined, stacks: ReadonlyArray<string>): Map<string, Record<string, string>> {
  const result = new Map<string, Record<string, string>>();
  if (raw === undefined || raw.trim() === "") return result;
  const shape = `expected {"*" or a location: {"sshPrivateKey": "…", …}}`;
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new InputError([`${SECRETS_VARIABLE}: is not valid JSON: ${shape}`]);
  }
  // JSON.parse keeps "__proto__" as an own key, which a record would silently drop.
  const keysOf = (v: unknown) => (v && typeof v === "object" && !Array.isArray(v) ? Object.keys(v) : []);
  if (keysOf(data).includes("__proto__") || keysOf(data).some((k) => keysOf((data as Record<string, unknown>)[k]).includes("__proto__")))
    throw new InputError([`${SECRETS_VARIABLE}: holds a __proto__ key: ${shape}`]);
  const parsed = stackSecretsSchema(stacks).safeParse(data);
  if (!parsed.success) {
    const known = (segment: PropertyKey | undefined) =>
      typeof segment === "string" &&
      (segment === "*" || stacks.includes(segment) || (SECRET_CONFIG_KEYS as readonly string[]).includes(segment));
    throw new InputError(
      parsed.error.issues.map((issue) => {
        const path = issue.path.filter(known).map(String).join(".");
        const where = `${SECRETS_VARIABLE}${path ? `: ${path}` : ""}`;
        switch (issue.code) {
          case "invalid_key":
            return `${where}: an entry is neither * nor a location (locations: ${stacks.join(", ")})`;
          case "unrecognized_keys":
            if (issue.path.length === 0)
              return `${where}: ${issue.keys.length} entr${issue.keys.length === 1 ? "y is" : "ies are"} neither * nor a location (locations: ${stacks.join(", ")})`;
            return `${where}: ${issue.keys.length} key(s) are not secret keys of the stack configuration (known: ${SECRET_CONFIG_KEYS.join(", ")})`;
          case "too_small":
            return `${where}: must not be empty`;
          default:
            return `${where}: ${issue.code === "invalid_type" ? `must be ${["object", "record"].includes(String(issue.expected)) ? "an object" : `a ${issue.expected}`}` : "is not valid"}: ${shape}`;
        }
      }),
    );
  }
  for (const stack of stacks) {
    const values = Object.fromEntries(
      Object.entries({ ...parsed.data["*"], ...parsed.data[stack] }).filter((e): e is [string, string] => typeof e[1] === "string"),
    );
    if (Object.keys(values).length > 0) result.set(stack, values);
  }
  return result;
}

/** The command that repeats a rollout over the given stacks. */
export const rolloutCommand = (operation: string) => (stacks: string[]) => `npm run rollout -- ${operation} --stacks ${stacks.join(",")}`;

function describeReason(reason: AffectedReason): string {
  return reason.kind === "new" ? reason.why : reason.kind === "changed" ? "its plan changes" : "selected";
}

/** The `--changed-since` value that compares each stack with the commit of its own last succeeded update. */
export const DEPLOYED = "deployed";

/**
 * Runs the command line; the repository is `root` (tests pass a copy).
 * @returns the exit code: 0 ok, 1 a stack operation failed or the pulumi CLI does not run, 2 invalid input or a
 *   selection that cannot run (nothing was run)
 * @throws InputError for invalid input (main turns it into exit 2)
 */
export async function rollout(
  argv: string[],
  out: (line: string) => void,
  err: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
  /** The repository to roll out (its sites/, stacks/ and git history). @default this repository */
  root: string = REPOSITORY_ROOT,
): Promise<number> {
  const flags = parseRolloutFlags(argv);
  const early = outputFileProblems("rollout", "comment", flags.comment);
  if (flags.changedSince === DEPLOYED && flags.dryRun)
    early.push(`rollout: --changed-since: ${DEPLOYED} reads each stack's history from the backend: drop --dry-run, or name a commit`);
  if (flags.changedSince === DEPLOYED && flags.comment)
    early.push(`rollout: --comment: compares with one commit: name it in --changed-since instead of ${DEPLOYED}`);
  if (early.length > 0) throw new InputError(early);
  const stacksDir = join(root, "stacks");
  const now = await workingTreePlans({ sitesDir: join(root, "sites"), stacksDir });
  const all = [...now.plans.keys()];
  const named = !flags.stacks || flags.stacks === "all" ? all : [...new Set(flags.stacks.split(","))];
  const unknown = named.filter((s) => !all.includes(s));
  if (unknown.length > 0)
    throw new InputError(
      unknown.map((s) => `rollout: --stacks: ${s} has no stack file stacks/Pulumi.${s}.yaml (known: ${all.join(", ")})`),
    );
  const secrets = stackSecrets(env[SECRETS_VARIABLE], all);
  // Each stack under its fully qualified name, the one its peers' StackReferences read.
  const qualified = new Map(
    all.map((s) => {
      return [s, `${stackConfigOf(s, stacksDir).stackPrefix}/${s}`];
    }),
  );
  let operations: StackOperations | undefined;
  const connect = async (): Promise<StackOperations | undefined> => {
    try {
      return (operations ??= await automationOperations({ workDir: root, qualified: (s) => qualified.get(s)! }));
    } catch (error) {
      err(`rollout: the pulumi CLI does not run: ${errorLine(error)}: install it (README, Rollout and CI) or use --dry-run`);
      return undefined;
    }
  };

  let selected = new Map<string, AffectedReason>(named.map((s) => [s, { kind: "selected" } as const]));
  const reads = stackReads(now.plans);
  const showAffected = (source: string) => {
    out(`compared the offline plans of ${named.length} stack${named.length === 1 ? "" : "s"}: ${source} → working tree`);
    if (selected.size === 0) out(`affected: none (no stack's offline plan changes${flags.stacks ? ` among ${named.join(", ")}` : ""})`);
    for (const [stack, reason] of selected) {
      out(`affected: ${stack}: ${describeReason(reason)}`);
      if (reason.kind === "changed") renderDiff(reason.diff).forEach((l) => out(`    ${l}`));
    }
  };
  if (flags.changedSince === DEPLOYED) {
    // Each stack against the commit it was last deployed from: a push whose rollout was skipped, rejected or failed
    // is still rolled out by the next one.
    const ops = await connect();
    if (!ops) return 1;
    try {
      const states = new Map<string, StackState | undefined>();
      for (const stack of all) states.set(stack, await ops.state(stack));
      const digests = new Map<string, Promise<string>>();
      const digestOf = (stack: string) => {
        if (!digests.has(stack)) digests.set(stack, ops.outputs(stack).then(peerOutputsDigest));
        return digests.get(stack)!;
      };
      const behind: string[] = [];
      selected = new Map();
      for (const stack of named) {
        const reason = await deployedReason(stack, states, now, root, digestOf, behind);
        if (reason) selected.set(stack, reason);
      }
      if (behind.length > 0)
        throw new InputError(
          behind.map(
            (b) => `rollout: --changed-since: ${b}; a rollout from this checkout would roll it back: run from the newest commit of main`,
          ),
        );
    } catch (error) {
      if (error instanceof InputError) throw error;
      err(`rollout: ${errorLine(error)}`);
      err(`rollout: nothing was run; check the backend (pulumi whoami), then run the same command again`);
      return 1;
    }
    showAffected("each stack's last succeeded update");
  } else if (flags.changedSince) {
    const base = await plansAtRef(flags.changedSince, root);
    const { affected, removed } = affectedStacks(base, now);
    selected = new Map([...affected].filter(([s]) => named.includes(s)));
    for (const { stack } of removed) out(`${stack}: no stack file any more; a rollout never destroys a stack (pulumi destroy by hand)`);
    showAffected(base.source);
    if (flags.comment) {
      const order = rolloutOrder([...selected.keys()], reads);
      const text = renderPlanComment({
        base: base.source,
        affected: selected,
        removed,
        order,
        footprint: { before: base.mermaid, after: now.mermaid },
      });
      mkdirSync(dirname(resolve(flags.comment)), { recursive: true });
      writeFileSync(resolve(flags.comment), text);
      out(`wrote ${flags.comment}`);
    }
  }
  const stacks = [...selected.keys()];
  if (stacks.length === 0) return 0;

  const order = rolloutOrder(stacks, reads);
  out("");
  out(`${flags.operation} of ${stacks.length} stack${stacks.length === 1 ? "" : "s"}, in the order of the outputs they read:`);
  for (const stack of order.sequence) {
    const peers = reads.get(stack) ?? [];
    out(`  ${stack} reads ${peers.length > 0 ? peers.join(", ") : "no peer"}`);
  }
  out(`pass 1:`);
  order.waves.forEach((wave, i) => out(`  wave ${i + 1}: ${wave.join(", ")}${wave.length > 1 ? " (in parallel)" : ""}`));
  if (flags.operation === "up") {
    out(
      `pass 2, only for a stack whose peer's outputs (tunnel keys, endpoint, credentials, proxy address) changed after it ran; always on a first deployment:`,
    );
    // Readers of the selected stacks, and in turn their readers: each may join when outputs it reads change.
    const followers: string[] = [];
    for (let grew = true; grew;) {
      grew = false;
      for (const s of all.filter((s) => !stacks.includes(s) && !followers.includes(s)))
        if ((reads.get(s) ?? []).some((p) => stacks.includes(p) || followers.includes(p))) grew = followers.push(s) > 0;
    }
    followers.sort();
    if (order.readsAhead.length + followers.length === 0) out("  none can be needed: every stack runs after the peers it reads");
    for (const r of order.readsAhead)
      out(`  ${r.stack} (reads ${r.peers.join(", ")}, which run${r.peers.length === 1 ? "s" : ""} after it)`);
    // Readers outside the selection join when outputs they read change (lib/rollout/engine.ts).
    if (followers.length > 0)
      out(
        `  and, where deployed, ${followers.join(", ")} (not selected), when the outputs they read change: no peer keeps a stale key or endpoint`,
      );
  }
  if (flags.dryRun) {
    out("dry run: no pulumi command was run");
    return 0;
  }

  const ops = await connect();
  if (!ops) return 1;
  out("");
  let result;
  try {
    result = await runRollout(
      {
        operation: flags.operation,
        stacks,
        reads,
        secrets,
        message: `standort rollout${flags.changedSince ? ` of the changes since ${flags.changedSince}` : ""}`,
        command: rolloutCommand(flags.operation),
        qualified: (s) => qualified.get(s) ?? s,
      },
      ops,
      out,
    );
  } catch (error) {
    // The backend refused before or between the passes (a login, a stack it cannot create): nothing half-reported.
    err(`rollout: ${errorLine(error)}`);
    err(`rollout: nothing further was run; check the backend (pulumi whoami), then: ${rolloutCommand(flags.operation)(stacks)}`);
    return 1;
  }
  return result.ok ? 0 : result.refused ? 2 : 1;
}

/**
 * Why a stack is part of a `--changed-since deployed` rollout, or undefined when it runs what the working tree would
 * deploy and has read its peers' current outputs. A stack deployed from a commit this checkout does not contain is
 * added to `behind` (a rollout from here would roll it back).
 */
async function deployedReason(
  stack: string,
  states: ReadonlyMap<string, StackState | undefined>,
  now: PlanSet,
  root: string,
  digestOf: (stack: string) => Promise<string>,
  behind: string[],
): Promise<AffectedReason | undefined> {
  const plan = now.plans.get(stack)!;
  const state = states.get(stack);
  const short = (sha: string) => sha.slice(0, 12);
  if (!state) return { kind: "new", why: "not in the backend", plan };
  if (state.result !== undefined && state.result !== "succeeded")
    return { kind: "new", why: `its last update (version ${state.version}) ${state.result}`, plan };
  if (!state.deployedFrom) return { kind: "new", why: "in the backend, but no update of it succeeded", plan };
  const from = state.deployedFrom;
  if (!isAncestor(from, root)) {
    let known = true;
    try {
      resolveCommit(from, root);
    } catch {
      known = false;
    }
    if (known) behind.push(`${stack} was last deployed from ${short(from)}, which HEAD does not contain`);
    else return { kind: "new", why: `its deployed commit ${short(from)} is not in this clone (fetch the whole history)`, plan };
  }
  const base = await plansAtRef(from, root);
  const before = base.plans.get(stack);
  if (!before) {
    const failed = base.failed.get(stack);
    return { kind: "new", why: `no plan of it at its deployed commit ${short(from)}${failed ? `: ${failed}` : ""}`, plan };
  }
  const diff = diffPlans(before, plan);
  if (hasChanges(diff)) return { kind: "changed", diff };
  // Same plan: did it read its peers' outputs as they are now? (A completion pass a failure or a cancelled job left
  // undone.) Only a rollout's update names what it read.
  const stale: string[] = [];
  for (const [peer, marker] of parseReadMarker(state.deployedMessage)) {
    if (states.get(peer) && !markerMatches(marker, await digestOf(peer))) stale.push(peer);
  }
  if (stale.length > 0)
    return { kind: "new", why: `it reads ${stale.join(", ")}, whose outputs changed after its last succeeded update`, plan };
  return undefined;
}

/** Whether `commit` is HEAD or an ancestor of it (`git merge-base --is-ancestor`). */
function isAncestor(commit: string, root: string): boolean {
  return spawnSync("git", ["-C", root, "merge-base", "--is-ancestor", commit, "HEAD"]).status === 0;
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await rollout(
      argv,
      (l) => console.log(l),
      (l) => console.error(l),
    );
  } catch (error) {
    return reportInputError(
      error,
      (l) => console.error(l),
      (n) => `rollout: ${n} problem${n === 1 ? "" : "s"}: nothing was run`,
    );
  }
}

if (require.main === module) runAsProcess(main);
