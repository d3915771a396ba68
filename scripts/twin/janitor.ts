/**
 * Cleans up after twins whose process is gone: their namespaces (and every
 * process still in them), the mounts in their folders, and the folders
 * (which hold the twin's keys and rendered files). A twin names its
 * namespaces `tw<pid base 36>-…` and writes its pid to `<folder>/owner`, so a
 * dead owner's leftovers are recognised by name.
 *
 * Each twin starts one janitor, detached in its own session (a Ctrl-C to the
 * twin's process group, or a SIGKILL, does not reach it): it waits for the
 * twin's process to end and then reaps its leftovers. A twin that ended
 * cleanly leaves nothing, and its janitor exits without work.
 *
 *   node --import tsx scripts/twin/janitor.ts --watch PID
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

/** The folders twins make under the temporary directory. */
export const TWIN_DIR_PREFIX = "standort-twin-";
/** The container engines' folders of a twin (short: podman refuses a run root longer than 50 characters). */
export const ENGINES_DIR_PREFIX = "stw-";

const alive = (pid: number) => existsSync(`/proc/${pid}`);
const quietly = (argv: ReadonlyArray<string>) => {
  try {
    execFileSync(argv[0], argv.slice(1), { stdio: "ignore", timeout: 10_000 });
  } catch {
    // gone already
  }
};

/** The pid a twin namespace or folder belongs to, or undefined when the name is not a twin's. */
export function ownerOf(nsName: string): number | undefined {
  // `tw<pid base 36>-…`, or `tw<pid>_<id>-…` for each twin of a pair.
  const m = /^tw([0-9a-z]+)(?:_[a-z])?-/.exec(nsName);
  return m ? parseInt(m[1], 36) : undefined;
}

/**
 * Removes the leftovers of every twin whose owner process no longer runs (or,
 * with `owner`, of that one twin once it is gone). Returns the namespaces it removed.
 */
export function reap(options: { owner?: number; tmp?: string } = {}): string[] {
  const tmp = options.tmp ?? tmpdir();
  const dead = (pid: number | undefined) =>
    pid !== undefined && pid !== process.pid && !alive(pid) && (options.owner === undefined || pid === options.owner);
  let listed = "";
  try {
    listed = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
  } catch {
    listed = "";
  }
  const namespaces = listed
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((ns) => dead(ownerOf(ns)));
  for (const ns of namespaces) {
    let pids: number[] = [];
    try {
      pids = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split(/\s+/).filter(Boolean).map(Number);
    } catch {
      pids = [];
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
    quietly(["ip", "netns", "del", ns]);
  }
  const folders = readdirSync(tmp)
    .filter((f) => f.startsWith(TWIN_DIR_PREFIX) || f.startsWith(ENGINES_DIR_PREFIX))
    .map((f) => join(tmp, f))
    .filter((dir) => {
      try {
        return dead(Number(readFileSync(join(dir, "owner"), "utf8").trim()));
      } catch {
        return false;
      }
    });
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1])
    .filter((m): m is string => m !== undefined && folders.some((d) => m === d || m.startsWith(`${d}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) quietly(["umount", "-l", m]);
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  return namespaces;
}

if (require.main === module) {
  const { values } = parseArgs({ options: { watch: { type: "string" } } });
  const owner = Number(values.watch);
  if (!Number.isInteger(owner) || owner < 2) process.exit(2);
  const timer = setInterval(() => {
    if (alive(owner)) return;
    clearInterval(timer);
    reap({ owner });
  }, 250);
}
