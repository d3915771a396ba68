// Promotion and migration as reviewed changes: editing one service in
// sites/footprint.yaml changes, in every site's plan diff, that service's
// resources at the sites it touches and nothing else.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { planStack } from "../lib/preview/run-stack";
import { FileChange, PlanDiff, PlanSnapshot, diffPlans, fileChanges, toSnapshot } from "../lib/preview/plan";
import { tempSites } from "./helpers/sites";

const LOCATIONS = ["frankfurt", "helsinki", "karlsruhe", "vienna"] as const;
const sites = tempSites();
after(() => sites.dispose());

async function planAll(): Promise<Record<string, PlanSnapshot>> {
  const plans: Record<string, PlanSnapshot> = {};
  // One at a time: the mock runtime is global to the process.
  for (const location of LOCATIONS) plans[location] = toSnapshot(await planStack(location, { sitesDir: sites.dir }));
  return plans;
}

function editFootprint(from: string, to: string): void {
  const path = join(sites.dir, "footprint.yaml");
  const text = readFileSync(path, "utf8");
  assert.ok(text.includes(from), `footprint.yaml holds ${JSON.stringify(from)}`);
  writeFileSync(path, text.replace(from, to));
}

const last = (urn: string) => urn.split("::").pop()!;

/**
 * Everything a change touches, classified at the level of files: the
 * service's own files (jobs, database settings named after it), the proxies'
 * HAProxy file (its backends), and packet filters whose only changed lines
 * are the app-services port set (and the ruleset's digest stamp). The host
 * transactions and their confirmations change whenever one of their files
 * does. Anything else is returned as unexplained.
 */
function unexplained(diff: PlanDiff, before: PlanSnapshot, after: PlanSnapshot, service: string): string[] {
  const onlyPortLines = (change: FileChange) => {
    const a = (change.before ?? "").split("\n");
    const b = (change.after ?? "").split("\n");
    const changed = [...a.filter((l) => !b.includes(l)), ...b.filter((l) => !a.includes(l))].filter(
      (l) => !/^\tcomment "standort [0-9a-f]+"$/.test(l),
    );
    return changed.length > 0 && changed.every((l) => /comment "(dmz|internet)-to-(app|proxy)-/.test(l) || /app-services/.test(l));
  };
  const files = fileChanges(before, after)
    .filter((c) => {
      if (c.path.includes(`-${service}-`) || c.path.includes(`/${service}-`)) return false;
      if (c.path === "/etc/haproxy/haproxy.cfg") return false;
      if (c.path === "/etc/nftables.conf" && onlyPortLines(c)) return false;
      return true;
    })
    .map((c) => `${c.resource}: ${c.kind} ${c.path}`);
  const touched = [...diff.added, ...diff.removed, ...diff.changed.map((c) => c.urn)].filter(
    (urn) => !/-(tx|confirm)$/.test(last(urn)) && !last(urn).includes(`-${service}-`),
  );
  return [...touched, ...files];
}

test("promoting one service changes that service's role at both of its sites and nothing else", async () => {
  const before = await planAll();
  editFootprint(
    "primary: vienna\n    standby: karlsruhe\n    mode: standby",
    "primary: vienna\n    standby: karlsruhe\n    mode: promoted",
  );
  const promoted = await planAll();
  try {
    for (const location of ["frankfurt", "helsinki"]) {
      const diff = diffPlans(before[location], promoted[location]);
      assert.deepEqual([diff.added, diff.removed, diff.changed, diff.outputs], [[], [], [], []], `${location} is untouched`);
    }
    const vienna = diffPlans(before.vienna, promoted.vienna);
    const karlsruhe = diffPlans(before.karlsruhe, promoted.karlsruhe);
    assert.deepEqual(unexplained(vienna, before.vienna, promoted.vienna, "mail"), []);
    assert.deepEqual(unexplained(karlsruhe, before.karlsruhe, promoted.karlsruhe, "mail"), []);
    // The role, seen from both sites.
    const role = (d: PlanDiff) => d.outputs.find((c) => c.path === "services.mail.role");
    assert.deepEqual(role(vienna), { path: "services.mail.role", before: "primary", after: "standby" });
    assert.deepEqual(role(karlsruhe), { path: "services.mail.role", before: "standby", after: "promoted" });
    assert.ok([...vienna.outputs, ...karlsruhe.outputs].every((c) => /^(services\.mail\.|proxy\.services)/.test(c.path)));
    // Replication reverses: vienna stops copying mail to karlsruhe, karlsruhe starts copying to vienna.
    const timerChange = (location: "vienna" | "karlsruhe", resource: string, path: string) =>
      fileChanges(before[location], promoted[location]).find((c) => c.resource === resource && c.path === path)?.kind;
    assert.equal(
      timerChange("vienna", "vienna-cfg-vie-stor-1-tx", "/etc/systemd/system/standort-mail-files-vmail-to-karlsruhe.timer"),
      "removed",
    );
    assert.equal(
      timerChange("karlsruhe", "karlsruhe-cfg-fkb-stor-1-tx", "/etc/systemd/system/standort-mail-files-vmail-to-vienna.timer"),
      "added",
    );
  } finally {
    editFootprint(
      "primary: vienna\n    standby: karlsruhe\n    mode: promoted",
      "primary: vienna\n    standby: karlsruhe\n    mode: standby",
    );
  }
});

test("moving a service one step (writes switch to the new site) changes only that service's resources", async () => {
  const before = await planAll();
  editFootprint("step: switch-reads", "step: switch-writes");
  const moved = await planAll();
  try {
    for (const location of LOCATIONS) {
      const diff = diffPlans(before[location], moved[location]);
      assert.deepEqual(unexplained(diff, before[location], moved[location], "git"), [], location);
      assert.ok(
        diff.outputs.every((c) => /^(services\.git(\.|$)|proxy\.services)/.test(c.path)),
        `${location}: ${diff.outputs.map((c) => c.path).join(", ")}`,
      );
    }
    // Writes now land in vienna: its role output says so; helsinki becomes the source that only reads.
    const role = (location: string) => moved[location].outputs.services as Record<string, { role: string }>;
    assert.equal(role("vienna").git.role, "migration-target");
    assert.equal(role("helsinki").git.role, "migration-source");
    const vienna = diffPlans(before.vienna, moved.vienna);
    assert.ok(
      vienna.outputs.some((c) => /^services\.git\.names\[\d+\]\.writes$/.test(c.path) && c.after === true),
      JSON.stringify(vienna.outputs),
    );
  } finally {
    editFootprint("step: switch-writes", "step: switch-reads");
  }
});
