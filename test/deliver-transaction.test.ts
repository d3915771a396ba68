// Fault injection for a host's configuration transaction (lib/deliver/apply.sh)
// with the real daemons inside a network namespace this test creates: nftables
// and HAProxy (master-worker, reloaded by USR2 as haproxy.service does) run
// the rendered files of vienna's vie-proxy-1, on a small tmpfs that the test
// fills up. Every case must end in one of two states: the old configuration
// serving, or the new one serving (and confirmed). Never a locked-out host,
// never "applied" printed for a failure, never a staged file left behind.
import test, { after, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleText } from "../lib/deliver";
import { loadSites } from "../lib/model/load";
import { renderHaproxyConfig, renderNftablesRuleset } from "../lib/render";
import { configDigest, nftablesAbsent, stampHaproxy, stampNftables, stampText } from "../lib/render/stamp";
import { FILE_PLACEHOLDER, RenderedFile } from "../lib/render/types";
import { canCreateNetns, inCi, toolPath } from "./helpers/tools";

const APPLY = join(__dirname, "..", "lib", "deliver", "apply.sh");
const NS = `standort-tx-${process.pid}`;
const MGMT = "10.30.2.10";
const sites = loadSites();
const vienna = sites.find((s) => s.name === "vienna")!;

const missing = ["nft", "ip", "haproxy", "curl", "setsid", "flock", "mount", "ps", "pkill", "timeout"].filter((t) => !toolPath(t));
const unavailable =
  missing.length > 0
    ? `missing tools: ${missing.join(", ")}`
    : !canCreateNetns()
      ? "cannot create network namespaces (needs root)"
      : undefined;

const dir = mkdtempSync(join(tmpdir(), "standort-tx-"));
/** The host's file system: a 4 MiB tmpfs with 400 inodes, so the test can fill it. */
const root = join(dir, "fs");
const etc = join(root, "etc");
const state = join(root, "state");
const lock = join(dir, "run", "deliver.lock");
const pidFile = join(dir, "run", "haproxy.pid");
const marks = join(dir, "marks");
const NFT = join(etc, "nftables.conf");
const HAPROXY = join(etc, "haproxy", "haproxy.cfg");
const FAULT = join(etc, "fault.conf");
const BLOCKED_PORT = 19999;

/**
 * A command that kills the whole transaction with SIGKILL when the test armed `step`: every process of its
 * session (the test starts each run as a session of its own; apply.sh bounds steps with timeout(1), which
 * puts them in a process group of their own).
 */
const killAt = (step: string) => `[ ! -e ${marks}/${step} ] || pkill -KILL -s "$(ps -o sid= -p $$ | tr -d ' ')"`;

interface Version {
  readonly name: string;
  readonly bundle: string;
  readonly nftStamp: string;
  readonly haproxyStamp: string;
}

