/**
 * The guards that keep file replication from destroying the copy it protects,
 * as data and program text: the source guard every file copy runs through
 * (`replicate.sh`, installed as `REPLICATE_COMMAND`), the forced command that
 * receives every push (`replica-receive.sh`, installed as
 * `REPLICA_RECEIVE_COMMAND`), and the per-site facts they read (the role of the
 * site per service, the trees it replicates). The programs' own headers
 * describe their checks; this file fixes the names and limits they share with
 * the rendered units. Reads the two program texts once at load, like
 * `lib/deliver`'s apply.sh; otherwise pure.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { FileCopyJob } from "./jobs";

/** The source guard on the sending storage hosts; a file copy's unit runs rsync through it. */
export const REPLICATE_COMMAND = "/usr/local/sbin/standort-replicate";
/**
 * The forced command of the replication key on the receiving storage hosts
 * (`command=` in root's authorized_keys, rendered with the credentials).
 */
export const REPLICA_RECEIVE_COMMAND = "/usr/local/sbin/standort-replica-receive";

/** `lib/footprint/replicate.sh`: the source guard's text. */
export const REPLICATE_SCRIPT: string = readFileSync(join(__dirname, "replicate.sh"), "utf8");
/** `lib/footprint/replica-receive.sh`: the forced receive command's text. */
export const REPLICA_RECEIVE_SCRIPT: string = readFileSync(join(__dirname, "replica-receive.sh"), "utf8");

/**
 * A copy may delete at most this share (percent) of the standby's entries
 * (files, directories, links) in one run. A tree loses a tenth of its files
 * within one interval (at most 15 minutes) only when something broke.
 */
export const MAX_DELETE_PERCENT = 10;
/** ...but always up to this many entries, so small trees (a handful of DKIM keys) can still lose one. */
export const MAX_DELETE_FLOOR = 20;

/** Marker file at the root of every replicated tree: one line `<service>/<tree>`, written when the tree is created. */
export const TREE_MARKER = ".standort-tree";
/** Per service, this site's replication role: a file holding `primary` (it sends) or `standby` (it receives). */
export const REPLICATION_ROLES_DIR = "/etc/standort/replication/roles";
/** The trees this site replicates in either direction, one `<service> <tree> <path>` per line. */
export const REPLICATION_TREES_FILE = "/etc/standort/replication/trees";
/** Where both programs write their state for node_exporter's textfile collector (`<job key>.prom`, `receive-<service>-<tree>.prom`). */
export const REPLICATION_STATE_DIR = "/var/lib/standort/replication";
/** Folder beside a received tree that holds what pushes would have overwritten or deleted: `<parent>/.standort-kept-aside/<service>/<tree>/<UTC time>/`. */
export const KEPT_ASIDE_DIR = ".standort-kept-aside";

/** The role a site writes into its role file for a service. */
export type ReplicationRole = "primary" | "standby";

/** The marker's content for one tree. */
export function treeMarker(service: string, tree: string): string {
  return `${service}/${tree}\n`;
}

/**
 * The source guard's arguments for one copy, up to and including `--`; the
 * rsync command line follows unchanged; the guard always checks the site's
 * role file (every copy runs on the storage hosts). `lsyncd`: the guard
 * is lsyncd's rsync (`./lsyncd`): `--lsyncd` (a refusal asks lsyncd to retry,
 * a batch's path list on stdin reaches both runs) and `--active-flag` (it
 * ends lsyncd on a member that is no longer the active one).
 */
export function guardArguments(
  job: FileCopyJob,
  source: string,
  lsyncd?: { readonly lsyncd: true; readonly activeFlag: string },
): string[] {
  return [
    "--job",
    job.key,
    "--service",
    job.service,
    "--tree",
    job.tree,
    "--source",
    source,
    "--max-delete-percent",
    String(MAX_DELETE_PERCENT),
    "--max-delete-floor",
    String(MAX_DELETE_FLOOR),
    ...(lsyncd ? ["--lsyncd", "--active-flag", lsyncd.activeFlag] : []),
    "--",
  ];
}
