/**
 * The pull request comment of a rollout preview: one Markdown comment with a
 * collapsed section per affected stack (its offline plan diff) and the
 * footprint diagram when the footprint changes. Pure.
 */
import { renderDiff } from "../preview/plan";
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
  if (input.affected.size === 0 && input.removed.length === 0) {
    return [...head, "No stack's plan changes: nothing to roll out.", ""].join("\n");
  }
  head.push(
    `**${input.affected.size} stack${input.affected.size === 1 ? "" : "s"} affected**: ${[...input.affected.keys()].join(", ")}.` +
      (input.order.waves.length > 0 ? ` Rollout order: ${input.order.waves.map((w) => w.join(" + ")).join(" → ")}.` : ""),
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
  if (footprintChanged)
    tail.push("<details open><summary>Footprint (changed)</summary>", "", "```mermaid", input.footprint.after!, "```", "</details>", "");
  const budget = MAX_COMMENT_CHARS - head.join("\n").length - tail.join("\n").length - 200;
  const perStack = Math.max(500, Math.floor(budget / Math.max(1, input.affected.size)));
  const sections: string[] = [];
  for (const [stack, reason] of input.affected) {
    const body =
      reason.kind === "changed" ? renderDiff(reason.diff) : reason.kind === "new" ? [`new stack: ${reason.why}`] : ["selected by --stacks"];
    const summary = reason.kind === "changed" ? body[body.length - 1] : reason.kind === "new" ? "new stack" : "selected";
    let shown = body;
    let text = shown.join("\n");
    if (text.length > perStack) {
      shown = [];
      for (const line of body) {
        if ([...shown, line].join("\n").length > perStack - 120) break;
        shown.push(line);
      }
      shown.push(`… ${body.length - shown.length} more lines: npm run plan -- ${stack} --diff shows all`);
      text = shown.join("\n");
    }
    const f = fence(shown);
    sections.push(`<details><summary><b>${stack}</b>: ${summary}</summary>`, "", `${f}diff`, text, f, "</details>", "");
  }
  return [...head, ...sections, ...tail].join("\n");
}
