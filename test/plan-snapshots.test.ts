// The committed plan snapshots (stacks/plans/<location>.json) are what the
// code and site files plan today: a change to either shows up as a stack diff
// in review, and CI fails until the snapshot is refreshed with --update and
// committed with the change.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { planStack } from "../lib/preview/run-stack";
import { PlanSnapshot, diffPlans, hasChanges, renderDiff, stableJson, toSnapshot } from "../lib/preview/plan";
import { snapshotPath } from "../scripts/plan";
import { siteNamesIn } from "./helpers/sites";

// Every location of the sites folder: a new one is held to its snapshot like the others.
for (const location of siteNamesIn()) {
  test(`stacks/plans/${location}.json is current (npm run plan -- ${location} --update refreshes it)`, async () => {
    const committed = readFileSync(snapshotPath(location), "utf8");
    const now = toSnapshot(await planStack(location));
    const diff = diffPlans(JSON.parse(committed) as PlanSnapshot, now);
    assert.ok(!hasChanges(diff), `the plan of ${location} differs from its snapshot:\n${renderDiff(diff).slice(0, 40).join("\n")}`);
    // Byte for byte, so that regenerating it on another machine changes nothing.
    assert.equal(stableJson(now), committed);
  });
}
