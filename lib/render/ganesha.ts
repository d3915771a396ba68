/**
 * The storage pair's NFS server: nfs-ganesha 4.3 (Debian's `nfs-ganesha` with
 * the VFS FSAL), NFSv4 only, one export per file tree the site holds, open to
 * the application segment alone. ganesha runs on the active member only (the
 * failover script starts it after the data volume is mounted).
 *
 * Why ganesha everywhere, not the kernel's server: the twin (no kernel NFS
 * server on its machine) then boots what production runs, one server kind
 * and one configuration, checked the same way.
 *
 * Sources: ganesha-config(8) (syntax), ganesha-core-config(8) (NFS_CORE_PARAM,
 * NFSV4), ganesha-export-config(8) (EXPORT, CLIENT, FSAL). Pure: the trees
 * come in as data (`lib/footprint/nfs-exports.ts` reads the footprint).
 */
import type { SiteModel } from "../model/model";
import { ProblemCollector } from "./errors";
import { NFS_PORT } from "./policy";
import { DATA_ROOT } from "./storage";
import { FILE_PLACEHOLDER } from "./types";

/** Where Debian's nfs-ganesha unit reads its configuration (`/etc/default/nfs-ganesha`: `-f /etc/ganesha/ganesha.conf`). */
export const GANESHA_CONF = "/etc/ganesha/ganesha.conf";
/**
 * NFSv4 client records (the `fs` recovery backend) on the replicated volume:
 * a member that takes over knows the clients that may reclaim their state.
 * Below the data root, outside every exported tree.
 */
export const GANESHA_RECOVERY_ROOT = `${DATA_ROOT}/.nfs-ganesha`;
/**
 * Seconds of NFSv4 lease and grace (ganesha-core-config(8) NFSV4
 * `Lease_Lifetime`, `Grace_Period`; defaults 60 and 90): after a takeover the
 * new server refuses new opens for the grace period while known clients
 * reclaim (it lifts grace early once all have reclaimed; a client that never
 * does, such as libnfs, waits it out). Shorter than the defaults so that a
 * takeover costs seconds, not a minute and a half: grace is one lease and a
 * margin, so every client that held state notices the new server and
 * reclaims within it (Linux renews every third of the lease).
 */
export const NFS_LEASE_SECONDS = 10;
export const NFS_GRACE_SECONDS = 15;
/** Largest `Export_Id` (a 16-bit number; 0 is the pseudo root, ganesha-export-config(8)). */
const MAX_EXPORT_ID = 65535;

/** One exported tree: its path on the storage hosts and the stable id derived from it. */
export interface ExportedTree {
  /** Absolute path below `DATA_ROOT` (for example `/srv/mail/vmail`); also the NFSv4 pseudo path. */
  readonly path: string;
  /** What holds it, for the comment (for example `mail/vmail`). */
  readonly what: string;
}

/** FNV-1a (32 bit) of a string: a stable number from a tree's path. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The export id of a tree: 1..65535 from its path alone, so adding or removing another tree never renumbers it. */
export function exportId(path: string): number {
  return (fnv1a(path) % MAX_EXPORT_ID) + 1;
}

/**
 * Renders `/etc/ganesha/ganesha.conf` for a storage host: NFSv4 only on TCP
 * `NFS_PORT` (no NLM, RQUOTA, UDP or rpcbind: one port through the packet
 * filter), client records under `GANESHA_RECOVERY_ROOT`, then one EXPORT per
 * tree, sorted by path: `Access_Type = None` unless the client is the app
 * segment (`CLIENT`, RW), no root squash (see the comment in the file), VFS.
 * Throws `RenderInputError` for a tree outside `DATA_ROOT`, a path ganesha
 * cannot quote, a duplicate path or two trees whose ids collide.
 */
