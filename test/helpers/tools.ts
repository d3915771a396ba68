/**
 * Test helpers for tests that drive real programs (daemons' config checks,
 * network namespaces): finding a tool, skipping without it (failing in CI),
 * running many commands with a small pool, and namespaces that are always
 * removed again.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import type { TestContext } from "node:test";

/** Where system tools live even when PATH lacks the sbin directories. */
const EXTRA_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/lib/postgresql/15/bin"];

/** The absolute path of an executable, or undefined when it is not installed. */
export function toolPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** True when the tests run in CI, where a missing tool is a failure rather than a skip. */
export function inCi(): boolean {
  return process.env.CI === "true";
}

/**
 * Returns true when every named tool is installed. Otherwise fails the test
 * in CI and skips it elsewhere, naming the missing tools; the caller returns
 * early on false.
 */
export function requireTool(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((n) => toolPath(n) === undefined);
  if (missing.length === 0) return true;
  const message = `missing tool${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}`;
  if (inCi()) assert.fail(`${message} (CI=true: every tool must be installed)`);
  t.skip(message);
  return false;
}

/** True when this process may create network namespaces (root with CAP_SYS_ADMIN). */
export function canCreateNetns(): boolean {
  if (process.getuid?.() !== 0 || toolPath("ip") === undefined) return false;
  const probe = `standort-probe-${process.pid}`;
  try {
    execFileSync("ip", ["netns", "add", probe], { stdio: "ignore" });
    execFileSync("ip", ["netns", "del", probe], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Like `requireTool`, for the privilege to create network namespaces. */
export function requireNetns(t: TestContext): boolean {
  if (!requireTool(t, "ip")) return false;
  if (canCreateNetns()) return true;
  const message = "cannot create network namespaces (needs root with CAP_SYS_ADMIN)";
  if (inCi()) assert.fail(message);
  t.skip(message);
  return false;
}

/** The outcome of one command. */
export interface RunResult {
  readonly argv: ReadonlyArray<string>;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command without a shell; never rejects (the exit code is in the result). */
export function run(argv: ReadonlyArray<string>, options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      argv[0],
      argv.slice(1),
      { timeout: options.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === "number" ? (error as { code: number }).code : 1) : 0;
        resolve({ argv, code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs commands with at most `concurrency` at a time; results in input order. */
export async function runAll(commands: ReadonlyArray<ReadonlyArray<string>>, concurrency = 4): Promise<RunResult[]> {
  const results: RunResult[] = new Array(commands.length);
  let next = 0;
  const worker = async () => {
    while (next < commands.length) {
      const i = next++;
      results[i] = await run(commands[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, commands.length) }, worker));
  return results;
}

/**
 * Creates a network namespace holding a link for each name (dummy devices
 * where the kernel has them, else bridges: either way an interface by that
 * name exists and carries nothing outside the namespace). Returns a function
 * that deletes the namespace; callers run it in `after`/`finally`.
 */
export function createNetnsWithLinks(name: string, links: ReadonlyArray<string>): () => void {
  execFileSync("ip", ["netns", "add", name], { stdio: "ignore" });
  const remove = () => {
    try {
      execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
    } catch {
      // already gone
    }
  };
  try {
    for (const link of links) {
      try {
        execFileSync("ip", ["-n", name, "link", "add", link, "type", "dummy"], { stdio: "ignore" });
      } catch {
        execFileSync("ip", ["-n", name, "link", "add", link, "type", "bridge"], { stdio: "ignore" });
      }
    }
    return remove;
  } catch (error) {
    remove();
    throw error;
  }
}

/** Formats failed results for an assertion message. */
export function describeFailures(results: ReadonlyArray<RunResult & { label?: string }>): string {
  return results
    .map((r) => `${r.label ?? r.argv.join(" ")} (exit ${r.code}):\n${(r.stderr || r.stdout).trim().split("\n").slice(0, 8).join("\n")}`)
    .join("\n\n");
}
