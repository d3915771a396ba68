/**
 * Runs a rollout over a backend's stacks: previews, or updates in passes
 * until every stack has read its peers' final outputs. What a stack
 * operation is (Pulumi's Automation API, or a test's recording) is behind
 * `StackOperations`; the order comes from lib/rollout/order.ts.
 */
import { createHash } from "node:crypto";
import { PEER_OUTPUTS } from "../model/stack-config";
import { stableJson } from "../preview/plan";
import { rolloutOrder } from "./order";

/** A stack's last update in the backend. */
export interface StackState {
  /** The update's number in the stack's history (`pulumi stack history`); 0 for a stack that never ran. */
  readonly version: number;
  /** `succeeded`, `failed`, `in-progress`; absent for a stack that never ran. */
  readonly result?: string;
  /** The commit the update ran from (the engine records `git.head`). */
  readonly gitHead?: string;
  /** The commit of the stack's last succeeded update: what it runs now. Absent when none recorded one. */
  readonly deployedFrom?: string;
  /** The message of that update: a rollout's names what it read of its peers (readMarker). */
  readonly deployedMessage?: string;
}

/** What a rollout does to one stack; one implementation drives the Pulumi CLI through the Automation API. */
export interface StackOperations {
  /** The stack's state, or undefined when the backend has no such stack. */
  state(stack: string): Promise<StackState | undefined>;
  /** Creates the (empty) stack: a peer's StackReference to it then reads no outputs instead of failing. */
  create(stack: string): Promise<void>;
  /** Stores secret configuration values (never on a command line). */
  setSecrets(stack: string, values: Readonly<Record<string, string>>): Promise<void>;
  preview(stack: string, out: (line: string) => void): Promise<void>;
  /** Runs an update; resolves with the stack's outputs afterwards. */
  up(stack: string, out: (line: string) => void, message: string): Promise<Record<string, unknown>>;
  outputs(stack: string): Promise<Record<string, unknown>>;
}

/** Most passes of an update rollout: the first, the completion pass, one more when a completion changed outputs again. */
export const MAX_PASSES = 3;

/** A digest of what peers read of a stack's outputs (PEER_OUTPUTS); secrets stay in memory, only digests are kept. */
export function peerOutputsDigest(outputs: Readonly<Record<string, unknown>>): string {
  const read = Object.fromEntries(PEER_OUTPUTS.filter((k) => outputs[k] !== undefined).map((k) => [k, outputs[k]]));
  return createHash("sha256").update(stableJson(read)).digest("hex");
}

/** Digits of a peer-output digest kept in an update's message: enough to tell a change, short to read. */
const MARKER_DIGITS = 12;

/**
 * What an update read of its peers, written into its message (`read vienna=3f2a…,helsinki=9b01…`): a later
 * `--changed-since deployed` run compares it with the peers' outputs as they are then, so a completion pass that a
 * failure, a timeout or a cancelled job left undone is caught up. Digests only, never outputs.
 */
export function readMarker(seen: ReadonlyMap<string, string>): string {
  return `read ${[...seen].map(([peer, digest]) => `${peer}=${digest.slice(0, MARKER_DIGITS)}`).join(",") || "-"}`;
}

/** The peers and digests a message's readMarker names; empty for a message without one (an update made by hand). */
export function parseReadMarker(message: string | undefined): Map<string, string> {
  const match = /\bread ([a-z0-9-]+=[0-9a-f]+(?:,[a-z0-9-]+=[0-9a-f]+)*)/.exec(message ?? "");
  return new Map((match?.[1].split(",") ?? []).map((pair) => pair.split("=") as [string, string]));
}

/** Whether a full digest is the one a marker names. */
export const markerMatches = (marker: string, digest: string) => digest.slice(0, MARKER_DIGITS) === marker;

