/**
 * The order a rollout runs stacks in: derived from which stack reads which
 * peer's outputs (its plan's `pulumi:pulumi:StackReference` resources), never
 * declared by hand. Pure functions; lib/rollout/engine.ts executes the order.
 */
import type { PlanSnapshot } from "../preview/plan";

/** The resource type of a stack reference (Pulumi's built-in provider). */
export const STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference";

/**
 * Which stacks each stack reads outputs from: the last segment of every
 * StackReference's `name` input (`<organization>/<project>/<stack>`).
 * @param plans offline plans by stack (location) name
 * @returns stack → the peers it reads, sorted; peers without a plan are kept (a reference to an unknown stack is the
 *   reader's problem, shown by the rollout)
 */
export function stackReads(plans: ReadonlyMap<string, Pick<PlanSnapshot, "resources">>): Map<string, string[]> {
  const reads = new Map<string, string[]>();
  for (const [stack, plan] of [...plans].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const peers = plan.resources
      .filter((r) => r.type === STACK_REFERENCE_TYPE && typeof r.inputs.name === "string")
      .map((r) => (r.inputs.name as string).split("/").pop()!)
      .filter((peer) => peer !== stack);
    reads.set(stack, [...new Set(peers)].sort());
  }
  return reads;
}

/** A rollout's order over the selected stacks. */
export interface RolloutOrder {
  /** Every selected stack once, in the order of the first pass. */
  readonly sequence: string[];
  /**
   * The first pass as waves: the stacks of one wave read nothing from each other in this order and run in parallel;
   * a wave starts when the one before it has finished.
   */
  readonly waves: string[][];
  /**
   * Stacks that run before a selected peer they read (the dependencies form a cycle: partners read each other's
   * tunnel keys). Such a stack runs again in the completion pass when that peer's outputs changed after it ran; the
   * first deployment of a new partner pair always needs it.
   */
  readonly readsAhead: ReadonlyArray<{ readonly stack: string; readonly peers: string[] }>;
}

/**
 * Orders the selected stacks so that a stack runs after the peers it reads.
 * Dependencies among the selected stacks only count (a stack outside the
 * selection is not changed by the rollout). Cycles are broken greedily
 * (Eades, Lin and Smyth's heuristic for a small feedback arc set): next comes
 * the stack with the fewest unrun peers it reads, then the one most others
 * read, then by name. An acyclic selection gets a topological order.
 * @param selected stack names
 * @param reads stack → peers it reads (stackReads)
 */
export function rolloutOrder(selected: ReadonlyArray<string>, reads: ReadonlyMap<string, ReadonlyArray<string>>): RolloutOrder {
  const chosen = new Set(selected);
  const readsOf = (stack: string) => (reads.get(stack) ?? []).filter((p) => chosen.has(p) && p !== stack);
  const remaining = new Set(chosen);
  const sequence: string[] = [];
  while (remaining.size > 0) {
    const rank = (stack: string) => ({
      waiting: readsOf(stack).filter((p) => remaining.has(p)).length,
      readers: [...remaining].filter((other) => readsOf(other).includes(stack)).length,
    });
    const next = [...remaining].sort((a, b) => {
      const ra = rank(a);
      const rb = rank(b);
      return ra.waiting - rb.waiting || rb.readers - ra.readers || (a < b ? -1 : a > b ? 1 : 0);
    })[0];
    sequence.push(next);
    remaining.delete(next);
  }
  const position = new Map(sequence.map((s, i) => [s, i]));
  // A stack's wave: one after the latest wave of a peer it reads that runs before it.
  const wave = new Map<string, number>();
  for (const stack of sequence) {
    const before = readsOf(stack).filter((p) => position.get(p)! < position.get(stack)!);
    wave.set(stack, before.length === 0 ? 0 : Math.max(...before.map((p) => wave.get(p)!)) + 1);
  }
  const waves: string[][] = [];
  for (const stack of sequence) (waves[wave.get(stack)!] ??= []).push(stack);
  const readsAhead = sequence
    .map((stack) => ({ stack, peers: readsOf(stack).filter((p) => position.get(p)! > position.get(stack)!) }))
    .filter((r) => r.peers.length > 0);
  return { sequence, waves: waves.map((w) => w.sort()), readsAhead };
}
