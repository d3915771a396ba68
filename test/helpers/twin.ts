/**
 * Test helpers for the site twin: the tools it needs (a missing one fails the
 * test in CI and skips it elsewhere), and the check that a twin left nothing
 * behind.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { TestContext } from "node:test";
import { requireNetns, requireTool } from "./tools";

/** Every program the twin runs: the daemons the rendered files configure, and the tools it boots them with. */
export const TWIN_TOOLS = [
  "ip",
  "nsenter",
  "unshare",
  "nft",
  "sysctl",
  "keepalived",
  "haproxy",
  "bird",
  "birdc",
  "sshd",
  "ssh",
  "ssh-keygen",
  "socat",
  "openssl",
  "ping",
  "arping",
  "curl",
  "jq",
  "logger",
  // The storage hosts: the real NFS server, and what the DRBD stand-in and systemctl run (scripts/twin/storage.ts).
  "ganesha.nfsd",
  "ss",
  "bash",
  "timeout",
] as const;

/** True when the twin can run here; otherwise fails the test in CI and skips it elsewhere. */
export function requireTwin(t: TestContext): boolean {
  return requireTool(t, ...TWIN_TOOLS) && requireNetns(t);
}

/** Asserts that no namespace of `prefix` and no mount of the twin's folder remain. */
export function assertNothingLeft(prefix: string, dir: string): void {
  const namespaces = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => l.startsWith(`${prefix}-`));
  assert.deepEqual(namespaces, [], "every namespace of the twin is removed");
  const mounts = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .filter((l) => l.includes(dir));
  assert.deepEqual(mounts, [], "every mount of the twin is released");
}