export interface RolloutRequest {
  readonly operation: "preview" | "up";
  /** The stacks to run (location names). */
  readonly stacks: ReadonlyArray<string>;
  /** stack → peers it reads (lib/rollout/order.ts stackReads), over every stack of the working tree. */
  readonly reads: ReadonlyMap<string, ReadonlyArray<string>>;
  /** Secret configuration per stack, set before its first operation. */
  readonly secrets?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** The update message recorded in each stack's history. */
  readonly message?: string;
  /** How a person runs the rest by hand: `npm run rollout -- up --stacks <stacks>`. */
  readonly command: (stacks: string[]) => string;
  /** A stack's fully qualified name, for the commands the report suggests. @default the location name */
  readonly qualified?: (stack: string) => string;
}

/** What happened to one stack in a rollout. */
export type StackOutcome = "done" | "failed" | "not run" | "needs another pass" | "not deployed" | "reads an undeployed stack";

export interface RolloutResult {
  readonly ok: boolean;
  /** Nothing ran because the selection cannot run against the backend as it is (a peer it reads does not exist). */
  readonly refused?: boolean;
  /** Every operation in the order it started: `<operation> <stack> (pass <n>)`. */
  readonly operations: string[];
  readonly outcome: ReadonlyMap<string, StackOutcome>;
}

/**
 * Runs the rollout. Preview: one preview per deployed stack, wave by wave.
 * Up: creates the stacks the backend lacks (both sides of a new pair exist
 * before either runs), then pass 1 in order, then again every stack that read
 * a peer whose outputs changed after it ran, until none did (at most
 * MAX_PASSES); a deployed stack outside the selection joins when outputs it
 * reads changed. A wave's stacks run in parallel, one operation per stack. On a
 * failure the running wave finishes, nothing further starts, and the report
 * names every stack's version and the command that continues.
 */