/** One version of the host: the rendered ruleset and HAProxy configuration (revision comment varies), plus the fault file. */
function version(
  name: string,
  options: { haproxyExtra?: string; haproxyBroken?: boolean; fault?: "changed" | "gone"; confirm?: number; only?: "nft" } = {},
): Version {
  const nftRaw = `${renderNftablesRuleset(vienna, "vie-proxy-1", { sites })}# revision ${name}\n`;
  const nft = stampNftables(nftRaw, "inet standort");
  let haproxyRaw = `${renderHaproxyConfig(vienna, "vie-proxy-1", { sites })}# revision ${name}\n${options.haproxyExtra ?? ""}`;
  // The test's HAProxy runs without chroot or privilege drop (no haproxy user needed) and in the foreground of its master.
  haproxyRaw = haproxyRaw
    .replace(/^\tchroot .*\n|^\tuser .*\n|^\tgroup .*\n|^\tdaemon\n|^\tlog .*\n/gm, "")
    .replace(/^\tstats socket .*\n/m, "");
  if (options.haproxyBroken) haproxyRaw = haproxyRaw.replace("timeout connect 5s", "timeout connect five");
  const haproxy = stampHaproxy(haproxyRaw, `http://${MGMT}:8404`);
  const file = (f: Omit<RenderedFile, "delivery" | "secret">): RenderedFile => ({ delivery: "ssh", secret: false, ...f });
  const files: RenderedFile[] = [
    file({
      path: NFT,
      mode: "0644",
      content: nft.content,
      check: { command: ["nft", "-c", "-f", FILE_PLACEHOLDER] },
      reload: ["nft", "-f", NFT],
      healthCheck: nft.healthCheck,
      confirmWithinSeconds: options.confirm ?? 2,
      absent: nftablesAbsent(nft.content),
    }),
  ];
  if (options.only !== "nft") {
    files.push(
      file({
        path: HAPROXY,
        mode: "0644",
        content: haproxy.content,
        check: { command: ["haproxy", "-c", "-q", "-f", FILE_PLACEHOLDER] },
        // What `systemctl reload-or-restart haproxy` does for haproxy.service (-Ws): USR2 to the master, or start it.
        reload: [
          "sh",
          "-c",
          `if [ -s ${pidFile} ] && kill -0 "$(cat ${pidFile})" 2>/dev/null; then kill -USR2 "$(cat ${pidFile})"; else haproxy -W -D -f ${HAPROXY} -p ${pidFile} </dev/null >/dev/null 2>&1; fi`,
        ],
        healthCheck: haproxy.healthCheck,
      }),
    );
    if (options.fault !== "gone") {
      files.push(
        file({
          path: FAULT,
          mode: "0600",
          content: `fault ${options.fault === "changed" ? name : "v1"}\n`,
          check: { command: ["sh", "-c", `${killAt("check")}; true`, "check", FILE_PLACEHOLDER] },
          reload: ["sh", "-c", `${killAt("reload")}; true`],
          healthCheck: ["sh", "-c", `${killAt("health")}; true`],
          remove: ["sh", "-c", `${killAt("remove")}; true`],
          absent: ["sh", "-c", `${killAt("absent")}; true`],
        }),
      );
    }
  }
  return {
    name,
    bundle: bundleText(files),
    nftStamp: stampText(configDigest(nftRaw)),
    haproxyStamp: stampText(configDigest(haproxyRaw)),
  };
}

const v1 = version("v1");
const v2 = version("v2", { fault: "changed" });
const v2Gone = version("v2-gone", { fault: "gone" });

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs apply.sh in the namespace as its own process group (so `kill -KILL 0` hits only the transaction). */
function tx(args: string[], input?: string, cut?: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        NS,
        "sh",
        APPLY,
        "--state-dir",
        state,
        "--lock",
        lock,
        "--health-attempts",
        "6",
        "--health-interval",
        "0.3",
        ...args,
      ],
      { detached: true, stdio: ["pipe", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
    child.stdin.on("error", () => undefined);
    if (input === undefined) child.stdin.end();
    else if (cut === undefined) child.stdin.end(input);
    else {
      // Half the bundle, then the deployer's side dies: a kill -9 while receiving.
      child.stdin.write(input.slice(0, cut));
      setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 300);
    }
  });
}

const ns = (...argv: string[]) =>
  execFileSync("ip", ["netns", "exec", NS, ...argv], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const loadedStamp = () => {
  try {
    return /comment "(standort [0-9a-f]+)"/.exec(ns("nft", "list", "table", "inet", "standort"))?.[1] ?? "none";
  } catch {
    return "none";
  }
};
const haproxyStamp = () => {
  try {
    return ns("curl", "-fsS", "--max-time", "2", `http://${MGMT}:8404/standort-config`).trim();
  } catch {
    return "none";
  }
};

/** Files a transaction may leave next to a target or in its state: none may remain once it has settled. */
function leftovers(): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.standort-(new|old)$/.test(e.name) || /\.content$/.test(e.name) || e.name === "bundle") found.push(p);
    }
  };
  walk(root);
  if (existsSync(join(state, "tx"))) found.push(join(state, "tx"));
  return found;
}

