// The file replication guards, shown with the rendered unit: the ExecStart of
// vienna's mail/vmail copy to karlsruhe is parsed from the rendered .service
// file and run unchanged, with real rsync and rrsync, between two "storage
// hosts" that are mount namespaces (unshare --mount). Each host sees its own
// folder at /srv and its own rendered programs at /usr/local/sbin, so the
// unit's paths (/srv/mail/vmail, /usr/local/sbin/standort-replicate) are the
// real ones. Only two things stand in for the machines:
// - ssh: the rendered `--rsh=ssh -i ... -o ...` finds a stand-in `ssh` first on
//   PATH. Like ssh it takes the first word that is not an option as the host
//   and joins the remaining words with spaces; like sshd with a forced command
//   (sshd(8), AUTHORIZED_KEYS FILE FORMAT, `command=`) it puts that string into
//   SSH_ORIGINAL_COMMAND and runs the forced command, here in the namespace of
//   the host that holds that storage VIP (by-address/<VIP>). It logs the
//   address it was asked for.
// - the config and state folders: the programs read STANDORT_REPLICATION_ETC
//   and STANDORT_REPLICATION_STATE (the rendered files of that host, under the
//   test folder) instead of /etc/standort/replication and /var/lib/standort/replication,
//   which this machine does not have.
import test, { TestContext } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { FileCopyJob, STORAGE_ACTIVE_FLAG, planJobs, renderSystemdUnits } from "../lib/footprint/jobs";
import { LSYNCD_CONFIG, LSYNCD_DELAY_SECONDS, LSYNCD_UNIT, lsyncdRsyncBinary } from "../lib/footprint/lsyncd";
import {
  MAX_DELETE_FLOOR,
  REPLICATE_SCRIPT,
  REPLICA_RECEIVE_COMMAND,
  REPLICA_RECEIVE_SCRIPT,
  TREE_MARKER,
  treeMarker,
} from "../lib/footprint/replication-guard";
import { footprintHostFiles } from "../lib/footprint/site-files";
import { JOB_RECORD_COMMAND, JOB_RECORD_SCRIPT } from "../lib/monitoring/job-record";
import { FILE_PLACEHOLDER, RenderedFile } from "../lib/render/types";
import { systemdWords } from "../lib/twin/systemd-unit";
import { example, withService } from "./fixtures/footprint/example";
import { inCi, requireTool } from "./helpers/tools";

const { footprint, sites } = example();
const jobs = planJobs(footprint, sites);
const job = jobs.find((j): j is FileCopyJob => j.kind === "file-copy" && j.key === "mail-files-vmail-to-karlsruhe")!;
const model = (name: string) => sites.find((s) => s.name === name)!;
/** Exactly what the stacks install on one storage host of each end. */
const senderFiles = footprintHostFiles(model("vienna"), jobs)["vie-stor-1"];
const receiverFiles = footprintHostFiles(model("karlsruhe"), jobs)["fkb-stor-1"];
const unit = renderSystemdUnits(job).find((f) => f.path.endsWith(".service"))!;

/**
 * The argv of the unit's ExecStart= and of its ExecStartPost= (the unit is a oneshot with a single command: the guard
 * runs the checks and rsync; systemd runs the ExecStartPost= only after it succeeded, and that records the success
 * for the monitoring, lib/monitoring/job-record.ts).
 */
function unitCommands(content: string): { start: string[]; post: string[] } {
  const lines = content.split("\n").filter((l) => /^ExecStart(Pre|Post)?=/.test(l));
  assert.deepEqual(
    lines.map((l) => l.split("=")[0]),
    ["ExecStart", "ExecStartPost"],
    "the copy is one command: the guard runs the checks and rsync; then its success is recorded",
  );
  return {
    start: systemdWords(lines[0].slice("ExecStart=".length)),
    post: systemdWords(lines[1].slice("ExecStartPost=".length)),
  };
}

/** The argv of the unit's ExecStart= (only one: the unit is a oneshot with a single command). */
function execStart(content: string): string[] {
  return unitCommands(content).start;
}

/** The stand-in for ssh and sshd's forced command (see the header). */
const FAKE_SSH = `#!/bin/sh
while [ $# -gt 0 ]; do
	case $1 in
	-[ilopF]) shift 2 ;;
	-*) shift ;;
	*) break ;;
	esac
done
echo "$1" >>"$TEST_WORLD/ssh.log"
TEST_RECEIVER="$TEST_WORLD/by-address/$1"
[ -d "$TEST_RECEIVER" ] || { echo "ssh: connect to host $1 port 22: No route to host" >&2; exit 255; }
export TEST_RECEIVER
shift
SSH_ORIGINAL_COMMAND="$*"
echo "$SSH_ORIGINAL_COMMAND" >>"$TEST_WORLD/ssh-commands.log"
export SSH_ORIGINAL_COMMAND
export STANDORT_REPLICATION_ETC="$TEST_RECEIVER/root/etc/standort/replication"
export STANDORT_REPLICATION_STATE="$TEST_RECEIVER/state"
exec unshare --mount sh -c 'mount --bind "$TEST_RECEIVER/root/usr/local/sbin" /usr/local/sbin && mount --bind "$TEST_RECEIVER/srv" /srv && cd / && exec ${REPLICA_RECEIVE_COMMAND}'
`;

interface Hosts {
  readonly dir: string;
  readonly sender: string;
  readonly receiver: string;
  /** The tree at each end, as the test sees it. */
  readonly source: string;
  readonly standby: string;
}

/**
 * Delivers a host's rendered files under `root` at their target paths, with
 * their modes; what the host had before and no longer gets is gone (as
 * delivery removes files that are no longer wanted).
 */
function install(root: string, files: ReadonlyArray<RenderedFile>): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, "usr/local/sbin"), { recursive: true });
  for (const f of files) {
    const local = join(root, f.path);
    mkdirSync(dirname(local), { recursive: true });
    writeFileSync(local, f.content);
    chmodSync(local, parseInt(f.mode, 8));
  }
}