export async function runRollout(request: RolloutRequest, ops: StackOperations, out: (line: string) => void): Promise<RolloutResult> {
  const stacks = [...request.stacks];
  const operations: string[] = [];
  const outcome = new Map<string, StackOutcome>(stacks.map((s) => [s, "not run"]));
  const failures = new Map<string, string>();
  const readsOf = (stack: string) => request.reads.get(stack) ?? [];
  const prefixed = (stack: string) => (line: string) => out(`[${stack}] ${line}`);

  const states = new Map<string, StackState | undefined>();
  const peersOutside = [...new Set(stacks.flatMap(readsOf))].filter((p) => !stacks.includes(p)).sort();
  for (const stack of [...stacks, ...peersOutside]) states.set(stack, await ops.state(stack));

  const runWaves = async (pass: number, members: string[], step: (stack: string) => Promise<void>): Promise<boolean> => {
    for (const wave of rolloutOrder(members, request.reads).waves) {
      out(`pass ${pass}: ${wave.join(", ")}${wave.length > 1 ? " (in parallel)" : ""}`);
      await Promise.all(
        wave.map(async (stack) => {
          operations.push(`${request.operation} ${stack} (pass ${pass})`);
          try {
            await step(stack);
            outcome.set(stack, "done");
          } catch (error) {
            outcome.set(stack, "failed");
            failures.set(stack, errorLine(error));
            out(`[${stack}] ${request.operation} failed: ${errorLine(error)}`);
          }
        }),
      );
      if (failures.size > 0) return false;
    }
    return true;
  };
  const setSecrets = async (stack: string) => {
    const values = request.secrets?.get(stack);
    if (values && Object.keys(values).length > 0) await ops.setSecrets(stack, values);
  };

  if (request.operation === "preview") {
    for (const stack of stacks.filter((s) => states.get(s) === undefined)) {
      outcome.set(stack, "not deployed");
      out(`[${stack}] not deployed yet: its offline plan is its preview; the first rollout up creates it`);
    }
    // The engine reads a StackReference in a preview too: one to a stack that does not exist fails it.
    const absent = async (peer: string) => {
      if (!states.has(peer)) states.set(peer, await ops.state(peer));
      return states.get(peer) === undefined;
    };
    for (const stack of stacks.filter((s) => states.get(s) !== undefined)) {
      const missing: string[] = [];
      for (const peer of readsOf(stack)) if (await absent(peer)) missing.push(peer);
      if (missing.length === 0) continue;
      outcome.set(stack, "reads an undeployed stack");
      out(
        `[${stack}] reads ${missing.join(", ")}, not deployed yet: no preview until the rollout creates it; its offline plan shows the change`,
      );
    }
    const deployed = stacks.filter((s) => outcome.get(s) === "not run");
    const ok = await runWaves(1, deployed, async (stack) => {
      await setSecrets(stack);
      await ops.preview(stack, prefixed(stack));
    });
    if (!ok) await report(request, ops, outcome, failures, out);
    return { ok, operations, outcome };
  }

  // A stack outside the selection that a selected one reads must exist: its StackReference fails otherwise. The
  // command to run instead takes those too, and what they read in turn that is not deployed either.
  const missingPeers = peersOutside.filter((p) => states.get(p) === undefined);
  if (missingPeers.length > 0) {
    for (const peer of missingPeers) {
      const readers = stacks.filter((s) => readsOf(s).includes(peer));
      out(`${readers.join(", ")} read${readers.length === 1 ? "s" : ""} ${peer}, which is not deployed: add it to --stacks`);
    }
    const instead = new Set([...stacks, ...missingPeers]);
    for (let queue = [...missingPeers]; queue.length > 0;) {
      const peer = queue.shift()!;
      for (const next of readsOf(peer).filter((p) => !instead.has(p))) {
        if (!states.has(next)) states.set(next, await ops.state(next));
        if (states.get(next) === undefined) {
          instead.add(next);
          queue.push(next);
        }
      }
    }
    out(`nothing was run; next: ${request.command([...instead].sort())}`);
    return { ok: false, refused: true, operations, outcome };
  }
  // Both sides of a new pair exist before either runs: a reference to an empty stack reads no outputs.
  for (const stack of stacks.filter((s) => states.get(s) === undefined)) {
    operations.push(`create ${stack}`);
    out(`[${stack}] creating the stack (first deployment)`);
    await ops.create(stack);
  }
  // What peers read of each stack's outputs, now; and at the start of the rollout.
  const digest = new Map<string, string>();
  for (const stack of stacks) {
    await setSecrets(stack);
    digest.set(stack, peerOutputsDigest(states.get(stack) ? await ops.outputs(stack) : {}));
  }
  const start = new Map(digest);
  const inRollout = new Set(stacks);
  // What each stack saw of the peers it reads when it last ran. A stack that has not run, or a peer that joined the
  // rollout after the stack ran, was seen as it was at the start.
  const seen = new Map<string, Map<string, string>>();
  const saw = (stack: string, peer: string) => (seen.get(stack)?.has(peer) ? seen.get(stack)!.get(peer) : start.get(peer));
  const stale = (stack: string) => readsOf(stack).filter((p) => digest.has(p) && saw(stack, p) !== digest.get(p));
  const undeployed = new Set<string>();
  const outside = new Map<string, string>();
  let members = stacks;
  for (let pass = 1; members.length > 0; pass++) {
    if (pass > MAX_PASSES) {
      for (const stack of members) outcome.set(stack, "needs another pass");
      out(
        `the peers' outputs did not settle after ${MAX_PASSES} passes (${members.join(", ")} read changed outputs again): an output that changes on every update (pulumi stack output shows which) keeps the readers from ever being current; nothing failed`,
      );
      await report(request, ops, outcome, failures, out);
      return { ok: false, operations, outcome };
    }
    // What the members read of stacks outside the rollout, for their update messages: read before the waves, so
    // that a wave's updates start together (those stacks do not change while it runs).
    for (const peer of [...new Set(members.flatMap(readsOf))].filter((p) => !digest.has(p) && !outside.has(p)))
      outside.set(peer, peerOutputsDigest(await ops.outputs(peer)));
    const ok = await runWaves(pass, members, async (stack) => {
      const read = new Map(
        readsOf(stack)
          .filter((p) => digest.has(p))
          .map((p) => [p, digest.get(p)!]),
      );
      seen.set(stack, read);
      // Every peer it reads, including those outside the rollout (their outputs as they are now).
      for (const peer of readsOf(stack).filter((p) => !read.has(p))) read.set(peer, outside.get(peer)!);
      const message = `${request.message ?? "standort rollout"}, pass ${pass}; ${readMarker(read)}`;
      const outputs = await ops.up(stack, prefixed(stack), message);
      digest.set(stack, peerOutputsDigest(outputs));
    });
    if (!ok) {
      await report(request, ops, outcome, failures, out);
      return { ok: false, operations, outcome };
    }
    // Next: every stack that reads outputs which changed after it ran, the selected ones and any other deployed
    // stack of the working tree (a reader left out would keep a peer's old tunnel key or endpoint).
    const next: string[] = [];
    for (const stack of [...request.reads.keys()].sort()) {
      const changed = stale(stack);
      if (changed.length === 0) continue;
      const why = `${changed.join(", ")} changed the outputs it reads`;
      if (undeployed.has(stack)) continue;
      if (!inRollout.has(stack)) {
        if ((await ops.state(stack)) === undefined) {
          undeployed.add(stack);
          out(`[${stack}] not deployed: ${why}, its first rollout reads them`);
          continue;
        }
        // Its program would fail on a reference to a stack that does not exist: it catches up once that one is deployed.
        const absent: string[] = [];
        for (const peer of readsOf(stack)) if (!inRollout.has(peer) && (await ops.state(peer)) === undefined) absent.push(peer);
        if (absent.length > 0) {
          undeployed.add(stack);
          outcome.set(stack, "reads an undeployed stack");
          out(
            `[${stack}] ${why}, but it also reads ${absent.join(", ")}, not deployed: it runs in the rollout that deploys ${absent.length === 1 ? "it" : "them"}`,
          );
          continue;
        }
        inRollout.add(stack);
        outcome.set(stack, "not run");
        await setSecrets(stack);
        const own = peerOutputsDigest(await ops.outputs(stack));
        digest.set(stack, own);
        start.set(stack, own);
        out(`[${stack}] joins the rollout: ${why}`);
      } else {
        out(`[${stack}] runs again: ${why} after it ran`);
      }
      next.push(stack);
    }
    members = next;
  }
  out(`rollout complete: ${rolloutOrder([...inRollout], request.reads).sequence.join(", ")}`);
  return { ok: true, operations, outcome };
}

