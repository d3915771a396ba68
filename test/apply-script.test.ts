// The on-host apply script with real nftables inside a network namespace this
// test creates (no links, nothing leaves it): a good ruleset is applied and
// loaded, a broken one is refused while the old one stays loaded, a ruleset
// whose health check fails is rolled back, and an unconfirmed change rolls
// itself back.
import test, { after, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeliverySpec, applyArguments } from "../lib/deliver";
import { loadSites } from "../lib/model/load";
import { renderNftablesRuleset } from "../lib/render";
import { canCreateNetns, inCi, requireTool, run, toolPath } from "./helpers/tools";

const APPLY = join(__dirname, "..", "lib", "deliver", "apply.sh");
const NS = `standort-apply-${process.pid}`;
const sites = loadSites();
const vienna = sites.find((s) => s.name === "vienna")!;

/** Why the namespace tests cannot run here, if they cannot. */
const missing = ["nft", "ip", "setsid", "sh"].filter((t) => !toolPath(t));
const unavailable =
  missing.length > 0
    ? `missing tools: ${missing.join(", ")}`
    : !canCreateNetns()
      ? "cannot create network namespaces (needs root)"
      : undefined;

const dir = mkdtempSync(join(tmpdir(), "standort-apply-"));
const target = join(dir, "etc", "nftables.conf");
const backupDir = join(dir, "backup");
const lock = join(dir, "apply.lock");

/** Rulesets: the rendered firewall ruleset, with the proxies' services on 8080 (old) or 8080 and 8443 (new). */
const oldRuleset = renderNftablesRuleset(vienna, "vie-fw-1", { sites });
const newRuleset = renderNftablesRuleset(vienna, "vie-fw-1", {
  sites,
  services: [
    { name: "platform", hostnames: [], port: 8080 },
    { name: "shop", hostnames: ["shop.example.org"], port: 8443 },
  ],
});

