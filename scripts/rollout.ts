/**
 * `npm run rollout -- preview|up [--stacks a,b|all] [--changed-since <git ref>] [--dry-run] [--comment FILE]`
 *
 * Previews or rolls out the location stacks in the order their dependencies
 * give (which stack reads which peer's outputs), through Pulumi's Automation
 * API. `--changed-since` takes the stacks whose offline plan differs between
 * the ref and the working tree. `--dry-run` runs no pulumi command: it prints
 * the affected stacks, their plan diffs and the passes. Secret configuration
 * comes from STANDORT_STACK_SECRETS (JSON, see README), set on stdin, never
 * printed. Exit codes: 0 ok, 1 a stack operation failed, 2 invalid input.
 */
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { REPOSITORY_ROOT } from "../lib/model/load";
import { InputError } from "../lib/model/validate";
import { SECRET_CONFIG_KEYS, parseStackConfig } from "../lib/model/stack-config";
import { readStackConfig } from "../lib/preview/run-stack";
import { renderDiff } from "../lib/preview/plan";
import { stackReads, rolloutOrder } from "../lib/rollout/order";
import { AffectedReason, affectedStacks, plansAtRef, workingTreePlans } from "../lib/rollout/plans";
import { renderPlanComment } from "../lib/rollout/comment";
import { errorLine, runRollout } from "../lib/rollout/engine";
import { automationOperations } from "../lib/rollout/automation";
import { parseFlags, reportInputError, runAsProcess } from "./lib/cli";

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
 * `{"<location>" | "*": {"<secret key>": "<value>"}}`: `*` applies to every stack, a location's own entry wins.
 * Keys are the stack configuration's secret keys (without `standort:`).
 */
const StackSecretsSchema = z.record(
  z.string().regex(/^(\*|[a-z0-9-]+)$/, "a location name or *"),
  z.partialRecord(z.enum(SECRET_CONFIG_KEYS), z.string().min(1, "must not be empty")),
);

/**
 * Reads STANDORT_STACK_SECRETS. Problems name the variable and the field, never a value.
 * @throws InputError
 */
export function stackSecrets(raw: string | undefined, stacks: ReadonlyArray<string>): Map<string, Record<string, string>> {
  const result = new Map<string, Record<string, string>>();
  if (raw === undefined || raw.trim() === "") return result;
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new InputError([`${SECRETS_VARIABLE}: is not valid JSON: expected {"<location>" or "*": {"sshPrivateKey": "…"}}`]);
  }
  const parsed = StackSecretsSchema.safeParse(data);
  if (!parsed.success) {
    // Only paths and rules: a value of this variable is a secret.
    throw new InputError(
      parsed.error.issues.map(
        (i) => `${SECRETS_VARIABLE}: ${i.path.map(String).join(".") || "(value)"}: ${i.message.replace(/received .*/, "")}`,
      ),
    );
  }
  const unknown = Object.keys(parsed.data).filter((k) => k !== "*" && !stacks.includes(k));
  if (unknown.length > 0)
    throw new InputError(unknown.map((k) => `${SECRETS_VARIABLE}: ${k}: is not a stack (known: ${stacks.join(", ")})`));
  for (const stack of stacks) {
    const values = { ...parsed.data["*"], ...parsed.data[stack] } as Record<string, string>;
    if (Object.keys(values).length > 0) result.set(stack, values);
  }
  return result;
}

/** The command that repeats a rollout over the given stacks. */
export const rolloutCommand = (operation: string) => (stacks: string[]) => `npm run rollout -- ${operation} --stacks ${stacks.join(",")}`;

function describeReason(reason: AffectedReason): string {
  return reason.kind === "new" ? `new (${reason.why})` : reason.kind === "changed" ? "its plan changes" : "selected";
}

/**
 * @returns the exit code
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
  const stacksDir = join(root, "stacks");
  const now = await workingTreePlans({ sitesDir: join(root, "sites"), stacksDir });
  const all = [...now.plans.keys()];
  const named = !flags.stacks || flags.stacks === "all" ? all : flags.stacks.split(",");
  const unknown = named.filter((s) => !all.includes(s));
  if (unknown.length > 0)
    throw new InputError(
      unknown.map((s) => `rollout: --stacks: ${s} has no stack file stacks/Pulumi.${s}.yaml (known: ${all.join(", ")})`),
    );
  const secrets = stackSecrets(env[SECRETS_VARIABLE], all);

  let selected = new Map<string, AffectedReason>(named.map((s) => [s, { kind: "selected" } as const]));
  const reads = stackReads(now.plans);
  if (flags.changedSince) {
    const base = await plansAtRef(flags.changedSince, root);
    const { affected, removed } = affectedStacks(base, now);
    selected = new Map([...affected].filter(([s]) => named.includes(s)));
    out(`compared the offline plans of ${all.length} stacks: ${base.source} → working tree`);
    for (const { stack } of removed) out(`${stack}: no stack file any more; a rollout never destroys a stack (pulumi destroy by hand)`);
    if (selected.size === 0) out(`affected: none (no stack's offline plan changes${flags.stacks ? ` among ${named.join(", ")}` : ""})`);
    for (const [stack, reason] of selected) {
      out(`affected: ${stack}: ${describeReason(reason)}`);
      if (reason.kind === "changed") renderDiff(reason.diff).forEach((l) => out(`    ${l}`));
    }
    if (flags.comment) {
      const order = rolloutOrder([...selected.keys()], reads);
      const text = renderPlanComment({
        base: base.source,
        affected: selected,
        removed,
        order,
        footprint: { before: base.mermaid, after: now.mermaid },
      });
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
    const followers = all.filter((s) => !stacks.includes(s) && (reads.get(s) ?? []).some((p) => stacks.includes(p)));
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

  // Each stack under its fully qualified name, the one its peers' StackReferences read.
  const qualified = new Map(
    all.map((s) => {
      const { config, secretKeys } = readStackConfig(s, stacksDir);
      return [s, `${parseStackConfig(config, `stacks/Pulumi.${s}.yaml`, (k) => secretKeys.includes(k)).stackPrefix}/${s}`];
    }),
  );
  let operations;
  try {
    operations = await automationOperations({ workDir: root, qualified: (s) => qualified.get(s)! });
  } catch (error) {
    err(
      `rollout: the pulumi CLI does not run (${error instanceof Error ? error.message.split("\n")[0] : String(error)}): install it (README, CI from zero) or use --dry-run`,
    );
    return 1;
  }
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
      },
      operations,
      out,
    );
  } catch (error) {
    // The backend refused before or between the passes (a login, a stack it cannot create): nothing half-reported.
    err(`rollout: ${errorLine(error)}`);
    err(`rollout: nothing further was run; check the backend (pulumi whoami), then: ${rolloutCommand(flags.operation)(stacks)}`);
    return 1;
  }
  return result.ok ? 0 : 1;
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