/** The first line of an error, without the CLI's command echo (the `error:` line the CLI printed, when there is one). */
export function errorLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^(code|stdout|stderr|err\?):/.test(l));
  return lines.find((l) => /^error:/.test(l)) ?? lines[0] ?? "failed";
}

/** After a failure: each stack's version and result in the backend, and what to run next. */
async function report(
  request: RolloutRequest,
  ops: StackOperations,
  outcome: Map<string, StackOutcome>,
  failures: ReadonlyMap<string, string>,
  out: (line: string) => void,
): Promise<void> {
  out("");
  out(`rollout stopped (${request.operation}). The stacks now:`);
  for (const [stack, what] of outcome) {
    let state: StackState | undefined;
    try {
      state = await ops.state(stack);
    } catch {
      state = undefined;
    }
    const at = state
      ? `version ${state.version}${state.result ? ` (${state.result})` : ""}${state.gitHead ? ` from ${state.gitHead.slice(0, 12)}` : ""}`
      : "not in the backend";
    out(`  ${stack.padEnd(14)} ${at.padEnd(44)} ${what}${failures.has(stack) ? `: ${failures.get(stack)}` : ""}`);
  }
  // The rest: what failed or did not run, and, until nothing is added, what ran but reads one of those (it needs
  // their new outputs).
  const rest = new Set([...outcome].filter(([, w]) => !["done", "not deployed", "reads an undeployed stack"].includes(w)).map(([s]) => s));
  for (let grew = true; grew;) {
    grew = false;
    for (const [stack, what] of outcome) {
      if (what === "done" && !rest.has(stack) && (request.reads.get(stack) ?? []).some((p) => rest.has(p))) {
        rest.add(stack);
        grew = true;
      }
    }
  }
  const qualified = request.qualified ?? ((s: string) => s);
  for (const [stack, failure] of failures) {
    if (/locked|another update is currently in progress/i.test(failure))
      out(
        `${stack} is locked: wait for the update that holds it, or, when none runs, release it with pulumi cancel --yes --stack ${qualified(stack)}`,
      );
  }
  out(`next: fix the cause, then run: ${request.command([...rest].sort())}`);
}
