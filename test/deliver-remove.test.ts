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
      "rm -f /etc/systemd/system/standort-x.timer /var/lib/standort/backup/%etc%systemd%system%standort-x.timer.prev /var/lib/standort/backup/%etc%systemd%system%standort-x.timer.none /var/lib/standort/backup/%etc%systemd%system%standort-x.timer.pending /var/lib/standort/backup/%etc%systemd%system%standort-x.timer.expired",
      "systemctl daemon-reload",
      "",
    ].join("\n"),
  );
  assert.equal(
    removeCommand({ path: "/etc/standort/databases/x.conf" }),
    `set -u\nrm -f /etc/standort/databases/x.conf ${["prev", "none", "pending", "expired"].map((s) => `/var/lib/standort/backup/%etc%standort%databases%x.conf.${s}`).join(" ")}\n`,
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

test("the backup apply.sh keeps of a file is the one removal deletes (a secret's old copy does not linger)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "standort-remove-backup-"));
  try {
    const target = join(dir, "etc", "wg-test.conf");
    const backups = join(dir, "backup");
    const staged = join(dir, "staged");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(dir, "etc"));
    writeFileSync(target, "old secret\n");
    writeFileSync(staged, "new secret\n");
    const script = join(__dirname, "..", "lib", "deliver", "apply.sh");
    const applied = await run([
      "sh",
      script,
      "--staged",
      staged,
      "--target",
      target,
      "--mode",
      "0600",
      "--owner",
      `${process.getuid!()}:${process.getgid!()}`,
      "--backup-dir",
      backups,
      "--lock",
      join(dir, "lock"),
    ]);
    assert.equal(applied.code, 0, applied.stderr);
    const { readdirSync } = await import("node:fs");
    const kept = readdirSync(backups);
    assert.ok(kept.length > 0, "apply.sh keeps a backup of the old file");
    // removeCommand names the same records, under the host's backup directory: point it at the test's.
    const removal = removeCommand({ path: target }).replaceAll("/var/lib/standort/backup", backups);
    const removed = await run(["sh", "-c", removal]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(readdirSync(backups), [], "no record of the removed file is left");
    assert.ok(!existsSync(target));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