export function renderGaneshaConfig(model: SiteModel, hostName: string, trees: ReadonlyArray<ExportedTree>): string {
  const problems = new ProblemCollector(model.name, hostName);
  const app = model.segments.find((s) => s.name === "app");
  if (!app) problems.add("segments", "the site has no app segment: the exports admit only it");
  const byId = new Map<number, string>();
  const sorted = [...trees].sort((a, b) => a.path.localeCompare(b.path));
  sorted.forEach((tree, i) => {
    if (!tree.path.startsWith(`${DATA_ROOT}/`) || !/^(\/[A-Za-z0-9._-]+)+$/.test(tree.path))
      problems.add(
        `trees[${i}].path`,
        `${tree.path} must be an absolute path of letters, digits, dots, dashes and underscores below ${DATA_ROOT}`,
      );
    const id = exportId(tree.path);
    const other = byId.get(id);
    if (other === tree.path) problems.add(`trees[${i}].path`, `${tree.path} is exported twice`);
    else if (other !== undefined)
      problems.add(`trees[${i}].path`, `${tree.path} and ${other} get the same Export_Id ${id}: rename one tree`);
    byId.set(id, tree.path);
  });
  problems.throwIfAny();
  const lines = [
    // The same on both members: the exports follow the storage VIP.
    `# standort: NFS exports of the storage pair of ${model.name}, served by nfs-ganesha on the active member only.`,
    `# Rendered from ${model.file} and the footprint; do not edit.`,
    "NFS_CORE_PARAM {",
    "\t# NFSv4 only, TCP only: one port through the packet filter, no rpcbind, no lock manager or quota service.",
    "\tProtocols = 4;",
    `\tNFS_Port = ${NFS_PORT};`,
    "\tEnable_NLM = false;",
    "\tEnable_RQUOTA = false;",
    "\tEnable_UDP = false;",
    "}",
    "",
    "NFSV4 {",
    "\t# Client records on the replicated volume: the member that takes over knows who may reclaim state.",
    "\tRecoveryBackend = fs;",
    `\tRecoveryRoot = "${GANESHA_RECOVERY_ROOT}";`,
    `\tLease_Lifetime = ${NFS_LEASE_SECONDS};`,
    `\tGrace_Period = ${NFS_GRACE_SECONDS};`,
    "}",
    "",
    "EXPORT_DEFAULTS {",
    "\t# Nobody by default: each export admits the app segment in its CLIENT block.",
    "\tAccess_Type = None;",
    "\tProtocols = 4;",
    "\tTransports = TCP;",
    "\tSecType = sys;",
    "}",
  ];
  for (const tree of sorted) {
    lines.push(
      "",
      `# ${tree.what}`,
      "EXPORT {",
      `\tExport_Id = ${exportId(tree.path)};`,
      `\tPath = "${tree.path}";`,
      `\tPseudo = "${tree.path}";`,
      "\tAccess_Type = None;",
      "\t# No root squash: only the app segment is admitted, and its hosts are root over every container and its",
      "\t# data already; containers' entrypoints chown their volumes as root, which squashing would break.",
      "\tSquash = No_Root_Squash;",
      "\tCLIENT {",
      `\t\tClients = ${app!.cidr};`,
      "\t\tAccess_Type = RW;",
      "\t}",
      "\tFSAL {",
      "\t\tName = VFS;",
      "\t}",
      "}",
    );
  }
  lines.push("");
  return lines.join("\n");
}

/** Seconds the checker gives ganesha to read the file and start (it takes well under one here). */
export const GANESHA_CHECK_SECONDS = 10;

/**
 * The checker of a ganesha.conf (argv, `{file}` for the file): ganesha has no
 * configuration test, so it starts `ganesha.nfsd -F` on the file for at most
 * `GANESHA_CHECK_SECONDS` in throwaway namespaces (`unshare --mount --net`: no
 * address of the host, a tmpfs over `DATA_ROOT` with each export's path made
 * in it, so neither the state of the data volume nor the running server is
 * touched, and no system D-Bus) and fails on every problem ganesha logs about
 * the file (`config_errs_to_log`, `ganesha_yyerror`: unknown parameters,
 * syntax, a block that does not validate) and when it never finished starting
 * (a crash: ganesha 4.3 dies on an EXPORT without `Path`). Exit 0 clean, 1
 * with ganesha's lines on stderr.
 */
export function ganeshaCheckCommand(): string[] {
  const script = [
    "f=$1; d=$(mktemp -d) || exit 1; trap 'rm -rf \"$d\"' EXIT",
    "# Export paths must lie below the data root, which the check replaces by an empty tmpfs.",
    `paths=$(sed -n 's/^[[:space:]]*Path[[:space:]]*=[[:space:]]*"\\{0,1\\}\\([^";]*\\)"\\{0,1\\}[[:space:]]*;.*/\\1/p' "$f")`,
    'for p in $paths; do case "$p" in ' +
      DATA_ROOT +
      '/*) ;; *) echo "ganesha-check: export path $p is not below ' +
      DATA_ROOT +
      '" >&2; exit 1 ;; esac; done',
    'printf "%s\\n" $paths > "$d/paths"',
    "unshare --mount --net --propagation private sh -c '",
    `\tmount -t tmpfs ganesha-check ${DATA_ROOT} || exit 1`,
    "\t[ ! -d /run/dbus ] || mount -t tmpfs ganesha-check /run/dbus",
    '\twhile read -r p; do [ -z "$p" ] || mkdir -p "$p"; done < "$2/paths"',
    '\tganesha.nfsd -F -f "$1" -L "$2/log" -p "$2/pid" -N NIV_EVENT & pid=$!',
    "\ti=0",
    `\twhile [ $i -lt ${GANESHA_CHECK_SECONDS * 10} ] && kill -0 $pid 2>/dev/null && ! grep -q "NFS SERVER INITIALIZED" "$2/log" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done`,
    "\tkill $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0",
    '\' ganesha-check "$f" "$d" || exit 1',
    'bad=$(grep -E "config_errs_to_log|ganesha_yyerror|Config [Ff]ile \\(" "$d/log" | sed "s/^.*\\] //")',
    'if [ -n "$bad" ]; then printf "%s\\n" "$bad" >&2; exit 1; fi',
    'grep -q "NFS SERVER INITIALIZED" "$d/log" || { echo "ganesha-check: ganesha did not start on $f:" >&2; tail -n 5 "$d/log" >&2; exit 1; }',
  ].join("\n");
  return ["sh", "-c", script, "ganesha-check", FILE_PLACEHOLDER];
}
