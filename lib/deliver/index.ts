/**
 * What delivery sends to a host: the host's whole configuration as one bundle
 * (every shipped file with its check, reload, health check and removal
 * steps), applied as one transaction by `apply.sh` on the host, and the
 * commands that run it. Pure string building; the delivery component runs the
 * commands over SSH with the bundle on stdin (never in a command line).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FILE_PLACEHOLDER, RenderedFile } from "../render/types";

/** Where the transaction script lives on every host. */
export const APPLY_SCRIPT_PATH = "/usr/local/lib/standort/apply.sh";
/** The boot unit that settles a transaction a reboot cut off (rolls it back or re-arms its confirmation). */
export const RECOVER_UNIT = "standort-apply-recover.service";

/** The transaction script's text (`lib/deliver/apply.sh`). */
export const APPLY_SCRIPT: string = readFileSync(join(__dirname, "apply.sh"), "utf8");

const HEREDOC = "STANDORT_APPLY_SH_END";
if (APPLY_SCRIPT.includes(HEREDOC)) throw new Error(`apply.sh must not contain the heredoc delimiter ${HEREDOC}`);

/** Bundle format version; apply.sh refuses any other. */
export const BUNDLE_HEADER = "standort-bundle 1";

/** Quotes one word for POSIX sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}

/** Joins argv into a command line for `sh -c`. */
export function shellJoin(argv: ReadonlyArray<string>): string {
  return argv.map(shellQuote).join(" ");
}

/** SHA-256 of a text, hex. */
export function contentHash(content: string): string {
  return createHash("sha256").update(content, "utf8").digest("hex");
}

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** Unit files need systemd to forget them once they are gone. */
const UNIT_DIR = "/etc/systemd/system/";

/**
 * The bundle apply.sh reads on stdin: `standort-bundle 1`, then one line per
 * field `<index> <field> <base64>` (index 1… in delivery order, which is the
 * reload order), then `end <files> <sha256 of every line before>`.
 * `check` becomes a shell command whose `"$1"` is the staged file. Only files
 * with `delivery: "ssh"` go in. Deterministic: same files, same bytes.
 * @throws Error when two files share a path or a path is not absolute
 */
export function bundleText(files: ReadonlyArray<RenderedFile>): string {
  const shipped = files.filter((f) => f.delivery === "ssh");
  const seen = new Set<string>();
  const lines = [BUNDLE_HEADER];
  shipped.forEach((file, n) => {
    if (!file.path.startsWith("/")) throw new Error(`bundle: ${file.path} is not an absolute path`);
    if (seen.has(file.path)) throw new Error(`bundle: ${file.path} appears twice`);
    seen.add(file.path);
    const index = n + 1;
    const fields: Array<[string, string | undefined]> = [
      ["path", file.path],
      ["mode", file.mode],
      ["owner", file.owner ?? "root:root"],
      ["content", file.content],
      ["check", file.check ? file.check.command.map((w) => (w === FILE_PLACEHOLDER ? '"$1"' : shellQuote(w))).join(" ") : undefined],
      ["reload", file.reload ? shellJoin(file.reload) : undefined],
      ["health", file.healthCheck ? shellJoin(file.healthCheck) : undefined],
      ["remove", file.remove ? shellJoin(file.remove) : undefined],
      ["absent", file.absent ? shellJoin(file.absent) : file.path.startsWith(UNIT_DIR) ? "systemctl daemon-reload" : undefined],
      ["confirm", file.confirmWithinSeconds !== undefined ? String(file.confirmWithinSeconds) : undefined],
    ];
    for (const [name, value] of fields) if (value !== undefined) lines.push(`${index} ${name} ${b64(value)}`);
  });
  const body = lines.join("\n") + "\n";
  return `${body}end ${shipped.length} ${contentHash(body)}\n`;
}

/**
 * The remote command of a host's transaction, its bundle arriving on stdin:
 * installs apply.sh (atomically; this very text carries it, so script and
 * bundle never disagree), installs and enables the boot unit that settles a
 * transaction a reboot cut off, then runs apply.sh. Its exit code is
 * apply.sh's: non-zero on refusal or rollback, which fails the deployment.
 */
export function transactionCommand(options: { healthAttempts?: number } = {}): string {
  const dir = APPLY_SCRIPT_PATH.replace(/\/[^/]+$/, "");
  const unit = [
    "[Unit]",
    "Description=standort: settle a configuration transaction a reboot cut off",
    "After=local-fs.target network.target nftables.service",
    "[Service]",
    "Type=oneshot",
    `ExecStart=/bin/sh ${APPLY_SCRIPT_PATH} --recover`,
    "[Install]",
    "WantedBy=multi-user.target",
  ].join("\n");
  return [
    "set -eu",
    "umask 022",
    `mkdir -p ${dir}`,
    `trap 'rm -f ${APPLY_SCRIPT_PATH}.new.$$' EXIT`,
    `cat > ${APPLY_SCRIPT_PATH}.new.$$ <<'${HEREDOC}'`,
    APPLY_SCRIPT.replace(/\n$/, ""),
    HEREDOC,
    `chmod 0755 ${APPLY_SCRIPT_PATH}.new.$$`,
    `mv -f ${APPLY_SCRIPT_PATH}.new.$$ ${APPLY_SCRIPT_PATH}`,
    "trap - EXIT",
    // Written (and systemd reloaded) only when it differs: most deliveries leave it alone.
    "if [ -d /run/systemd/system ]; then",
    `  u=/etc/systemd/system/${RECOVER_UNIT}`,
    `  printf '%s\\n' ${shellQuote(unit)} > "$u.new.$$"`,
    `  if cmp -s "$u.new.$$" "$u"; then rm -f "$u.new.$$"; else mv -f "$u.new.$$" "$u" && systemctl daemon-reload && systemctl enable --quiet ${RECOVER_UNIT}; fi`,
    "fi",
    `exec sh ${APPLY_SCRIPT_PATH}${options.healthAttempts !== undefined ? ` --health-attempts ${options.healthAttempts}` : ""}`,
    "",
  ].join("\n");
}

/** The remote command, run over a fresh connection, that confirms a pending transaction (a packet filter change). */
export function confirmCommand(): string {
  return `sh ${APPLY_SCRIPT_PATH} --confirm\n`;
}