/** Waits (bounded) until the serving stamps equal `v`'s. */
async function serving(v: Version, message: string, waitMs = 3000): Promise<void> {
  for (let waited = 0; waited < waitMs && (loadedStamp() !== v.nftStamp || haproxyStamp() !== v.haproxyStamp); waited += 200) {
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(
    { nft: loadedStamp(), haproxy: haproxyStamp() },
    { nft: v.nftStamp, haproxy: v.haproxyStamp },
    `${message}: ${v.name} serves`,
  );
}

/** The old configuration serves, its files are in place and nothing is left behind. */
async function oldServes(v: Version, message: string): Promise<void> {
  await serving(v, message);
  // A watchdog's rollback finishes with the old health checks; bounded wait for it to settle.
  for (let i = 0; i < 50 && existsSync(join(state, "tx")); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(readFileSync(HAPROXY, "utf8"), new RegExp(`# revision ${v.name}\\n`), `${message}: ${v.name}'s haproxy.cfg in place`);
  assert.deepEqual(leftovers(), [], `${message}: nothing left behind`);
}

/** Applies `v` and confirms it, as delivery does. */
async function deliver(v: Version, message: string): Promise<void> {
  const applied = await tx([], v.bundle);
  assert.equal(applied.code, 0, `${message}: ${applied.stderr}`);
  const confirmed = await tx(["--confirm"]);
  assert.equal(confirmed.code, 0, `${message}: ${confirmed.stderr}`);
  await serving(v, message);
  assert.deepEqual(leftovers(), [], `${message}: nothing left behind`);
}

function arm(step: string): void {
  writeFileSync(join(marks, step), "");
}
function disarm(): void {
  for (const f of readdirSync(marks)) rmSync(join(marks, f));
}

/** A reboot's first half: runtime state is lost (watchdogs, the lock, the loaded ruleset, running daemons). */
function powerOff(): void {
  try {
    execFileSync("pkill", ["-KILL", "-f", `standort-apply-watchdog .*${state}`]);
  } catch {
    // no watchdog running
  }
  rmSync(lock, { force: true });
  stopHaproxy();
  ns("nft", "flush", "ruleset");
}

/** Its second half: nftables.service and haproxy.service load the files as they are on disk. */
function boot(): void {
  if (existsSync(NFT)) ns("nft", "-f", NFT);
  ns("haproxy", "-W", "-D", "-f", HAPROXY, "-p", pidFile);
}

function stopHaproxy(): void {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    if (pid > 0) process.kill(pid, "SIGKILL");
  } catch {
    // not running
  }
  try {
    execFileSync("pkill", ["-KILL", "-f", `haproxy .*${dir}`]);
  } catch {
    // none left
  }
  rmSync(pidFile, { force: true });
}

before(() => {
  if (unavailable) return;
  mkdirSync(root, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m,nr_inodes=400,mode=0755", "standort-tx", root]);
  mkdirSync(join(etc, "haproxy"), { recursive: true });
  mkdirSync(join(dir, "run"), { recursive: true });
  mkdirSync(marks, { recursive: true });
  execFileSync("ip", ["netns", "add", NS]);
  ns("ip", "link", "set", "lo", "up");
  ns("ip", "addr", "add", `${MGMT}/32`, "dev", "lo");
  // The rendered HAProxy binds the site's addresses; here only lo exists.
  ns("sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1");
});

after(() => {
  if (!unavailable) {
    try {
      execFileSync("pkill", ["-KILL", "-f", `standort-apply-watchdog .*${state}`]);
    } catch {
      // none
    }
    stopHaproxy();
    try {
      execFileSync("pkill", ["-KILL", "-f", `haproxy .*blocker-${process.pid}`]);
    } catch {
      // none
    }
    try {
      execFileSync("ip", ["netns", "del", NS], { stdio: "ignore" });
    } catch {
      // gone
    }
    try {
      execFileSync("umount", ["-l", root], { stdio: "ignore" });
    } catch {
      // not mounted
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function ready(t: test.TestContext): boolean {
  if (!unavailable) return true;
  if (inCi()) assert.fail(`${unavailable} (CI=true)`);
  t.skip(unavailable);
  return false;
}

test("a first packet filter that is never confirmed is taken away again: the host is open as before, and a late confirm says so", async (t) => {
  if (!ready(t)) return;
  const first = version("first", { only: "nft" });
  const applied = await tx([], first.bundle);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stderr, /confirm within 2 s or it rolls back/);
  assert.equal(loadedStamp(), first.nftStamp);
  for (let i = 0; i < 40 && loadedStamp() !== "none"; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal(loadedStamp(), "none", "the watchdog deleted the ruleset's tables: nothing filters, nobody is locked out");
  assert.ok(!existsSync(NFT), "the file that was not there before is gone");
  assert.deepEqual(leftovers(), []);
  const late = await tx(["--confirm"]);
  assert.equal(late.code, 6, late.stderr);
  assert.match(late.stderr, /not confirmed in time and has been rolled back/);
});

test("a whole host bundle applies as one transaction, is confirmed, and a second delivery of it changes nothing", async (t) => {
  if (!ready(t)) return;
  await deliver(v1, "first delivery");
  const again = await tx([], v1.bundle);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /unchanged/);
  await deliver(v2, "second delivery");
  await deliver(v1, "back to v1");
});

test("a file that fails its daemon's check refuses the whole bundle: nothing changes", async (t) => {
  if (!ready(t)) return;
  const broken = version("broken", { haproxyBroken: true, fault: "changed" });
  const result = await tx([], broken.bundle);
  assert.equal(result.code, 3, result.stderr);
  assert.match(result.stderr, /refused .*haproxy\.cfg: the staged file fails its check/);
  assert.doesNotMatch(result.stderr, /applied/);
  await oldServes(v1, "refused");
  assert.match(readFileSync(FAULT, "utf8"), /fault v1/, "the bundle's other files did not change either");
});

test("an HAProxy configuration that passes haproxy -c but cannot bind is rolled back with the ruleset: the old worker and ruleset serve", async (t) => {
  if (!ready(t)) return;
  // Another program holds the port without SO_REUSEPORT, so HAProxy's new worker cannot bind it.
  const blockerCfg = join(dir, `blocker-${process.pid}.cfg`);
  writeFileSync(
    blockerCfg,
    `global\n\tnoreuseport\ndefaults\n\tmode tcp\n\ttimeout client 5s\n\ttimeout server 5s\n\ttimeout connect 5s\nfrontend hold\n\tbind 127.0.0.1:${BLOCKED_PORT}\n`,
  );
  ns("haproxy", "-D", "-f", blockerCfg, "-p", join(dir, "blocker.pid"));
  try {
    const unbindable = version("unbindable", { fault: "changed", haproxyExtra: `frontend shop\n\tbind 127.0.0.1:${BLOCKED_PORT}\n` });
    const result = await tx([], unbindable.bundle);
    assert.equal(result.code, 4, result.stderr);
    assert.match(result.stderr, /rolled back: the new configuration does not serve/);
    assert.doesNotMatch(result.stderr, /applied transaction/);
    await oldServes(v1, "unbindable");
  } finally {
    try {
      process.kill(Number(readFileSync(join(dir, "blocker.pid"), "utf8")), "SIGKILL");
    } catch {
      // gone
    }
  }
});

test("a full file system (no space, no inodes, or almost no space) never half-applies: old and untouched, or new and confirmed", async (t) => {
  if (!ready(t)) return;
  const fill = (kind: "space" | "inodes", keepKiB = 0) => {
    const fillDir = join(root, "fill");
    mkdirSync(fillDir, { recursive: true });
    if (kind === "inodes") {
      for (let i = 0; ; i++) {
        try {
          writeFileSync(join(fillDir, `i${i}`), "");
        } catch {
          break;
        }
      }
    } else {
      try {
        execFileSync("dd", ["if=/dev/zero", `of=${join(fillDir, "blob")}`, "bs=4k"], { stdio: "ignore" });
      } catch {
        // ENOSPC ends dd: the file system is full
      }
      if (keepKiB > 0) execFileSync("truncate", ["-s", `-${keepKiB}K`, join(fillDir, "blob")]);
    }
    return () => rmSync(fillDir, { recursive: true, force: true });
  };
  const cases: Array<[string, "space" | "inodes", number]> = [
    ["no space", "space", 0],
    ["no inodes", "inodes", 0],
    ...[4, 16, 64, 256, 1024].map((k): [string, "space", number] => [`${k} KiB free`, "space", k]),
  ];
  const outcomes: string[] = [];
  for (const [label, kind, keep] of cases) {
    const unfill = fill(kind, keep);
    let result: Outcome;
    try {
      result = await tx([], v2.bundle);
    } finally {
      unfill();
    }
    if (result.code === 0) {
      const confirmed = await tx(["--confirm"]);
      assert.equal(confirmed.code, 0, `${label}: ${confirmed.stderr}`);
      await serving(v2, label);
      assert.deepEqual(leftovers(), [], `${label}: nothing left behind`);
      outcomes.push(`${label}: new`);
      await deliver(v1, `${label}: back to v1`);
    } else {
      assert.equal(result.code, 2, `${label}: ${result.stderr}`);
      assert.match(result.stderr, /no room|cannot stage|cannot keep|nothing changed/);
      assert.doesNotMatch(result.stderr, /applied/);
      await oldServes(v1, label);
      outcomes.push(`${label}: old`);
    }
  }
  assert.ok(outcomes.includes("no space: old") && outcomes.includes("no inodes: old"), outcomes.join("; "));
  t.diagnostic(outcomes.join("; "));
});

test("kill -9 at every step: the next delivery finishes the new configuration, and a boot in between restores the old one", async (t) => {
  if (!ready(t)) return;
  const steps: Array<[string, Version]> = [
    ["check", v2],
    ["remove", v2Gone],
    ["reload", v2],
    ["absent", v2Gone],
    ["health", v2],
  ];
  for (const [step, next] of steps) {
    for (const then of ["recover", "retry"] as const) {
      arm(step);
      const killed = await tx([], next.bundle);
      disarm();
      assert.equal(killed.signal, "SIGKILL", `${step}: the transaction was killed (${killed.stderr})`);
      assert.doesNotMatch(killed.stderr, /applied transaction/, step);
      if (then === "recover") {
        // A boot (or an operator) settles the cut-off transaction: the old configuration comes back.
        const recovered = await tx(["--recover"]);
        assert.equal(recovered.code, 0, `${step}: ${recovered.stderr}`);
        await oldServes(v1, `${step} then boot`);
        assert.match(readFileSync(FAULT, "utf8"), /fault v1/, `${step} then boot: the removed or changed file is back`);
      } else {
        // The retried delivery rolls the cut-off transaction back first, then applies the whole bundle again.
        await deliver(next, `${step} then retry`);
        assert.equal(existsSync(FAULT), next === v2, `${step} then retry: fault.conf ${next === v2 ? "changed" : "removed"}`);
        await deliver(v1, `${step}: back to v1`);
      }
    }
  }
  // Cut off while the bundle arrives: nothing changed, and the retry applies it.
  const cut = await tx([], v2.bundle, Math.floor(v2.bundle.length / 2));
  assert.equal(cut.signal, "SIGKILL");
  await serving(v1, "cut while receiving");
  // What the killed run received stays (root only, 0700) until the next run or the boot settles it.
  const settled = await tx(["--recover"]);
  assert.equal(settled.code, 0, settled.stderr);
  assert.match(settled.stderr, /discarded transaction .* cut off while staging/);
  await oldServes(v1, "cut while receiving, then settled");
  await deliver(v2, "retry after a cut bundle");
  await deliver(v1, "back to v1");
  // A truncated bundle that does end: refused by its framing.
  const truncated = await tx([], v2.bundle.split("\n").slice(0, -3).join("\n") + "\n");
  assert.equal(truncated.code, 2);
  assert.match(truncated.stderr, /incomplete or damaged/);
  await oldServes(v1, "truncated bundle");
});

test("a pending confirmation survives a reboot: re-armed for the time left, or rolled back at boot once the deadline passed", async (t) => {
  if (!ready(t)) return;
  for (const when of ["before the deadline", "after the deadline"] as const) {
    const next = version(`reboot-${when === "before the deadline" ? "a" : "b"}`, { fault: "changed", confirm: 3 });
    const applied = await tx([], next.bundle);
    assert.equal(applied.code, 0, applied.stderr);
    await serving(next, `${when}: applied`);
    powerOff();
    if (when === "after the deadline") await new Promise((r) => setTimeout(r, 3500));
    boot();
    // The boot came up with the new, unconfirmed files.
    await serving(next, `${when}: booted`);
    const recovered = await tx(["--recover"]);
    assert.equal(recovered.code, 0, recovered.stderr);
    if (when === "before the deadline") assert.match(recovered.stderr, /awaits confirmation for \d+ more s/);
    await serving(v1, `${when}: rolled back`, 6000);
    await oldServes(v1, when);
    const late = await tx(["--confirm"]);
    assert.equal(late.code, 6, late.stderr);
  }
});
