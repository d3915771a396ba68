/**
 * The shell commands that deliver one rendered file to a host: install the
 * apply script, stage the content (read from stdin, so it never appears in a
 * command line or a process list), and run the apply script with the file's
 * check, reload and health check. Pure string building; the delivery
 * component runs these commands over SSH.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";

/** Where the apply script lives on every host. */
export const APPLY_SCRIPT_PATH = "/usr/local/lib/standort/apply.sh";
/** Where staged files wait for their check. */
export const STAGING_DIR = "/var/lib/standort/staging";
/** Backups of replaced files (one `.prev` per target). */
export const BACKUP_DIR = "/var/lib/standort/backup";

/** The apply script's text (`lib/deliver/apply.sh`). */
export const APPLY_SCRIPT: string = readFileSync(join(__dirname, "apply.sh"), "utf8");

const HEREDOC = "STANDORT_APPLY_SH_END";
if (APPLY_SCRIPT.includes(HEREDOC)) throw new Error(`apply.sh must not contain the heredoc delimiter ${HEREDOC}`);

/** What delivery needs of a file besides its content. */
export type DeliverySpec = Omit<RenderedFile, "content">;

/** A stable, readable key for a path: `/etc/nftables.conf` → `etc-nftables-conf`. */
export function pathSlug(path: string): string {
  return path
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** Quotes one word for POSIX sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Joins argv into a command line for `sh -c`. */
export function shellJoin(argv: ReadonlyArray<string>): string {
  return argv.map(shellQuote).join(" ");
}

/** SHA-256 of a file's content, hex: the delivery trigger. */
export function contentHash(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex");
}

/** The staging path of a file on the host. */
export function stagingPath(file: Pick<RenderedFile, "path">): string {
  return `${STAGING_DIR}/${pathSlug(file.path)}`;
}

/** The apply script's arguments for a file staged at `staged`. */
export function applyArguments(file: DeliverySpec, staged: string, options: { backupDir?: string; lock?: string } = {}): string[] {
  const args = ["--staged", staged, "--target", file.path, "--mode", file.mode, "--owner", file.owner ?? "root:root"];
  if (file.check) args.push("--check", shellJoin(file.check.command.map((w) => (w === FILE_PLACEHOLDER ? staged : w))));
  if (file.reload) args.push("--reload", shellJoin(file.reload));
  if (file.healthCheck) args.push("--health", shellJoin(file.healthCheck));
  if (file.confirmWithinSeconds !== undefined) args.push("--confirm-within", String(file.confirmWithinSeconds));
  if (options.backupDir) args.push("--backup-dir", options.backupDir);
  if (options.lock) args.push("--lock", options.lock);
  return args;
}

/**
 * The remote command that installs (or updates) the apply script on a host,
 * once per host: every file's command runs it. Atomic: a half-written script
 * never replaces a working one.
 */
export function installApplyScriptCommand(): string {
  return [
    "set -eu",
    "umask 022",
    `mkdir -p ${shellQuote(APPLY_SCRIPT_PATH.replace(/\/[^/]+$/, ""))}`,
    `cat > ${APPLY_SCRIPT_PATH}.new.$$ <<'${HEREDOC}'`,
    APPLY_SCRIPT.replace(/\n$/, ""),
    HEREDOC,
    `chmod 0755 ${APPLY_SCRIPT_PATH}.new.$$`,
    `mv -f ${APPLY_SCRIPT_PATH}.new.$$ ${APPLY_SCRIPT_PATH}`,
    "",
  ].join("\n");
}

/**
 * The remote command that delivers a file whose content arrives on stdin:
 * stages stdin and runs the apply script (installed by
 * `installApplyScriptCommand`). Its exit code is the apply script's (non-zero
 * on refusal or rollback, which fails the deployment).
 */
export function applyCommand(file: DeliverySpec): string {
  const staged = stagingPath(file);
  return [
    "set -eu",
    "umask 077",
    `mkdir -p ${STAGING_DIR}`,
    `cat > ${shellQuote(staged)}`,
    `exec sh ${APPLY_SCRIPT_PATH} ${shellJoin(applyArguments(file, staged))}`,
    "",
  ].join("\n");
}

/**
 * Where apply.sh keeps its records of a target (`<key>.prev`, `.none`,
 * `.pending`, `.expired`): the path with every `/` turned into `%`, as
 * apply.sh computes it (`KEY=$(printf '%s' "$TARGET" | sed 's|/|%|g')`).
 */
export function backupKey(target: string): string {
  return `${BACKUP_DIR}/${target.replace(/\//g, "%")}`;
}

/**
 * The remote command that takes a file off a host when it is no longer
 * rendered for it (the delivering resource is deleted): stop what the file
 * started, remove it and its backup, and let the daemon forget it. A timer of
 * a job that moved to another site must not keep copying stale data from here.
 */
export function removeCommand(file: Pick<RenderedFile, "path" | "remove" | "reload">): string {
  // Every record apply.sh keeps of the file goes too: a backup of a removed secret file must not linger.
  const records = ["prev", "none", "pending", "expired"].map((suffix) => shellQuote(`${backupKey(file.path)}.${suffix}`));
  return [
    "set -u",
    ...(file.remove ? [`${shellJoin(file.remove)} || echo "standort: stopping for ${file.path} failed; removing it anyway" >&2`] : []),
    `rm -f ${shellQuote(file.path)} ${records.join(" ")}`,
    // Units are forgotten only after their file is gone.
    ...(file.path.startsWith("/etc/systemd/system/") ? ["systemctl daemon-reload"] : []),
    "",
  ].join("\n");
}

/** The remote command, run over a fresh connection, that confirms a file applied with `confirmWithinSeconds`. */
export function confirmCommand(file: Pick<RenderedFile, "path">): string {
  return `sh ${APPLY_SCRIPT_PATH} --confirm --target ${shellQuote(file.path)}\n`;
}
