/**
 * Stamps a configuration with a digest of itself that the running daemon
 * reports back, so a health check proves the daemon runs the new file and not
 * the old one (a reload that failed quietly leaves the old worker or ruleset
 * answering). Pure text functions.
 */
import { createHash } from "node:crypto";

/** Hex characters of SHA-256 kept in a stamp: 64 bits tell two renders apart. */
const DIGEST_LENGTH = 16;

/** The digest of a configuration without its stamp line. */
export function configDigest(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex").slice(0, DIGEST_LENGTH);
}

/** The text a stamped daemon reports: `standort <digest>`. */
export function stampText(digest: string): string {
  return `standort ${digest}`;
}

/** Inserts `line` after the first line equal to `anchor`; throws when the anchor is missing (a renderer changed shape). */
function insertAfter(content: string, anchor: string, line: string): string {
  const lines = content.split("\n");
  const at = lines.indexOf(anchor);
  if (at < 0) throw new Error(`stamp: no line "${anchor}" to stamp after`);
  lines.splice(at + 1, 0, line);
  return lines.join("\n");
}

/**
 * Stamps an nftables ruleset: a `comment` on the table (nft 0.9.7 and later
 * keep table comments, nft(8) "TABLES"); the health command lists the loaded
 * table and finds the stamp.
 * @param table family and name, for example `inet standort`
 */
export function stampNftables(content: string, table: string): { content: string; healthCheck: string[] } {
  const digest = configDigest(content);
  return {
    content: insertAfter(content, `table ${table} {`, `\tcomment "${stampText(digest)}"`),
    healthCheck: ["sh", "-c", `nft list table ${table} | grep -qF 'comment "${stampText(digest)}"'`],
  };
}

/** The path HAProxy's stats frontend answers the stamp on. */
export const HAPROXY_STAMP_PATH = "/standort-config";

/**
 * Stamps an HAProxy configuration: the stats frontend answers
 * `GET /standort-config` with the stamp (`http-request return`, HAProxy 2.2+).
 * A new worker starts only when every `bind` succeeded, so the stamp from the
 * stats address proves the new worker runs and every frontend is bound.
 * @param statsUrl `http://<mgmt>:<port>` of the stats frontend
 */
export function stampHaproxy(content: string, statsUrl: string): { content: string; healthCheck: string[] } {
  const digest = configDigest(content);
  const rule = `\thttp-request return status 200 content-type text/plain string "${stampText(digest)}" if { path ${HAPROXY_STAMP_PATH} }`;
  return {
    content: insertAfter(content, "frontend stats", rule),
    healthCheck: ["sh", "-c", `curl -fsS --max-time 5 ${statsUrl}${HAPROXY_STAMP_PATH} | grep -qxF '${stampText(digest)}'`],
  };
}

/**
 * The `absent` command of an nftables file: deletes the tables it defines, so
 * a first install rolled back leaves the host as it was before (open, not
 * locked out by a half-loaded ruleset). Tables are read from `table <family> <name> {` lines.
 */
export function nftablesAbsent(content: string): string[] {
  const tables = [...new Set([...content.matchAll(/^table (\S+ \S+) \{$/gm)].map((m) => m[1]))];
  return ["sh", "-c", tables.map((t) => `nft delete table ${t} 2>/dev/null;`).join(" ") + " true"];
}
