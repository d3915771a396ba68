/**
 * The pull request comment of a rollout preview: one Markdown comment with a
 * collapsed section per affected stack (its offline plan diff) and the
 * footprint diagram when the footprint changes. Pure.
 */
import { diffPlans, renderDiff } from "../preview/plan";
import type { AffectedReason, PlanSet, RemovedStack } from "./plans";
import type { RolloutOrder } from "./order";

/** The marker the workflow finds its earlier comment by, to update it instead of adding another. */
export const COMMENT_MARKER = "<!-- standort-rollout-plan -->";
/** GitHub refuses comments over 65,536 characters; the comment stays below with room for the frame. */
export const MAX_COMMENT_CHARS = 60_000;

/** A code block's fence that no line of the content can close early. */
function fence(lines: string[]): string {
  const longest = Math.max(2, ...lines.map((l) => /^`+/.exec(l)?.[0].length ?? 0));
  return "`".repeat(longest + 1);
}

/**
 * @param base where the plans were compared from (PlanSet.source)
 * @param affected the affected stacks with why (affectedStacks)
 * @param order the rollout's order over them
 * @param footprint the footprint diagram before and after (Mermaid), shown when they differ
 * @returns Markdown, at most MAX_COMMENT_CHARS characters
 */
export function renderPlanComment(input: {
  base: PlanSet["source"];
  affected: ReadonlyMap<string, AffectedReason>;
  removed: ReadonlyArray<RemovedStack>;
  order: RolloutOrder;
  footprint: { before?: string; after?: string };
}): string {
  const head = [COMMENT_MARKER, `### standort: offline plan against \`${input.base}\``, ""];
  if (input.affected.size === 0) head.push("No stack's plan changes: nothing to roll out.");
  else
    head.push(
      `**${input.affected.size} stack${input.affected.size === 1 ? "" : "s"} affected**: ${[...input.affected.keys()].join(", ")}.` +
        ` Rollout order: ${input.order.waves.map((w) => w.join(" + ")).join(" → ")}.`,
    );
  if (input.order.readsAhead.length > 0) {
    head.push(
      `Completion pass when a peer's outputs change: ${input.order.readsAhead.map((r) => `${r.stack} (reads ${r.peers.join(", ")})`).join(", ")}.`,
    );
  }
  for (const { stack } of input.removed) {
    head.push(
      `- **${stack}**: its stack file is gone; the rollout does not destroy stacks (\`pulumi destroy --stack …/${stack}\` by hand).`,
    );
  }
  head.push("");
  const tail: string[] = [];
  const footprintChanged = input.footprint.after !== undefined && input.footprint.before !== input.footprint.after;
  if (footprintChanged) {
    const title = input.footprint.before === undefined ? "Footprint (could not be drawn at the base)" : "Footprint (changed)";
    tail.push(`<details open><summary>${title}</summary>`, "", "```mermaid", input.footprint.after!, "```", "</details>", "");
  }
  const bodies = [...input.affected].map(([stack, reason]) => {
    const lines =
      reason.kind === "changed"
        ? renderDiff(reason.diff)
        : reason.kind === "new"
          ? reason.plan
            ? renderDiff(diffPlans({ stack, resources: [], outputs: {} }, reason.plan))
            : [reason.why]
          : ["selected by --stacks"];
    const summary =
      reason.kind === "changed"
        ? lines[lines.length - 1]
        : reason.kind === "new"
          ? `${reason.why}; ${lines[lines.length - 1]}`
          : "selected";
    return { stack, lines, summary };
  });
  // Each section gets what it needs if that fits; otherwise the space is shared out so that small sections stay
  // whole and the large ones split the rest evenly.
  const frame = 200;
  let room = MAX_COMMENT_CHARS - head.join("\n").length - tail.join("\n").length - bodies.length * frame;
  const need = bodies.map((b) => b.lines.join("\n").length);
  const allowed = new Array<number>(bodies.length).fill(0);
  for (const i of [...need.keys()].sort((a, b) => need[a] - need[b])) {
    const left = bodies.length - [...allowed.keys()].filter((k) => allowed[k] > 0).length;
    allowed[i] = Math.max(500, Math.min(need[i], Math.floor(room / Math.max(1, left))));
    room -= allowed[i];
  }
  const sections: string[] = [];
  bodies.forEach(({ stack, lines, summary }, i) => {
    let shown = lines;
    if (need[i] > allowed[i]) {
      shown = [];
      for (const line of lines) {
        if ([...shown, line].join("\n").length > allowed[i] - 120) break;
        shown.push(line);
      }
      shown.push(`… ${lines.length - shown.length} more lines: npm run plan -- ${stack} --diff shows all`);
    }
    const f = fence(shown);
    sections.push(`<details><summary><b>${stack}</b>: ${summary}</summary>`, "", `${f}diff`, shown.join("\n"), f, "</details>", "");
  });
  return [...head, ...sections, ...tail].join("\n");
}
