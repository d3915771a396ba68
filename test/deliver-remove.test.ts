// Files that leave a host's bundle: the next transaction stops what they
// started, removes them, lets the daemon forget them, and keeps no copy
// (a removed secret does not linger). Plain files in a temporary folder; no
// daemon involved.
import test from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleText, transactionCommand } from "../lib/deliver";
import { footprintHostFiles } from "../lib/footprint/site-files";
import { loadFootprint } from "../lib/footprint/load";
import { siteServices } from "../lib/footprint/services";
import { RenderedFile } from "../lib/render/types";
import { inCi, run, toolPath } from "./helpers/tools";

const APPLY = join(__dirname, "..", "lib", "deliver", "apply.sh");
const owner = `${execFileSync("id", ["-un"], { encoding: "utf8" }).trim()}:${execFileSync("id", ["-gn"], { encoding: "utf8" }).trim()}`;

function withHost(body: (dir: string, apply: (files: RenderedFile[], extra?: string[]) => ReturnType<typeof run>) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "standort-remove-"));
    const apply = (files: RenderedFile[], extra: string[] = []) =>
      run(["sh", APPLY, "--state-dir", join(dir, "state"), "--lock", join(dir, "lock"), "--health-attempts", "1", ...extra], {
        input: bundleText(files),
      });
    try {
      await body(dir, apply);
    } finally {
      // Watchdogs of this host's transactions go with it.
      try {
        execFileSync("pkill", ["-KILL", "-f", `standort-apply-watchdog .*${dir}/state`]);
      } catch {
        // none left
      }
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const plain = (path: string, content: string, extra: Partial<RenderedFile> = {}): RenderedFile => ({
  path,
  content,
  mode: "0600",
  owner,
  secret: false,
  delivery: "ssh",
  ...extra,
});

test(
  "a file no longer in a host's bundle: its stop command runs, the file goes, then what forgets it; no copy stays",
  withHost(async (dir, apply) => {
    const log = join(dir, "log");
    const keep = plain(join(dir, "keep.conf"), "keep\n");
    const timer = plain(join(dir, "job.timer"), "[Timer]\nOnCalendar=*:0/15\n", {
      secret: true,
      remove: ["sh", "-c", `echo "stop: $(test -e ${dir}/job.timer && echo present)" >> ${log}`],
      absent: ["sh", "-c", `echo "absent: $(test -e ${dir}/job.timer && echo present || echo gone)" >> ${log}`],
    });
    const first = await apply([keep, timer]);
    assert.equal(first.code, 0, first.stderr);
    const second = await apply([keep]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /applied transaction \S+ \(1 files\)/);
    assert.equal(readFileSync(log, "utf8"), "stop: present\nabsent: gone\n", "stopped while present, forgotten once gone");
    assert.ok(!existsSync(timer.path));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes("standort")),
      [],
      "no old copy next to the target",
    );
    assert.deepEqual(readdirSync(join(dir, "state")).sort(), ["current", "last"], "no transaction left");
    assert.ok(!readdirSync(join(dir, "state", "current")).some((f) => f.endsWith(".content")), "contents never kept in the state");
  }),
);

test(
  "a failing stop command is reported and the file goes all the same",
  withHost(async (dir, apply) => {
    const keep = plain(join(dir, "keep.conf"), "keep\n");
    const leaving = plain(join(dir, "leaving.conf"), "x\n", { remove: ["false"] });
    assert.equal((await apply([keep, leaving])).code, 0);
    const result = await apply([keep]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /stopping for .*leaving\.conf failed; removing it anyway/);
    assert.ok(!existsSync(leaving.path));
  }),
);