before(() => {
  if (unavailable) return;
  execFileSync("ip", ["netns", "add", NS]);
});
after(() => {
  if (!unavailable) {
    try {
      execFileSync("ip", ["netns", "del", NS], { stdio: "ignore" });
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Skips (or fails in CI) when namespaces or tools are unavailable. */
function ready(t: test.TestContext): boolean {
  if (!unavailable) return true;
  if (inCi()) assert.fail(`${unavailable} (CI=true)`);
  t.skip(unavailable);
  return false;
}

let staged = 0;

/** Stages `content` and runs the apply script inside the namespace with the nftables check, reload and health check. */
async function apply(content: string, extra: { health?: string; confirmWithinSeconds?: number } = {}) {
  const stagedPath = join(dir, `staged-${++staged}.nft`);
  writeFileSync(stagedPath, content);
  const spec: DeliverySpec = {
    path: target,
    mode: "0644",
    secret: false,
    delivery: "ssh",
    check: { command: ["nft", "-c", "-f", "{file}"] },
    reload: ["nft", "-f", target],
    healthCheck: extra.health ? ["sh", "-c", extra.health] : ["nft", "list", "table", "inet", "standort"],
    confirmWithinSeconds: extra.confirmWithinSeconds,
  };
  const args = applyArguments(spec, stagedPath, { backupDir, lock });
  // Health checks retry five times a second apart by default; two quick attempts keep the test fast.
  const result = await run(["ip", "netns", "exec", NS, "sh", APPLY, ...args, "--health-attempts", "2", "--health-interval", "0"]);
  return { ...result, stagedPath };
}

const loaded = () => execFileSync("ip", ["netns", "exec", NS, "nft", "list", "ruleset"], { encoding: "utf8" });
const servicesRule = (ruleset: string) => /tcp dport (\{ 8080, 8443 \}|8080) accept comment "dmz-to-app-services"/.exec(ruleset)?.[1];

test("a good ruleset is checked, swapped in and loaded; the old file is kept as backup", async (t) => {
  if (!ready(t)) return;
  const first = await apply(oldRuleset);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /applied .*nftables\.conf/);
  assert.equal(servicesRule(loaded()), "8080");
  assert.equal(readFileSync(target, "utf8"), oldRuleset);

  const second = await apply(newRuleset);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(servicesRule(loaded()), "{ 8080, 8443 }");
  assert.equal(readFileSync(target, "utf8"), newRuleset);
  assert.equal(readFileSync(join(backupDir, `${target.replace(/\//g, "%")}.prev`), "utf8"), oldRuleset);
  assert.ok(!existsSync(second.stagedPath), "the staged file is consumed");
  // The loaded policy is the rendered one: default deny on input and forward.
  assert.match(loaded(), /hook input priority filter; policy drop;/);
  assert.match(loaded(), /hook forward priority filter; policy drop;/);
});

test("a broken ruleset is refused by the check and the loaded ruleset stays", async (t) => {
  if (!ready(t)) return;
  const before = loaded();
  const result = await apply(newRuleset.replace("policy drop;", "policy dorp;"));
  assert.equal(result.code, 3);
  assert.match(result.stderr, /refused .*nftables\.conf: the staged file fails its check/);
  assert.equal(readFileSync(target, "utf8"), newRuleset, "the target file is untouched");
  assert.equal(loaded(), before, "the loaded ruleset is untouched");
  // A refused file may hold a secret: it is not left in the staging directory.
  assert.ok(!existsSync(result.stagedPath), "the refused staged file is removed");
});

test("a valid ruleset whose health check fails is rolled back and the old ruleset is loaded again", async (t) => {
  if (!ready(t)) return;
  // Valid, but it no longer lets management in: the health check notices and the old file comes back.
  const lockedOut = oldRuleset
    .split("\n")
    .filter((l) => !l.includes('comment "allowlist-to-ssh"'))
    .join("\n");
  const result = await apply(lockedOut, { health: 'nft list ruleset | grep -q "allowlist-to-ssh"' });
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, /rolled back .*nftables\.conf: health check failed 2 times/);
  assert.equal(readFileSync(target, "utf8"), newRuleset);
  assert.equal(servicesRule(loaded()), "{ 8080, 8443 }");
  assert.match(loaded(), /allowlist-to-ssh/);
});

/** Confirms the pending change of the target as delivery does: over a fresh invocation inside the namespace. */
function confirmInNamespace() {
  return run(["ip", "netns", "exec", NS, "sh", APPLY, "--confirm", "--target", target, "--backup-dir", backupDir, "--lock", lock]);
}

test("a change that is not confirmed in time restores the old ruleset by itself; a confirmed one stays", async (t) => {
  if (!ready(t)) return;
  const unconfirmed = await apply(oldRuleset, { confirmWithinSeconds: 1 });
  assert.equal(unconfirmed.code, 0, unconfirmed.stderr);
  assert.match(unconfirmed.stderr, /confirm within 1 s or it rolls back/);
  assert.equal(servicesRule(loaded()), "8080");
  // Bounded wait for the watchdog (1 s plus scheduling).
  for (let i = 0; i < 50 && servicesRule(loaded()) !== "{ 8080, 8443 }"; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal(servicesRule(loaded()), "{ 8080, 8443 }", "the watchdog restored the previous ruleset");
  assert.equal(readFileSync(target, "utf8"), newRuleset);
  const late = await confirmInNamespace();
  assert.equal(late.code, 6);
  assert.match(late.stderr, /was not confirmed in time and has been rolled back/);

  const confirmed = await apply(oldRuleset, { confirmWithinSeconds: 1 });
  assert.equal(confirmed.code, 0, confirmed.stderr);
  const ok = await confirmInNamespace();
  assert.equal(ok.code, 0, ok.stderr);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(servicesRule(loaded()), "8080", "a confirmed change stays after the deadline");
});

test("a failing reload of a new file removes the file again (there was none before)", async (t) => {
  // No namespace needed: nothing here touches the network.
  if (!requireTool(t, "sh")) return;
  const fresh = join(dir, "etc", "extra.conf");
  const stagedPath = join(dir, "staged-extra");
  writeFileSync(stagedPath, "bad setting\n");
  // The "daemon" refuses to reload while the file says bad, and reloads fine without the file.
  const reload = `! grep -qs bad ${fresh}`;
  const result = await run([
    "sh",
    APPLY,
    "--staged",
    stagedPath,
    "--target",
    fresh,
    "--reload",
    reload,
    "--backup-dir",
    backupDir,
    "--lock",
    lock,
  ]);
  assert.equal(result.code, 4, result.stderr);
  assert.match(result.stderr, /rolled back .*extra\.conf: reload failed/);
  assert.ok(!existsSync(fresh));
});
