// A twin that is killed outright (SIGKILL: no handler runs) leaves nothing behind: its janitor, started
// detached in its own session, removes its namespaces, mounts, processes and folder once the twin is gone.
import test from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { requireTwin } from "./helpers/twin";
import { ENGINES_DIR_PREFIX, TWIN_DIR_PREFIX } from "../scripts/twin/janitor";

test("a twin killed with SIGKILL is cleaned up by its janitor", { timeout: 120_000 }, async (t) => {
  if (!requireTwin(t)) return;
  const child = spawn("node", ["--import", "tsx", "scripts/twin.ts", "vienna", "--scenario", "none", "--hold"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
  for (let i = 0; i < 600 && !out.includes("holding the twin"); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(out.includes("holding the twin"), out);
  const prefix = `tw${child.pid!.toString(36)}-`;
  const namespaces = () => readdirSync("/run/netns").filter((n) => n.startsWith(prefix));
  const folders = () =>
    readdirSync(tmpdir()).filter(
      (f) =>
        (f.startsWith(TWIN_DIR_PREFIX) || f.startsWith(ENGINES_DIR_PREFIX)) &&
        existsSync(`${tmpdir()}/${f}/owner`) &&
        readFileSync(`${tmpdir()}/${f}/owner`, "utf8").trim() === String(child.pid),
    );
  assert.ok(namespaces().length >= 10, `the twin runs (${namespaces().join(", ")})`);
  // The twin's folder, and its container engines' (vienna runs its workloads on Compose).
  assert.equal(folders().length, 2);
  child.kill("SIGKILL");
  for (let i = 0; i < 100 && (namespaces().length > 0 || folders().length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(namespaces(), [], "every namespace is gone");
  assert.deepEqual(folders(), [], "the folders (keys, rendered files, the engines' stores) are gone");
  assert.ok(!readFileSync("/proc/self/mounts", "utf8").includes(TWIN_DIR_PREFIX), "no mount remains");
  // The engines ran in the twin's namespaces: their processes went with them.
  const commandLine = (pid: string) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      return ""; // exited meanwhile
    }
  };
  const engines = readdirSync("/proc").filter((p) => /^\d+$/.test(p) && commandLine(p).includes(`${tmpdir()}/${ENGINES_DIR_PREFIX}`));
  assert.deepEqual(engines, [], "no container engine of the twin runs");
});