test(
  "a hanging health check counts as failed after --step-timeout: the old file comes back",
  withHost(async (dir, apply) => {
    const conf = (content: string, extra: Partial<RenderedFile> = {}) => plain(join(dir, "app.conf"), content, extra);
    assert.equal((await apply([conf("old\n")])).code, 0);
    const started = Date.now();
    const hung = await apply([conf("new\n", { healthCheck: ["sleep", "60"] })], ["--step-timeout", "1"]);
    assert.equal(hung.code, 4, hung.stderr);
    assert.match(hung.stderr, /rolled back: the new configuration does not serve/);
    assert.ok(Date.now() - started < 20_000, "bounded by the step timeout, not the hung command");
    assert.equal(readFileSync(join(dir, "app.conf"), "utf8"), "old\n");
  }),
);

test(
  "a transaction that hangs after changing the packet filter is stopped by its watchdog and rolled back",
  withHost(async (dir, apply) => {
    const rules = (content: string) => plain(join(dir, "rules.conf"), content, { confirmWithinSeconds: 1 });
    assert.equal((await apply([rules("old\n")])).code, 0);
    assert.equal((await run(["sh", APPLY, "--state-dir", join(dir, "state"), "--lock", join(dir, "lock"), "--confirm"])).code, 0);
    const started = Date.now();
    // Each attempt hangs for the 2 s step bound, 20 attempts: 40 s, unless the watchdog (1 s + 2 s) stops it.
    const hung = await apply(
      [rules("new\n"), plain(join(dir, "app.conf"), "x\n", { healthCheck: ["sleep", "60"] })],
      ["--health-attempts", "20", "--step-timeout", "2"],
    );
    assert.notEqual(hung.code, 0, hung.stderr);
    assert.doesNotMatch(hung.stderr, /applied transaction/);
    for (let i = 0; i < 50 && existsSync(join(dir, "state", "tx")); i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(Date.now() - started < 20_000, `settled after ${Date.now() - started} ms`);
    assert.equal(readFileSync(join(dir, "rules.conf"), "utf8"), "old\n");
    assert.ok(!existsSync(join(dir, "app.conf")));
    const late = await run(["sh", APPLY, "--state-dir", join(dir, "state"), "--lock", join(dir, "lock"), "--confirm"]);
    assert.equal(late.code, 6, late.stderr);
  }),
);

test(
  "a failed first delivery puts back the file the host already had (a distribution's own config), and removes only what was new",
  withHost(async (dir, apply) => {
    const existing = join(dir, "chrony.conf");
    writeFileSync(existing, "the distribution's file\n");
    const failing = await apply([plain(existing, "ours\n", { healthCheck: ["false"] }), plain(join(dir, "new.conf"), "new\n")]);
    assert.equal(failing.code, 4, failing.stderr);
    assert.equal(readFileSync(existing, "utf8"), "the distribution's file\n");
    assert.ok(!existsSync(join(dir, "new.conf")), "a file that was not there before is gone again");
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes("standort")),
      [],
      "no old copy left",
    );
    // A file of the previous bundle that someone deleted by hand stays deleted when the next delivery fails.
    assert.equal((await apply([plain(existing, "v1\n")])).code, 0);
    rmSync(existing);
    const again = await apply([plain(existing, "v2\n"), plain(join(dir, "bad.conf"), "x\n", { healthCheck: ["false"] })]);
    assert.equal(again.code, 4, again.stderr);
    assert.ok(!existsSync(existing), "the rejected version does not stay");
  }),
);

