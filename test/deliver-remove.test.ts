import test from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeCommand } from "../lib/deliver";
import { footprintHostFiles } from "../lib/footprint/site-files";
import { loadFootprint } from "../lib/footprint/load";
import { siteServices } from "../lib/footprint/services";
import { run } from "./helpers/tools";

test("removing a file no longer rendered for a host stops what it started, then deletes it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "standort-remove-"));
  try {
    const target = join(dir, "standort-mail-files-vmail-to-karlsruhe.timer");
    const marker = join(dir, "stopped");
    writeFileSync(target, "[Timer]\n");
    const script = removeCommand({ path: target, remove: ["sh", "-c", `echo stopped > ${marker}`] });
    const result = await run(["sh", "-c", script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(readFileSync(marker, "utf8"), "stopped\n");
    assert.ok(!existsSync(target));

    // A failing stop is reported, and the file goes all the same.
    writeFileSync(target, "[Timer]\n");
    const failing = await run(["sh", "-c", removeCommand({ path: target, remove: ["false"] })]);
    assert.equal(failing.code, 0);
    assert.match(failing.stderr, /standort: stopping for .* failed; removing it anyway/);
    assert.ok(!existsSync(target));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a unit file is forgotten by systemd after removal; a plain file only goes", () => {
  assert.equal(
    removeCommand({ path: "/etc/systemd/system/standort-x.timer", remove: ["systemctl", "disable", "--now", "standort-x.timer"] }),
    [
      "set -u",
      'systemctl disable --now standort-x.timer || echo "standort: stopping for /etc/systemd/system/standort-x.timer failed; removing it anyway" >&2',
      "rm -f /etc/systemd/system/standort-x.timer /var/lib/standort/backup/etc-systemd-system-standort-x-timer.prev",
      "systemctl daemon-reload",
      "",
    ].join("\n"),
  );
  assert.equal(
    removeCommand({ path: "/etc/standort/databases/x.conf" }),
    "set -u\nrm -f /etc/standort/databases/x.conf /var/lib/standort/backup/etc-standort-databases-x-conf.prev\n",
  );
});

test("replication timers are stopped when they leave a host; their services only stop", () => {
  const { footprint, sites } = loadFootprint();
  const vienna = sites.find((s) => s.name === "vienna")!;
  const files = footprintHostFiles(
    vienna,
    siteServices(footprint, sites, "vienna").flatMap((s) => s.jobs),
  )["vie-stor-1"];
  const timer = files.find((f) => f.path === "/etc/systemd/system/standort-mail-files-vmail-to-karlsruhe.timer")!;
  const service = files.find((f) => f.path === "/etc/systemd/system/standort-mail-files-vmail-to-karlsruhe.service")!;
  assert.deepEqual(timer.remove, ["systemctl", "disable", "--now", "standort-mail-files-vmail-to-karlsruhe.timer"]);
  assert.deepEqual(service.remove, ["systemctl", "stop", "standort-mail-files-vmail-to-karlsruhe.service"]);
  assert.deepEqual(timer.reload, [
    "sh",
    "-c",
    "systemctl daemon-reload && systemctl enable --now --quiet standort-mail-files-vmail-to-karlsruhe.timer",
  ]);
});