/** Two storage hosts with the rendered files, a source tree with its marker and `files`, and a standby tree with `standby`. */
function hosts(files: Record<string, string>, standby: Record<string, string>): Hosts {
  const dir = mkdtempSync(join(tmpdir(), "standort-guard-"));
  try {
    const sender = join(dir, "vie-stor-1");
    const receiver = join(dir, "fkb-stor-1");
    install(join(sender, "root"), senderFiles);
    install(join(receiver, "root"), receiverFiles);
    mkdirSync(join(dir, "bin"));
    writeFileSync(join(dir, "bin", "ssh"), FAKE_SSH, { mode: 0o755 });
    // The storage VIPs the units push to, each to its host.
    mkdirSync(join(dir, "by-address"));
    symlinkSync(receiver, join(dir, "by-address", job.target.address));
    symlinkSync(sender, join(dir, "by-address", job.sourceAddress));
    // Each host's folder `srv` is its /srv, so the tree paths are the unit's.
    const source = join(sender, job.path);
    const target = join(receiver, job.target.path);
    mkdirSync(source, { recursive: true });
    mkdirSync(target, { recursive: true });
    writeFileSync(join(source, TREE_MARKER), treeMarker(job.service, job.tree));
    // One modification time for every file: rsync's quick check (size and time) then tells the files that differ
    // from those that do not, whichever second each was written in (a loaded machine writes the two trees in
    // different seconds, and rsync would then replace, and keep aside, identical files).
    const written = new Date("2026-01-01T00:00:00Z");
    for (const [root, tree] of [
      [source, files],
      [target, standby],
    ] as const) {
      for (const [name, content] of Object.entries(tree)) {
        writeFileSync(join(root, name), content);
        utimesSync(join(root, name), written, written);
      }
    }
    return { dir, sender, receiver, source, standby: target };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Runs a unit's ExecStart unchanged in one host's namespace (by default vienna's mail/vmail copy at vienna) and, as
 * systemd does, its ExecStartPost= only when that succeeded: the host's delivered recorder
 * (/usr/local/lib/standort/job-record, under the host's folder) writes into the host's folder `textfile` instead of
 * node exporter's (STANDORT_TEXTFILE_DIR).
 */
function runUnit(h: Hosts, from = h.sender, content = unit.content): { code: number; stderr: string; stdout: string } {
  const { start: argv, post } = unitCommands(content);
  const env = {
    PATH: `${join(h.dir, "bin")}:/usr/sbin:/usr/bin:/sbin:/bin`,
    TMPDIR: h.dir,
    TEST_SENDER: from,
    TEST_WORLD: h.dir,
    STANDORT_REPLICATION_ETC: join(from, "root/etc/standort/replication"),
    STANDORT_REPLICATION_STATE: join(from, "state"),
    STANDORT_TEXTFILE_DIR: join(from, "textfile"),
  };
  const result = spawnSync(
    "unshare",
    [
      "--mount",
      "sh",
      "-c",
      'mount --bind "$TEST_SENDER/root/usr/local/sbin" /usr/local/sbin && mount --bind "$TEST_SENDER/srv" /srv && exec "$@"',
      "sh",
      ...argv,
    ],
    { encoding: "utf8", timeout: 8000, env },
  );
  assert.equal(result.error, undefined, String(result.error));
  if (result.status !== 0) return { code: result.status ?? -1, stderr: result.stderr, stdout: result.stdout };
  assert.equal(post[0], JOB_RECORD_COMMAND);
  const recorded = spawnSync(join(from, "root", post[0]), post.slice(1), { encoding: "utf8", timeout: 8000, env });
  assert.equal(recorded.error, undefined, String(recorded.error));
  return {
    code: recorded.status ?? -1,
    stderr: result.stderr + recorded.stderr,
    stdout: result.stdout + recorded.stdout,
  };
}

/** Every file under `dir` (relative path => content), folders left out. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      // rsync's temporary files come and go while lsyncd copies: a file gone since the listing is no longer there.
      try {
        if (statSync(p).isDirectory()) walk(p);
        else out[relative(dir, p)] = readFileSync(p, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** One metric's value from a Prometheus text file. */
function metric(file: string, name: string): string | undefined {
  return new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(readFileSync(file, "utf8"))?.[1];
}

const senderState = (h: Hosts) => join(h.sender, "state", `${job.key}.prom`);
/** What the job recorder wrote for the copy's unit on the sending host (node exporter's textfile collector). */
const jobRecord = (h: Hosts, from = h.sender) =>
  join(
    from,
    "textfile",
    `standort-job-${unit.path
      .split("/")
      .pop()!
      .replace(/\.service$/, "")}.prom`,
  );
const receiverState = (h: Hosts) => join(h.receiver, "state", `receive-${job.service}-${job.tree}.prom`);

/** Skips (outside CI) or fails (in CI) without the tools or the right to create mount namespaces. */
function ready(t: TestContext): boolean {
  if (!requireTool(t, "rsync", "rrsync", "unshare", "python3")) return false;
  if (process.getuid?.() === 0) return true;
  if (inCi()) assert.fail("mount namespaces need root (CI=true: every tool must be usable)");
  t.skip("mount namespaces need root");
  return false;
}

const numbered = (n: number, prefix: string, text = "mail") =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${String(i).padStart(2, "0")}`, `${text} ${i}\n`]));

/** Runs one refusal case: the unit exits non-zero, the standby is unchanged, the sender's state file records the failure. */
function assertRefused(h: Hosts, reason: RegExp): void {
  const before = tree(h.standby);
  const { code, stderr } = runUnit(h);
  assert.notEqual(code, 0, stderr);
  assert.match(stderr, /standort-replicate: mail-files-vmail-to-karlsruhe: refused: /);
  assert.match(stderr, reason);
  assert.deepEqual(tree(h.standby), before, "the standby keeps its files");
  assert.ok(!existsSync(jobRecord(h)), "a refused run records no success");
  assert.equal(metric(senderState(h), "standort_replication_last_run_success"), "0");
  assert.ok(Number(metric(senderState(h), "standort_replication_last_failure_timestamp_seconds")) > 0);
  assert.match(
    readFileSync(senderState(h), "utf8"),
    /^standort_replication_failure_info\{job="mail-files-vmail-to-karlsruhe",.*reason=".+"\} 1$/m,
  );
  assert.equal(
    existsSync(join(h.receiver, "srv/mail/.standort-kept-aside/mail/vmail"))
      ? readdirSync(join(h.receiver, "srv/mail/.standort-kept-aside/mail/vmail")).length
      : 0,
    0,
    "nothing was kept aside",
  );
}

test("the copy's unit runs rsync with its rendered flags behind the source guard, to the standby's VIP", () => {
  const argv = execStart(unit.content);
  const dash = argv.indexOf("--");
  assert.deepEqual(argv.slice(0, dash), [
    "/usr/local/sbin/standort-replicate",
    "--job",
    "mail-files-vmail-to-karlsruhe",
    "--service",
    "mail",
    "--tree",
    "vmail",
    "--source",
    "/srv/mail/vmail",
    "--max-delete-percent",
    "10",
    "--max-delete-floor",
    "20",
  ]);
  assert.equal(argv[dash + 1], "/usr/bin/rsync");
  assert.ok(argv.includes("--delete") && argv.includes("--delay-updates"));
  assert.deepEqual(argv.slice(-2), ["/srv/mail/vmail/", "root@10.20.1.5:/srv/mail/vmail/"]);
  assert.equal(REPLICA_RECEIVE_COMMAND, "/usr/local/sbin/standort-replica-receive");
});

test("both ends get the guard files: vienna sends mail (primary), karlsruhe receives it (standby)", () => {
  const paths = (files: ReadonlyArray<RenderedFile>) => files.filter((f) => !f.path.startsWith("/etc/systemd/")).map((f) => f.path);
  assert.deepEqual(paths(senderFiles), [
    "/usr/local/sbin/standort-replica-receive",
    "/usr/local/sbin/standort-replicate",
    "/etc/standort/replication/trees",
    "/etc/standort/replication/roles/git",
    "/etc/standort/replication/roles/mail",
    "/etc/standort/replication/roles/tickets",
    "/usr/local/lib/standort/job-record",
    "/usr/local/lib/standort/lsyncd/mail-files-dkim-to-karlsruhe",
    "/usr/local/lib/standort/lsyncd/mail-files-vmail-to-karlsruhe",
    "/etc/lsyncd/standort.conf.lua",
    "/etc/ganesha/ganesha.conf",
  ]);
  const content = (files: ReadonlyArray<RenderedFile>, path: string) => files.find((f) => f.path === path)?.content;
  assert.equal(content(senderFiles, "/etc/standort/replication/roles/mail"), "primary\n");
  assert.equal(content(senderFiles, "/etc/standort/replication/roles/tickets"), "standby\n");
  assert.equal(content(receiverFiles, "/etc/standort/replication/roles/mail"), "standby\n");
  assert.match(content(receiverFiles, "/etc/standort/replication/trees") ?? "", /^mail vmail \/srv\/mail\/vmail$/m);
  assert.equal(content(senderFiles, "/usr/local/sbin/standort-replicate"), REPLICATE_SCRIPT);
  assert.equal(content(receiverFiles, REPLICA_RECEIVE_COMMAND), REPLICA_RECEIVE_SCRIPT);
  assert.equal(content(senderFiles, JOB_RECORD_COMMAND), JOB_RECORD_SCRIPT);
  assert.equal(senderFiles.find((f) => f.path === JOB_RECORD_COMMAND)?.mode, "0755");
  // The guard files and the recorder come before the units, so a timer never starts before its programs exist.
  const order = senderFiles.map((f) => f.path);
  const firstUnit = order.findIndex((p) => p.endsWith(".timer") || /\/standort-[^@/]+\.service$/.test(p));
  assert.ok(order.indexOf("/usr/local/sbin/standort-replicate") < order.findIndex((p) => p.endsWith(".timer")));
  assert.ok(order.indexOf(JOB_RECORD_COMMAND) < firstUnit);
  assert.ok(order.indexOf("/etc/systemd/system/standort-job-failed@.service") < firstUnit);
  // Every storage host of the two ends gets the same files, and a Kubernetes site (helsinki) both sides too: its
  // copies run on its storage hosts like a compose site's.
  assert.deepEqual(footprintHostFiles(model("vienna"), jobs)["vie-stor-2"], senderFiles);
  const helsinki = footprintHostFiles(model("helsinki"), jobs)["hel-stor-1"];
  assert.deepEqual(paths(helsinki), [
    "/usr/local/sbin/standort-replica-receive",
    "/usr/local/sbin/standort-replicate",
    "/etc/standort/replication/trees",
    "/etc/standort/replication/roles/git",
    "/etc/standort/replication/roles/groupware",
    "/etc/standort/replication/roles/webhosting",
    "/usr/local/lib/standort/job-record",
    "/usr/local/lib/standort/lsyncd/git-files-repositories-to-frankfurt",
    "/usr/local/lib/standort/lsyncd/git-files-repositories-to-vienna",
    "/usr/local/lib/standort/lsyncd/webhosting-files-htdocs-to-frankfurt",
    "/usr/local/lib/standort/lsyncd/webhosting-files-uploads-to-frankfurt",
    "/etc/lsyncd/standort.conf.lua",
    "/etc/ganesha/ganesha.conf",
  ]);
  assert.equal(content(helsinki, "/etc/standort/replication/roles/webhosting"), "primary\n");
  assert.equal(content(helsinki, "/etc/standort/replication/roles/groupware"), "standby\n");
  assert.equal(content(helsinki, "/usr/local/sbin/standort-replicate"), REPLICATE_SCRIPT);
  assert.deepEqual(footprintHostFiles(model("helsinki"), jobs)["hel-stor-2"], helsinki);
});

test("sh -n accepts both programs and refuses a broken one (the check delivery runs is real)", (t) => {
  if (!requireTool(t, "sh")) return;
  const dir = mkdtempSync(join(tmpdir(), "standort-guard-check-"));
  try {
    const programs = senderFiles.filter((f) => f.path.startsWith("/usr/local/sbin/"));
    assert.equal(programs.length, 2);
    for (const file of programs) {
      const check = (content: string) => {
        const local = join(dir, "program");
        writeFileSync(local, content);
        return spawnSync(
          file.check!.command[0],
          file.check!.command.slice(1).map((w) => (w === FILE_PLACEHOLDER ? local : w)),
        ).status;
      };
      assert.equal(check(file.content), 0, file.path);
      assert.notEqual(check(file.content.replace(/\bfi\n/, "\n")), 0, `${file.path} without one fi`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a normal run copies the tree, reaches the standby's VIP and records success", (t) => {
  if (!ready(t)) return;
  const h = hosts(numbered(30, "msg"), {});
  try {
    const { code, stderr, stdout } = runUnit(h);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /copied \(0 deleted, 0 kept aside at the receiver\)/);
    assert.deepEqual(tree(h.standby), tree(h.source));
    assert.equal(Object.keys(tree(h.standby)).length, 31, "30 files and the marker");
    assert.deepEqual(
      readFileSync(join(h.dir, "ssh.log"), "utf8").split("\n").filter(Boolean),
      ["10.20.1.5", "10.20.1.5"],
      "dry run, then the copy",
    );
    assert.equal(metric(senderState(h), "standort_replication_last_run_success"), "1");
    assert.ok(Number(metric(senderState(h), "standort_replication_last_success_timestamp_seconds")) > 0);
    assert.equal(metric(senderState(h), "standort_replication_last_failure_timestamp_seconds"), "0");
    assert.equal(metric(receiverState(h), "standort_replica_receive_last_run_success"), "1");
    // The unit's ExecStartPost= recorded the success for the monitoring's freshness alerts, and no failure.
    const success = Number(metric(jobRecord(h), "standort_job_last_success_timestamp_seconds"));
    assert.ok(Math.abs(success - Date.now() / 1000) < 60, `success recorded at ${success}`);
    assert.equal(metric(jobRecord(h), "standort_job_last_failure_timestamp_seconds"), "0");
    assert.match(
      readFileSync(jobRecord(h), "utf8"),
      /^standort_job_last_success_timestamp_seconds\{job="standort-mail-files-vmail-to-karlsruhe"\} \d+$/m,
    );
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("files the copy overwrites or deletes at the receiver are kept aside and counted", (t) => {
  if (!ready(t)) return;
  // The standby holds writes of its own (an old primary back with writes that never replicated): three changed, two new.
  const standby = {
    ...numbered(30, "msg"),
    msg00: "standby's own 0\n",
    msg01: "standby's own 1\n",
    msg02: "standby's own 2\n",
    ...numbered(2, "only-here"),
  };
  const h = hosts(numbered(30, "msg"), standby);
  try {
    const { code, stderr } = runUnit(h);
    assert.equal(code, 0, stderr);
    assert.deepEqual(tree(h.standby), tree(h.source), "the standby now matches the primary");
    const base = join(h.receiver, "srv/mail/.standort-kept-aside/mail/vmail");
    const runs = readdirSync(base);
    assert.equal(runs.length, 1, runs.join(", "));
    assert.match(runs[0], /^\d{8}T\d{6}Z$/);
    assert.deepEqual(tree(join(base, runs[0])), {
      msg00: "standby's own 0\n",
      msg01: "standby's own 1\n",
      msg02: "standby's own 2\n",
      "only-here00": "mail 0\n",
      "only-here01": "mail 1\n",
    });
    assert.match(
      stderr,
      /standort-replica-receive: kept aside 5 file\(s\) of mail\/vmail in \/srv\/mail\/\.standort-kept-aside\/mail\/vmail\/\d{8}T\d{6}Z/,
    );
    assert.equal(metric(senderState(h), "standort_replication_kept_aside_files"), "5");
    assert.equal(metric(receiverState(h), "standort_replica_receive_kept_aside_files"), "5");
    assert.equal((statSync(join(h.receiver, "srv/mail/.standort-kept-aside")).mode & 0o777).toString(8), "700", "only root reads it");
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("an empty source is refused and the standby keeps its files", (t) => {
  if (!ready(t)) return;
  const h = hosts({}, numbered(50, "msg"));
  try {
    rmSync(join(h.source, TREE_MARKER));
    assertRefused(h, /source \/srv\/mail\/vmail is empty/);
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("a missing source is refused and the standby keeps its files", (t) => {
  if (!ready(t)) return;
  const h = hosts({}, numbered(50, "msg"));
  try {
    rmSync(h.source, { recursive: true });
    assertRefused(h, /source \/srv\/mail\/vmail is missing/);
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("a source without the marker, or with another tree's, is refused and the standby keeps its files", (t) => {
  if (!ready(t)) return;
  const h = hosts(numbered(50, "msg"), numbered(50, "msg", "old"));
  try {
    rmSync(join(h.source, TREE_MARKER));
    assertRefused(h, /has no marker \.standort-tree \(expected mail\/vmail\)/);
    writeFileSync(join(h.source, TREE_MARKER), treeMarker("git", "repositories"));
    assertRefused(h, /is marked 'git\/repositories', not mail\/vmail/);
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("a sender whose role file says standby (a stale timer after a promotion) stops itself", (t) => {
  if (!ready(t)) return;
  const h = hosts(numbered(50, "msg"), numbered(50, "msg", "old"));
  try {
    writeFileSync(join(h.sender, "root/etc/standort/replication/roles/mail"), "standby\n");
    assertRefused(h, /this site is standby mail site .*, not its primary/);
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("a run that would delete more than the share of the standby is refused before anything changes", (t) => {
  if (!ready(t)) return;
  // 50 files at the standby, 10 left at the source (with one of them changed): 40 deletions > max(10 % of 51, 20).
  const h = hosts({ ...numbered(10, "msg"), msg00: "changed\n" }, numbered(50, "msg"));
  try {
    assertRefused(
      h,
      new RegExp(`would delete 40 of the standby's 51 entries \\(limit ${MAX_DELETE_FLOOR}: 10 % or at least ${MAX_DELETE_FLOOR}\\)`),
    );
    assert.equal(tree(h.standby).msg00, "mail 0\n", "not even the changed file was copied");
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("a receiver whose role is primary (an old primary coming back with its timers) refuses the push", (t) => {
  if (!ready(t)) return;
  // Karlsruhe was promoted: its role file says primary, it has new writes; vienna returns with its old files and timer.
  const h = hosts(numbered(50, "msg"), { ...numbered(50, "msg", "new at karlsruhe"), "written-after-promotion": "keep me\n" });
  try {
    writeFileSync(join(h.receiver, "root/etc/standort/replication/roles/mail"), "primary\n");
    assertRefused(h, /receiver refused: this site is the primary mail site, not its standby/);
    assert.equal(metric(receiverState(h), "standort_replica_receive_last_run_success"), "0");
    assert.match(
      readFileSync(receiverState(h), "utf8"),
      /standort_replica_receive_failure_info\{service="mail",tree="vmail",reason="this site is the primary mail site/,
    );
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("a Kubernetes site's copies run the same guard around the same rsync flags on its storage hosts, role check included", () => {
  const copy = jobs.find((j): j is FileCopyJob => j.kind === "file-copy" && j.key === "webhosting-files-uploads-to-frankfurt")!;
  assert.equal(copy.runner, "systemd");
  const exec = renderSystemdUnits(copy)
    .find((f) => f.path.endsWith(".service"))!
    .content.split("\n")
    .find((l) => l.startsWith("ExecStart="))!;
  assert.ok(
    exec.startsWith(
      "ExecStart=/usr/local/sbin/standort-replicate --job webhosting-files-uploads-to-frankfurt --service webhosting --tree uploads --source /srv/web/uploads --max-delete-percent 10 --max-delete-floor 20 -- /usr/bin/rsync ",
    ),
    exec,
  );
  assert.ok(exec.endsWith(" /srv/web/uploads/ root@10.10.1.5:/srv/web/uploads/"), exec);
});

/** Runs the forced command at karlsruhe as sshd would for `command` (SSH_ORIGINAL_COMMAND). */
function runReceive(h: Hosts, command: string): { code: number; stderr: string } {
  const result = spawnSync(
    "unshare",
    [
      "--mount",
      "sh",
      "-c",
      `mount --bind "$R/root/usr/local/sbin" /usr/local/sbin && mount --bind "$R/srv" /srv && cd / && exec ${REPLICA_RECEIVE_COMMAND}`,
    ],
    {
      encoding: "utf8",
      timeout: 8000,
      input: "",
      env: {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        R: h.receiver,
        SSH_ORIGINAL_COMMAND: command,
        STANDORT_REPLICATION_ETC: join(h.receiver, "root/etc/standort/replication"),
        STANDORT_REPLICATION_STATE: join(h.receiver, "state"),
      },
    },
  );
  assert.equal(result.error, undefined, String(result.error));
  return { code: result.status ?? -1, stderr: result.stderr };
}

test("the forced command takes only rsync pushes into the trees it lists: no shell, no reads, no other folder", (t) => {
  if (!ready(t)) return;
  const h = hosts({}, numbered(5, "msg"));
  try {
    const before = tree(join(h.receiver, "srv"));
    const cases: Array<[string, RegExp]> = [
      ["rm -rf /srv/mail/vmail", /refused: not an rsync push: rm -rf \/srv\/mail\/vmail/],
      ["rsync --server -logDtpre.iLsfxCIvu --delete . /srv/mail/other/", /refused: \/srv\/mail\/other is not a tree this site replicates/],
      ["rsync --server -logDtpre.iLsfxCIvu --delete . /srv/mail/vmail/../dkim/", /refused: \/srv\/mail\/vmail\/\.\.\/dkim is not a tree/],
      // A read (pull) of the standby's data: rrsync -wo refuses it.
      ["rsync --server --sender -logDtpre.iLsfxCIvu . /srv/mail/vmail/", /reading from write-only server is not allowed/],
      // rsync writes into its first destination: naming an admitted tree last must not open another folder.
      [
        "rsync --server -logDtpre.iLsfxCIvu --delete . /srv/mail/other /srv/mail/vmail",
        /refused: a push names exactly one destination: \/srv\/mail\/other \/srv\/mail\/vmail/,
      ],
      // Only options before the source dot.
      [
        "rsync --server -logDtpre.iLsfxCIvu /srv/mail/other . /srv/mail/vmail",
        /refused: only options before the source dot, got \/srv\/mail\/other/,
      ],
    ];
    for (const [command, expected] of cases) {
      const { code, stderr } = runReceive(h, command);
      assert.notEqual(code, 0, command);
      assert.match(stderr, expected, command);
    }
    assert.deepEqual(tree(join(h.receiver, "srv")), before, "nothing changed at the receiver");
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

test("promotion and return lose nothing: the stale timer is refused both ways, the old primary's own writes are kept aside", (t) => {
  if (!ready(t)) return;
  // After the promotion (a footprint edit), as the stacks render it: karlsruhe writes mail and copies it to vienna.
  const promoted = planJobs(
    withService(footprint, "mail", (s) => ({ ...s, mode: "promoted" })),
    sites,
  );
  const back = promoted.find((j): j is FileCopyJob => j.kind === "file-copy" && j.key === "mail-files-vmail-to-vienna")!;
  const backUnit = renderSystemdUnits(back).find((f) => f.path.endsWith(".service"))!.content;
  const karlsruheAfter = footprintHostFiles(model("karlsruhe"), promoted)["fkb-stor-1"];
  const viennaAfter = footprintHostFiles(model("vienna"), promoted)["vie-stor-1"];
  const h = hosts(numbered(20, "msg"), {});
  const vienna = h.source;
  const karlsruhe = h.standby;
  try {
    // 1. vienna is the primary and replicates; then it writes three messages that never reach karlsruhe and fails.
    assert.equal(runUnit(h).code, 0);
    const lostAtVienna = { late00: "written at vienna, never replicated\n", late01: "too\n", late02: "too\n" };
    for (const [name, content] of Object.entries(lostAtVienna)) writeFileSync(join(vienna, name), content);
    const viennaBefore = tree(vienna);
    // 2. karlsruhe is promoted (its new files delivered) and takes writes: two new messages, one changed.
    install(join(h.receiver, "root"), karlsruheAfter);
    writeFileSync(join(karlsruhe, "new00"), "written at karlsruhe after the promotion\n");
    writeFileSync(join(karlsruhe, "new01"), "too\n");
    writeFileSync(join(karlsruhe, "msg00"), "changed at karlsruhe\n");
    const karlsruheNow = tree(karlsruhe);
    // 3. vienna comes back with its old configuration: its timer fires, karlsruhe refuses it.
    const stale = runUnit(h);
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /receiver refused: this site is the primary mail site, not its standby/);
    //    karlsruhe's new timer reaches vienna, whose roles are still the old ones: vienna refuses it.
    const early = runUnit(h, h.receiver, backUnit);
    assert.notEqual(early.code, 0);
    assert.match(
      early.stderr,
      /standort-replicate: mail-files-vmail-to-vienna: refused: receiver refused: this site is the primary mail site/,
    );
    assert.deepEqual(tree(karlsruhe), karlsruheNow, "the new primary's data is untouched");
    assert.deepEqual(tree(vienna), viennaBefore, "the old primary's data is untouched");
    // 4. vienna is redelivered: standby for mail, its copy program (and timer) gone.
    install(join(h.sender, "root"), viennaAfter);
    assert.equal(existsSync(join(h.sender, "root/usr/local/sbin/standort-replicate")), false);
    assert.equal(readFileSync(join(h.sender, "root/etc/standort/replication/roles/mail"), "utf8"), "standby\n");
    const copy = runUnit(h, h.receiver, backUnit);
    assert.equal(copy.code, 0, copy.stderr);
    assert.deepEqual(tree(vienna), karlsruheNow, "vienna now holds the new primary's data");
    // Nothing vienna wrote is lost: what the copy replaced or removed is kept aside and counted.
    const base = join(h.sender, "srv/mail/.standort-kept-aside/mail/vmail");
    const kept: Record<string, string> = tree(join(base, readdirSync(base)[0]));
    const lost = Object.entries(viennaBefore).filter(([name, content]) => tree(vienna)[name] !== content && kept[name] !== content);
    assert.deepEqual(lost, [], "lost = 0");
    assert.deepEqual(kept, { ...lostAtVienna, msg00: "mail 0\n" });
    assert.equal(metric(join(h.receiver, "state", `${back.key}.prom`), "standort_replication_kept_aside_files"), "4");
    assert.equal(metric(join(h.sender, "state", "receive-mail-vmail.prom"), "standort_replica_receive_kept_aside_files"), "4");
  } finally {
    rmSync(h.dir, { recursive: true, force: true });
  }
});

// Continuous replication: the rendered lsyncd configuration run for real (lsyncd -nodaemon) in vienna's storage
// host namespace, with the rendered wrappers as its rsync and the same stand-in ssh, receiver and forced command.
// Besides /srv and /usr/local/sbin, the namespace gets the host's /usr/local/lib (the wrappers) and a /run of its
// own holding keepalived's active flag; the test reaches that /run through /proc/<pid>/root.

/** Every copy vienna runs (lsyncd has one sync per copy; each needs its trees at both ends). */
const viennaCopies = jobs.filter((j): j is FileCopyJob => j.kind === "file-copy" && j.site === "vienna");
const lsyncdUnit = senderFiles.find((f) => f.path === `/etc/systemd/system/${LSYNCD_UNIT}`)!;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Seconds until `predicate` holds (polled every 50 ms), or undefined after `seconds`. */
async function until(predicate: () => boolean, seconds: number): Promise<number | undefined> {
  const start = performance.now();
  for (;;) {
    if (predicate()) return (performance.now() - start) / 1000;
    if (performance.now() - start > seconds * 1000) return undefined;
    await sleep(50);
  }
}

interface Lsyncd {
  readonly process: ChildProcess;
  /** lsyncd's and the guard's output so far. */
  output(): string;
  exited(): boolean;
  /** keepalived's flag, as the namespace sees it. */
  readonly activeFlag: string;
  stop(): Promise<void>;
}

/** The two hosts with every tree of vienna's copies (markers included), and lsyncd started on vienna as its unit starts it. */
function lsyncdHosts(files: Record<string, string>, standby: Record<string, string>): Hosts {
  const h = hosts(files, standby);
  for (const copy of viennaCopies.filter((c) => c.key !== job.key)) {
    mkdirSync(join(h.sender, copy.path), { recursive: true });
    mkdirSync(join(h.receiver, copy.target.path), { recursive: true });
    writeFileSync(join(h.sender, copy.path, TREE_MARKER), treeMarker(copy.service, copy.tree));
  }
  return h;
}

/** Process groups of the lsyncd runs still going: killed when this file's tests end, however they end. */
const running = new Set<number>();
process.on("exit", () => {
  for (const pid of running) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

function startLsyncd(h: Hosts): Lsyncd {
  // The unit's ExecStart, with the configuration read from the host's delivered copy.
  const exec = lsyncdUnit.content
    .split("\n")
    .find((l) => l.startsWith("ExecStart="))!
    .slice("ExecStart=".length);
  assert.equal(exec, `/usr/bin/lsyncd -nodaemon ${LSYNCD_CONFIG}`);
  const argv = exec.split(" ").map((w) => (w === LSYNCD_CONFIG ? join(h.sender, "root", LSYNCD_CONFIG) : w));
  const run = dirname(dirname(STORAGE_ACTIVE_FLAG));
  const child = spawn(
    "unshare",
    [
      "--mount",
      "sh",
      "-c",
      [
        'mount --bind "$TEST_SENDER/root/usr/local/sbin" /usr/local/sbin',
        'mount --bind "$TEST_SENDER/root/usr/local/lib" /usr/local/lib',
        'mount --bind "$TEST_SENDER/srv" /srv',
        `mount -t tmpfs tmpfs ${run}`,
        `mkdir -p ${dirname(STORAGE_ACTIVE_FLAG)}`,
        `touch ${STORAGE_ACTIVE_FLAG}`,
        'exec "$@"',
      ].join(" && "),
      "sh",
      ...argv,
    ],
    {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: `${join(h.dir, "bin")}:/usr/sbin:/usr/bin:/sbin:/bin`,
        TMPDIR: h.dir,
        TEST_SENDER: h.sender,
        TEST_WORLD: h.dir,
        STANDORT_REPLICATION_ETC: join(h.sender, "root/etc/standort/replication"),
        STANDORT_REPLICATION_STATE: join(h.sender, "state"),
      },
    },
  );
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  let done = false;
  if (child.pid !== undefined) running.add(child.pid);
  const exit = new Promise<void>((resolve) =>
    child.on("exit", () => {
      done = true;
      if (child.pid !== undefined) running.delete(child.pid);
      resolve();
    }),
  );
  return {
    process: child,
    output: () => output,
    exited: () => done,
    activeFlag: `/proc/${child.pid}/root${STORAGE_ACTIVE_FLAG}`,
    async stop() {
      // The whole group, also after lsyncd ended: a guard or rsync it started may still run.
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
      if (!done) await Promise.race([exit, sleep(3000)]);
    },
  };
}

/** Runs `body` with lsyncd on two fresh hosts; stops lsyncd and removes everything whatever happens. */
async function withLsyncd(
  t: TestContext,
  files: Record<string, string>,
  standby: Record<string, string>,
  body: (h: Hosts, l: Lsyncd) => Promise<void>,
): Promise<void> {
  if (!ready(t) || !requireTool(t, "lsyncd")) return;
  const h = lsyncdHosts(files, standby);
  let l: Lsyncd | undefined;
  try {
    l = startLsyncd(h);
    await body(h, l);
  } catch (error) {
    if (l) t.diagnostic(`lsyncd output:\n${l.output()}`);
    throw error;
  } finally {
    await l?.stop();
    rmSync(h.dir, { recursive: true, force: true });
  }
}

/** Waits for lsyncd's startup run (a full guarded copy) to make the standby match the source. */
async function startedUp(h: Hosts, l: Lsyncd): Promise<number> {
  const seconds = await until(() => JSON.stringify(tree(h.standby)) === JSON.stringify(tree(h.source)) || l.exited(), 10);
  assert.ok(seconds !== undefined && !l.exited(), `startup run: standby ${Object.keys(tree(h.standby)).length} files`);
  return seconds;
}

/** The longest a change may take: the delay, plus a few seconds for the guarded copy (dry run and copy). */
const BOUND_SECONDS = LSYNCD_DELAY_SECONDS + 3;

test("lsyncd's configuration passes luac5.3 -p (the check delivery runs) and names the wrappers as rsync", (t) => {
  if (!requireTool(t, "luac5.3")) return;
  const config = senderFiles.find((f) => f.path === LSYNCD_CONFIG)!;
  const dir = mkdtempSync(join(tmpdir(), "standort-lsyncd-check-"));
  try {
    const check = (content: string) => {
      const local = join(dir, "standort.conf.lua");
      writeFileSync(local, content);
      return spawnSync(
        config.check!.command[0],
        config.check!.command.slice(1).map((w) => (w === FILE_PLACEHOLDER ? local : w)),
      ).status;
    };
    assert.equal(check(config.content), 0);
    assert.notEqual(check(config.content.replace("sync {", "sync (")), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.match(config.content, new RegExp(`binary = '${lsyncdRsyncBinary(job)}'`));
  assert.match(config.content, /target = 'root@10\.20\.1\.5:\/srv\/mail\/vmail\/'/);
  assert.match(config.content, new RegExp(`delay = ${LSYNCD_DELAY_SECONDS},`));
  assert.match(config.content, /insist = true/);
});

test(
  "lsyncd copies a steady write load to the standby within the delay, through the guard and the forced command",
  { timeout: 20000 },
  (t) =>
    withLsyncd(t, numbered(20, "msg"), {}, async (h, l) => {
      const startup = await startedUp(h, l);
      // A steady load: one new message every 250 ms for 5 s; each one's time until it is readable at the standby.
      const written: Array<[string, number]> = [];
      const seen = new Map<string, number>();
      const watch = setInterval(() => {
        const now = performance.now();
        for (const [name] of written) if (!seen.has(name) && existsSync(join(h.standby, name))) seen.set(name, now);
      }, 50);
      try {
        for (let i = 0; i < 20; i++) {
          const name = `load${String(i).padStart(2, "0")}`;
          writeFileSync(join(h.source, name), `message ${i}\n`);
          written.push([name, performance.now()]);
          await sleep(250);
        }
        await until(() => seen.size === written.length, BOUND_SECONDS);
      } finally {
        clearInterval(watch);
      }
      const delays = written.map(([name, at]) => ((seen.get(name) ?? Infinity) - at) / 1000);
      const worst = Math.max(...delays);
      t.diagnostic(
        `recovery point of files (lsyncd, delay ${LSYNCD_DELAY_SECONDS} s): worst ${worst.toFixed(1)} s, median ${[...delays].sort((a, b) => a - b)[delays.length >> 1].toFixed(1)} s over ${delays.length} writes at 4/s; startup run ${startup.toFixed(1)} s`,
      );
      assert.ok(worst <= BOUND_SECONDS, `worst ${worst} s > ${BOUND_SECONDS} s`);
      assert.deepEqual(tree(h.standby), tree(h.source));
      // The startup run left 20 messages, the marker and the folder; each batch added its new messages (recorded
      // just after the copy, so wait for the state file).
      const recorded = await until(() => metric(senderState(h), "standort_replication_standby_entries") === "42", 3);
      assert.ok(recorded !== undefined, readFileSync(senderState(h), "utf8"));
      assert.equal(metric(senderState(h), "standort_replication_last_run_success"), "1");
      // The receiver saw lsyncd's own command lines: the startup run and the batches, all rsync --server pushes into the tree.
      const commands = [...new Set(readFileSync(join(h.dir, "ssh-commands.log"), "utf8").split("\n").filter(Boolean))];
      t.diagnostic(`lsyncd's pushes as the forced command saw them: ${commands.join(" | ")}`);
      assert.ok(
        commands.every((c) => /^rsync --server .* \. \/srv\/mail\/(vmail|dkim)\/$/.test(c)),
        commands.join("\n"),
      );
      assert.ok(commands.some((c) => / --delete\b/.test(c)));
    }),
);

test(
  "lsyncd: deleting more than the limit at once does not empty the standby, and the other trees keep replicating",
  { timeout: 20000 },
  (t) =>
    withLsyncd(t, numbered(50, "msg"), {}, async (h, l) => {
      await startedUp(h, l);
      const before = tree(h.standby);
      for (let i = 0; i < 40; i++) rmSync(join(h.source, `msg${String(i).padStart(2, "0")}`));
      const refused = await until(() => /would delete 40 of the standby's 52 entries \(limit 20/.test(l.output()), BOUND_SECONDS);
      assert.ok(refused !== undefined, "the guard refused the batch");
      // A refusal asks lsyncd to retry (exit 75, `again`): it keeps running, the other sync still copies.
      const dkim = viennaCopies.find((c) => c.tree === "dkim")!;
      writeFileSync(join(h.sender, dkim.path, "new.key"), "key\n");
      const copied = await until(() => existsSync(join(h.receiver, dkim.target.path, "new.key")), BOUND_SECONDS);
      assert.ok(copied !== undefined && !l.exited(), "dkim still replicates while vmail's batch waits");
      assert.deepEqual(tree(h.standby), before, "the standby keeps its files");
      assert.equal(metric(senderState(h), "standort_replication_last_run_success"), "0");
      assert.match(readFileSync(senderState(h), "utf8"), /reason="would delete 40 of the standby's 52 entries/);
      assert.match(l.output(), /standort-replicate: mail-files-vmail-to-karlsruhe: refused: would delete 40/);
    }),
);

test("lsyncd: a batch deleting fewer than 10 % of a large standby (above the floor) goes through", { timeout: 20000 }, (t) =>
  withLsyncd(t, numbered(300, "m", "mail"), {}, async (h, l) => {
    await startedUp(h, l);
    // 25 deletions: above the floor (20), below 10 % of the 302 entries the startup run left at the standby.
    for (let i = 0; i < 25; i++) rmSync(join(h.source, `m${String(i).padStart(2, "0")}`));
    const copied = await until(() => !existsSync(join(h.standby, "m00")) && !existsSync(join(h.standby, "m24")), BOUND_SECONDS);
    assert.ok(copied !== undefined, "the deletions reached the standby");
    t.diagnostic(`25 deletions reached the standby after ${copied.toFixed(1)} s`);
    assert.deepEqual(tree(h.standby), tree(h.source));
    assert.doesNotMatch(l.output(), /refused/);
  }),
);

test("lsyncd: an emptied source is refused and the standby keeps its files", { timeout: 20000 }, (t) =>
  withLsyncd(t, numbered(10, "msg"), {}, async (h, l) => {
    await startedUp(h, l);
    const before = tree(h.standby);
    for (const name of readdirSync(h.source)) rmSync(join(h.source, name));
    const refused = await until(() => /refused: source \/srv\/mail\/vmail is empty/.test(l.output()), BOUND_SECONDS);
    assert.ok(refused !== undefined, "the guard refused the batch");
    assert.deepEqual(tree(h.standby), before, "the standby keeps its files");
    assert.ok(!l.exited(), "lsyncd keeps running and retries");
    // The guard writes its state file just after its refusal line.
    const recorded = await until(() => /reason="source \/srv\/mail\/vmail is empty"/.test(readFileSync(senderState(h), "utf8")), 3);
    assert.ok(recorded !== undefined, readFileSync(senderState(h), "utf8"));
  }),
);

test("lsyncd: a receiver whose role is primary refuses lsyncd's pushes", { timeout: 20000 }, (t) =>
  withLsyncd(t, numbered(10, "msg"), {}, async (h, l) => {
    await startedUp(h, l);
    writeFileSync(join(h.receiver, "root/etc/standort/replication/roles/mail"), "primary\n");
    writeFileSync(join(h.standby, "written-after-promotion"), "keep me\n");
    const before = tree(h.standby);
    writeFileSync(join(h.source, "late"), "written at the old primary\n");
    const refused = await until(() => /refused: receiver refused: this site is the primary mail site/.test(l.output()), BOUND_SECONDS);
    assert.ok(refused !== undefined, "the receiver refused the batch");
    assert.deepEqual(tree(h.standby), before, "the new primary's data is untouched");
    assert.equal(metric(receiverState(h), "standort_replica_receive_last_run_success"), "0");
    assert.ok(!l.exited());
  }),
);

test("lsyncd: what its copies overwrite or delete at the receiver is kept aside", { timeout: 20000 }, (t) =>
  withLsyncd(
    t,
    numbered(10, "msg"),
    { ...numbered(10, "msg"), msg00: "standby's own 0\n", "only-here": "standby's own\n" },
    async (h, l) => {
      // The startup run replaces the standby's own version and removes its own file: both kept aside.
      await startedUp(h, l);
      const base = join(h.receiver, "srv/mail/.standort-kept-aside/mail/vmail");
      const kept = () => Object.assign({}, ...readdirSync(base).map((run) => tree(join(base, run)))) as Record<string, string>;
      assert.deepEqual(kept(), { msg00: "standby's own 0\n", "only-here": "standby's own\n" });
      // A batch that rewrites a message keeps the standby's previous version aside too.
      writeFileSync(join(h.source, "msg05"), "rewritten at the primary\n");
      const copied = await until(() => tree(h.standby).msg05 === "rewritten at the primary\n", BOUND_SECONDS);
      assert.ok(copied !== undefined, "the rewrite reached the standby");
      assert.equal(kept().msg05, "mail 5\n");
      const counted = await until(() => metric(senderState(h), "standort_replication_kept_aside_files") === "1", 3);
      assert.ok(counted !== undefined, "the batch's kept-aside file is counted in the state file");
    },
  ),
);

test("lsyncd ends at its next run once this member is no longer the active one", { timeout: 20000 }, (t) =>
  withLsyncd(t, numbered(10, "msg"), {}, async (h, l) => {
    await startedUp(h, l);
    // keepalived's failover script removes the flag when the member steps down.
    rmSync(l.activeFlag);
    writeFileSync(join(h.source, "after-step-down"), "x\n");
    const ended = await until(() => l.exited(), BOUND_SECONDS);
    assert.ok(ended !== undefined, "lsyncd ended");
    assert.match(l.output(), /standort-replicate: mail-files-vmail-to-karlsruhe: stopped: \/run\/standort\/storage-active is missing/);
    assert.equal(existsSync(join(h.standby, "after-step-down")), false);
  }),
);