test(
  "a hand-made bundle with a gap in its numbering is refused; a commit cut off halfway is finished by the next run",
  withHost(async (dir, apply) => {
    const gap = bundleText([plain(join(dir, "a.conf"), "a\n"), plain(join(dir, "b.conf"), "b\n"), plain(join(dir, "c.conf"), "c\n")])
      .split("\n")
      .filter((l) => !l.startsWith("2 "))
      .map((l) => (l.startsWith("end ") ? l.replace(/^end 3 /, "end 2 ") : l));
    // Re-hash the body so only the numbering is wrong.
    const body = gap.slice(0, -2).join("\n") + "\n";
    const { createHash } = await import("node:crypto");
    const bundle = `${body}end 2 ${createHash("sha256").update(body).digest("hex")}\n`;
    const refused = await run(["sh", APPLY, "--state-dir", join(dir, "state"), "--lock", join(dir, "lock")], { input: bundle });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /numbers its files with a gap/);
    assert.ok(!existsSync(join(dir, "a.conf")));

    // A pending transaction whose commit was cut off after the meta moved: the next run completes it.
    const confirmable = plain(join(dir, "rules.conf"), "r1\n", { confirmWithinSeconds: 60 });
    assert.equal((await apply([confirmable])).code, 0);
    const tx = join(dir, "state", "tx");
    rmSync(join(dir, "state", "current"), { recursive: true, force: true });
    execFileSync("mv", [join(tx, "new"), join(dir, "state", "current")]);
    execFileSync("sh", ["-c", `printf '%-62.62s\\n' committing 1<> ${join(tx, "journal")}`]);
    const next = await apply([confirmable]);
    assert.equal(next.code, 0, next.stderr);
    assert.ok(!existsSync(tx), "the cut-off commit was finished");
    assert.equal(readFileSync(join(dir, "rules.conf"), "utf8"), "r1\n");
  }),
);

test(
  "after a reboot a pending confirmation is re-armed for at most its window, whatever the clock says",
  withHost(async (dir, apply) => {
    const confirmable = plain(join(dir, "rules.conf"), "r1\n", { confirmWithinSeconds: 3 });
    assert.equal((await apply([confirmable])).code, 0);
    const state = join(dir, "state");
    execFileSync("pkill", ["-KILL", "-f", `standort-apply-watchdog .*${state}`]);
    // The clock was far behind when it applied: the recorded deadline lies years ahead.
    execFileSync("sh", ["-c", `printf '%-62.62s\\n' ${Math.floor(Date.now() / 1000) + 30_000_000} 1<> ${join(state, "tx", "deadline")}`]);
    const recovered = await run(["sh", APPLY, "--state-dir", state, "--lock", join(dir, "lock"), "--recover"]);
    assert.equal(recovered.code, 0, recovered.stderr);
    assert.match(recovered.stderr, /awaits confirmation for 3 more s/);
    for (let i = 0; i < 50 && existsSync(join(dir, "rules.conf")); i++) await new Promise((r) => setTimeout(r, 200));
    assert.ok(!existsSync(join(dir, "rules.conf")), "rolled back when the window ran out");
  }),
);

test("unit files are forgotten by systemd once gone; other files need no step of their own", () => {
  const unit = bundleText([plain("/etc/systemd/system/standort-x.timer", "[Timer]\n")]);
  const other = bundleText([plain("/etc/standort/databases/x.conf", "x\n")]);
  const field = (bundle: string, name: string) =>
    bundle
      .split("\n")
      .filter((l) => l.startsWith(`1 ${name} `))
      .map((l) => Buffer.from(l.split(" ")[2], "base64").toString());
  assert.deepEqual(field(unit, "absent"), ["systemctl daemon-reload"]);
  assert.deepEqual(field(other, "absent"), []);
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

test("the remote command installs apply.sh and applies the bundle from stdin (in a private mount namespace)", async (t) => {
  if (process.getuid?.() !== 0 || !toolPath("unshare")) {
    if (inCi()) assert.fail("needs root and unshare for a mount namespace (CI=true)");
    return t.skip("needs root and unshare for a mount namespace");
  }
  const dir = mkdtempSync(join(tmpdir(), "standort-txcmd-"));
  try {
    const target = join(dir, "app.conf");
    const bundle = bundleText([plain(target, "served\n", { reload: ["sh", "-c", `echo reloaded > ${dir}/reload`] })]);
    // /usr/local/lib and /var/lib are fresh tmpfs mounts visible only to this command: the host's stay untouched.
    const script = `mount -t tmpfs standort /usr/local/lib && mount -t tmpfs standort /var/lib && ${transactionCommand()}`;
    const result = await run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], { input: bundle });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /applied transaction \S+ \(1 files\)/);
    assert.equal(readFileSync(target, "utf8"), "served\n");
    assert.equal(readFileSync(join(dir, "reload"), "utf8"), "reloaded\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
