/**
 * Replication and backup as configuration. Per service and replication path:
 * a file copy per file tree (interval from the RPO) with its receiving end, a
 * continuous replication setting per database (both ends), and a backup per
 * store of the writing site plus one off-site copy at the standby site, all
 * with the writing site's retention. File copies run as systemd units and
 * timers on the storage hosts of every site, where the trees live (beside the
 * continuous copy, `./lsyncd`); backups the same on compose sites and as
 * CronJob manifests on Kubernetes sites; database replication as configuration
 * fragments. File copies run through the
 * source guard and land through the forced receive command
 * (`./replication-guard`). Pure: no Pulumi, no I/O (the guard programs' text
 * is read once when `./replication-guard` loads).
 */
import { ON_FAILURE_LINE, recordSuccessLine } from "../monitoring/job-record";
import { createHash } from "node:crypto";
import { cidr } from "../net/ipv4";
import { SiteModel } from "../model/model";
import { BACKUP_ROOT, CONTINUOUS_METHOD, DatabaseEngine, Footprint, FootprintService, LOCAL_BACKUP_ROOT, ServiceFileTree } from "./schema";
import { PathPurpose, ServicePlacement, placeAll, siteIndex } from "./placement";
import { tunnelName } from "./wireguard";
import { REPLICATE_COMMAND, guardArguments } from "./replication-guard";

export { REPLICA_RECEIVE_COMMAND } from "./replication-guard";

/** Files are copied at least this often, whatever a service or site says. */
export const MAX_FILE_INTERVAL_MINUTES = 15;
/** Daily backups are kept at least this many days. */
export const MIN_BACKUP_DAYS = 30;

/**
 * The longest interval a service's files may be copied at from `writer`:
 * min(15, the service's RPO, the site's replication interval).
 */
export function fileIntervalMinutes(service: FootprintService, writer: SiteModel): number {
  return Math.min(MAX_FILE_INTERVAL_MINUTES, service.recovery.rpoMinutes, writer.storage.replicationIntervalMinutes);
}

/** The interval a tree is copied at: its own setting, else the service's. */
export function treeIntervalMinutes(service: FootprintService, tree: ServiceFileTree, writer: SiteModel): number {
  return tree.intervalMinutes ?? fileIntervalMinutes(service, writer);
}

export type JobRunner = "systemd" | "kubernetes";

/**
 * What runs a job of `kind` at `site`. File copies and their receiving ends run
 * on the storage hosts at every site: the trees live there, the continuous copy
 * (lsyncd) needs inotify on the exporting host (a pod on an NFS client never
 * sees other clients' writes), and a CronJob could copy no more often than its
 * interval. Backups (and the database settings) follow the site's runtime:
 * CronJobs at Kubernetes sites, timers on the storage hosts elsewhere.
 */
export function jobRunner(site: SiteModel, kind: PlannedJob["kind"]): JobRunner {
  if (kind === "file-copy" || kind === "file-receive") return "systemd";
  return site.virtualization.runtime === "kubernetes" ? "kubernetes" : "systemd";
}

interface JobBase {
  /** Stable key: service, job kind and what makes it unique. Used in file and resource names. */
  readonly key: string;
  readonly service: string;
  /** The site that runs the job. */
  readonly site: string;
  readonly runner: JobRunner;
  /** The storage pair members that may run it (only the active one does); empty for database settings, which the service deployment applies. */
  readonly hosts: ReadonlyArray<string>;
}

export interface FileCopyJob extends JobBase {
  readonly kind: "file-copy";
  readonly purpose: PathPurpose;
  readonly tree: string;
  readonly path: string;
  readonly sizeGb: number;
  /** The local storage VIP that exports the tree. */
  readonly sourceAddress: string;
  readonly target: { readonly site: string; readonly address: string; readonly path: string };
  readonly intervalMinutes: number;
  readonly tunnel: string;
  /** The SSH key of this path in `REPLICATION_SSH_DIR` (`replicationKeyFile`): each path has its own. */
  readonly keyFile: string;
}

/**
 * The receiving end of a file copy, at the copy's site: nothing runs on a
 * schedule here, but the storage hosts must know the tree and that this site
 * is the service's standby, or the forced receive command refuses the push.
 */
export interface FileReceiveJob extends JobBase {
  readonly kind: "file-receive";
  readonly purpose: PathPurpose;
  readonly tree: string;
  readonly path: string;
  readonly source: { readonly site: string; readonly supernet: string };
  readonly tunnel: string;
}

export interface DatabaseReplicationJob extends JobBase {
  readonly kind: "database-replication";
  readonly purpose: PathPurpose;
  readonly database: string;
  readonly engine: DatabaseEngine;
  readonly method: "streaming" | "binlog";
  readonly side: "source" | "replica";
  readonly peer: { readonly site: string; readonly supernet: string; readonly endpoint: string; readonly serverId: number };
  readonly endpoint: string;
  readonly serverId: number;
  /** Replication slot (postgres) or connection name (mariadb), unique per path. */
  readonly slot: string;
  readonly tunnel: string;
}

export interface BackupJob extends JobBase {
  readonly kind: "backup";
  /** The local storage VIP that exports the trees. */
  readonly sourceAddress: string;
  /**
   * Where this copy of the backups is kept. `local`: one storage host of the
   * writing site (`host`), at its data-segment address. `offsite`: the standby
   * site's storage pair (`host` is the pair's name), at its storage VIP,
   * reached through the site-to-site tunnel.
   */
  readonly store: { readonly placement: "local" | "offsite"; readonly site: string; readonly host: string; readonly address: string };
  /** The restic repository path on the store: `/var/lib/standort/backup/<service>` (each member's own disk), off-site `/srv/backup/offsite/<writing site>/<service>` (the partner's replicated volume). */
  readonly repositoryPath: string;
  readonly trees: ReadonlyArray<{ readonly name: string; readonly path: string }>;
  readonly databases: ReadonlyArray<{ readonly name: string; readonly engine: DatabaseEngine; readonly endpoint: string }>;
  readonly retention: { readonly daily: number; readonly weekly: number; readonly monthly: number };
  /** Daily start time (UTC). */
  readonly at: { readonly hour: number; readonly minute: number };
}

export type PlannedJob = FileCopyJob | FileReceiveJob | DatabaseReplicationJob | BackupJob;
/** Jobs that run on a schedule (the database settings run continuously; a receiving end waits for pushes). */
export type PeriodicJob = FileCopyJob | BackupJob;

export function isPeriodic(job: PlannedJob): job is PeriodicJob {
  return job.kind === "file-copy" || job.kind === "backup";
}

/** Zone the service deployments register database endpoints in, per site. */
export const INTERNAL_ZONE = "standort.internal";

/** DNS name of a service's database at a site: `<db>.<service>.db.<code>.standort.internal`. */
export function databaseEndpoint(service: string, database: string, site: SiteModel): string {
  return `${database.replace(/_/g, "-")}.${service}.db.${site.code}.${INTERNAL_ZONE}`;
}

/**
 * Database server id of a site (mariadb `server_id`): its supernet's /20
 * block number. Supernets never overlap, so the ids never collide.
 */
export function databaseServerId(site: SiteModel): number {
  return cidr(site.supernet).network >>> 12;
}

/** The storage pair's service address (data segment): what NFS clients, replication and backups reach. */
export function storageVip(site: SiteModel): string {
  return site.pairs.find((p) => p.role === "storage")?.vips[0]?.address ?? "";
}

function storagePair(site: SiteModel) {
  return site.pairs.find((p) => p.role === "storage");
}

function dataAddress(site: SiteModel, host: string): string {
  return site.hosts.find((h) => h.name === host)?.interfaces.find((i) => i.segment === "data")?.address ?? "";
}

/** FNV-1a: a stable small hash for spreading start times and shortening names. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * The file name of a replication path's SSH private key on the source: `id_ed25519` for its own partner
 * (the site that stands by for it), `id_ed25519-<target>` for any other target (a migration, or a site it
 * stands by for: see `partnersOf`). Each path has its own key, so a target authorises exactly the source
 * that copies to it, however many partners a site has.
 */
export function replicationKeyFile(source: SiteModel, target: string): string {
  return target === source.partner ? "id_ed25519" : `id_ed25519-${target}`;
}

/** Plans the jobs of one placed service. Paths to unknown sites are skipped (the reference check names them). */
export function planServiceJobs(placement: ServicePlacement, sites: ReadonlyMap<string, SiteModel>): PlannedJob[] {
  const { service } = placement;
  const jobs: PlannedJob[] = [];
  for (const path of placement.paths) {
    const from = sites.get(path.from);
    const to = sites.get(path.to);
    if (!from || !to) continue;
    const tunnel = tunnelName(from, to);
    const fromHosts = storagePair(from)?.members ?? [];
    for (const tree of service.data.files) {
      jobs.push({
        kind: "file-receive",
        key: `${service.name}-files-${tree.name}-from-${from.name}`,
        service: service.name,
        site: to.name,
        runner: jobRunner(to, "file-receive"),
        hosts: storagePair(to)?.members ?? [],
        purpose: path.purpose,
        tree: tree.name,
        path: tree.path,
        source: { site: from.name, supernet: from.supernet },
        tunnel,
      });
      jobs.push({
        kind: "file-copy",
        key: `${service.name}-files-${tree.name}-to-${to.name}`,
        service: service.name,
        site: from.name,
        runner: jobRunner(from, "file-copy"),
        hosts: fromHosts,
        purpose: path.purpose,
        tree: tree.name,
        path: tree.path,
        sizeGb: tree.sizeGb,
        sourceAddress: storageVip(from),
        target: { site: to.name, address: storageVip(to), path: tree.path },
        intervalMinutes: treeIntervalMinutes(service, tree, from),
        tunnel,
        keyFile: replicationKeyFile(from, to.name),
      });
    }
    for (const db of service.data.databases) {
      const method = db.replication ?? CONTINUOUS_METHOD[db.engine];
      // A periodic dump is not replication: the RPO policy rejects it, and no job is planned for it.
      if (method === "dump") continue;
      const slot = `${service.name}_${db.name}_${to.name}`.replace(/-/g, "_");
      const end = (site: SiteModel) => ({
        site: site.name,
        supernet: site.supernet,
        endpoint: databaseEndpoint(service.name, db.name, site),
        serverId: databaseServerId(site),
      });
      const common = { service: service.name, purpose: path.purpose, database: db.name, engine: db.engine, method, slot, tunnel } as const;
      jobs.push({
        kind: "database-replication",
        ...common,
        key: `${service.name}-db-${db.name}-to-${to.name}`,
        site: from.name,
        runner: jobRunner(from, "database-replication"),
        hosts: [],
        side: "source",
        peer: end(to),
        endpoint: end(from).endpoint,
        serverId: databaseServerId(from),
      });
      jobs.push({
        kind: "database-replication",
        ...common,
        key: `${service.name}-db-${db.name}-from-${from.name}`,
        site: to.name,
        runner: jobRunner(to, "database-replication"),
        hosts: [],
        side: "replica",
        peer: end(from),
        endpoint: end(to).endpoint,
        serverId: databaseServerId(to),
      });
    }
  }

  const writer = sites.get(placement.writer);
  const pair = writer ? storagePair(writer) : undefined;
  if (writer && pair) {
    // One backup per store, each into its own repository: two independent
    // copies. The stores start two hours apart so one run never blocks both.
    // A third copy leaves the site: the standby site's storage pair keeps it,
    // in a repository named after the writing site, so two sites backing up
    // into each other never share one. It starts two hours after the second.
    const minute = fnv1a(service.name) % 60;
    const backup = (i: number, store: BackupJob["store"], repositoryPath: string, key: string): BackupJob => ({
      kind: "backup",
      key,
      service: service.name,
      site: writer.name,
      runner: jobRunner(writer, "backup"),
      hosts: pair.members,
      sourceAddress: storageVip(writer),
      store,
      repositoryPath,
      trees: service.data.files.map((t) => ({ name: t.name, path: t.path })),
      databases: service.data.databases.map((d) => ({
        name: d.name,
        engine: d.engine,
        endpoint: databaseEndpoint(service.name, d.name, writer),
      })),
      retention: { ...writer.storage.backups },
      at: { hour: 1 + 2 * i, minute },
    });
    pair.members.forEach((host, i) => {
      const store = { placement: "local", site: writer.name, host, address: dataAddress(writer, host) } as const;
      jobs.push(backup(i, store, `${LOCAL_BACKUP_ROOT}/${service.name}`, `${service.name}-backup-${host}`));
    });
    const standby = placement.paths.find((p) => p.from === writer.name && p.purpose === "standby");
    const partner = standby ? sites.get(standby.to) : undefined;
    const partnerPair = partner ? storagePair(partner) : undefined;
    if (partner && partnerPair) {
      const store = { placement: "offsite", site: partner.name, host: partnerPair.name, address: storageVip(partner) } as const;
      const repository = `${BACKUP_ROOT}/offsite/${writer.name}/${service.name}`;
      jobs.push(backup(pair.members.length, store, repository, `${service.name}-backup-offsite-${partner.name}`));
    }
  }
  return jobs;
}

function byKey(a: PlannedJob, b: PlannedJob): number {
  return a.site.localeCompare(b.site) || a.key.localeCompare(b.key);
}

/** Every job of the footprint, sorted by the site that runs it, then key. */
export function planJobs(footprint: Footprint, sites: ReadonlyArray<SiteModel>): PlannedJob[] {
  const index = siteIndex(sites);
  return placeAll(footprint, sites)
    .flatMap((p) => planServiceJobs(p, index))
    .sort(byKey);
}

/** The jobs one site runs, sorted by key. */
export function siteJobs(footprint: Footprint, sites: ReadonlyArray<SiteModel>, siteName: string): PlannedJob[] {
  return planJobs(footprint, sites).filter((j) => j.site === siteName);
}

/** Cron schedule (UTC) of a periodic job. `*\/n` never leaves a gap longer than n minutes, also across the hour. */
export function cronSchedule(job: PeriodicJob): string {
  return job.kind === "file-copy" ? `*/${job.intervalMinutes} * * * *` : `${job.at.minute} ${job.at.hour} * * *`;
}

/** systemd `OnCalendar=` of a periodic job: the same wall-clock times as the cron schedule. */
export function systemdCalendar(job: PeriodicJob): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return job.kind === "file-copy" ? `*-*-* *:00/${pad(job.intervalMinutes)}:00` : `*-*-* ${pad(job.at.hour)}:${pad(job.at.minute)}:00`;
}

export interface RenderedFile {
  readonly path: string;
  readonly content: string;
}

/** Where the replication SSH key and known hosts live on a storage host (delivered as secrets, never rendered). */
export const REPLICATION_SSH_DIR = "/etc/standort/replication";
/** Where backup repository passwords and database client settings live (delivered as secrets). */
export const BACKUP_SECRETS_DIR = "/etc/standort/backup";
/** keepalived creates this file on the active storage member: only it holds writable data. */
export const STORAGE_ACTIVE_FLAG = "/run/standort/storage-active";

const HEADER = "# Generated by standort from sites/footprint.yaml and the site files: do not edit.";

/**
 * The rsync command line of one copy (rsync(1)). `--delay-updates` keeps the
 * standby's tree whole until the end of a run (its default partial dir
 * `.~tmp~` per folder); an explicit `--partial-dir` would be turned into a
 * folder outside the tree by rrsync at the receiver, where rsync cannot
 * create it ("Unable to create partial-dir ... discarding completed file").
 * The source guard adds `--dry-run --stats` (its count) and `--max-delete`
 * (its limit); the receiver adds `--backup --backup-dir` (kept aside). The
 * continuous copy (`./lsyncd`) passes the same flags through lsyncd's options.
 */
export function rsyncArguments(job: FileCopyJob, sshDir: string, source: string): string[] {
  return [
    "--archive",
    "--hard-links",
    "--acls",
    "--xattrs",
    "--numeric-ids",
    "--delete",
    "--delay-updates",
    "--timeout=300",
    `--rsh=ssh -i ${sshDir}/${job.keyFile} -o UserKnownHostsFile=${sshDir}/known_hosts -o BatchMode=yes -o StrictHostKeyChecking=yes`,
    `${source}/`,
    `root@${job.target.address}:${job.target.path}/`,
  ];
}

function dumpPath(job: BackupJob, database: string, root: string): string {
  return `${root}/${job.service}/${database}.dump`;
}

function dumpCommand(db: BackupJob["databases"][number], file: string, settingsDir: string): string[] {
  // Connection details and passwords come from client settings files, never the command line.
  return db.engine === "postgres"
    ? ["pg_dump", "--format=custom", `--file=${file}`, `--dbname=service=${db.endpoint}`]
    : [
        "mariadb-dump",
        `--defaults-extra-file=${settingsDir}/${db.name}.cnf`,
        "--single-transaction",
        "--routines",
        "--events",
        `--result-file=${file}`,
        db.name,
      ];
}

function resticRepository(job: BackupJob): string {
  return `sftp:restic@${job.store.address}:${job.repositoryPath}`;
}

function forgetArguments(job: BackupJob): string[] {
  return [
    "forget",
    "--tag",
    job.service,
    "--keep-daily",
    String(job.retention.daily),
    "--keep-weekly",
    String(job.retention.weekly),
    "--keep-monthly",
    String(job.retention.monthly),
    "--prune",
  ];
}

/** Quotes a systemd ExecStart argument when it holds spaces. */
function systemdArg(arg: string): string {
  return /[\s"]/.test(arg) ? `"${arg.replace(/(["\\])/g, "\\$1")}"` : arg;
}

function execLine(directive: string, args: ReadonlyArray<string>): string {
  const [command, ...rest] = args;
  const absolute = command.startsWith("/") ? command : `/usr/bin/${command}`;
  return `${directive}=${[absolute, ...rest].map(systemdArg).join(" ")}`;
}

/** The systemd service and timer of one periodic job, for the storage hosts. */
export function renderSystemdUnits(job: PeriodicJob): RenderedFile[] {
  const unit = `standort-${job.key}`;
  const dir = "/etc/systemd/system";
  let description: string;
  let service: string[];
  if (job.kind === "file-copy") {
    description = `standort: copy ${job.service}/${job.tree} to ${job.target.site} every ${job.intervalMinutes} min`;
    service = [
      "[Service]",
      "Type=oneshot",
      // Root on both ends: owners, ACLs and xattrs must survive for the standby to take over.
      // Copies must not starve the services reading the same disks.
      "Nice=10",
      "IOSchedulingClass=idle",
      // The guard's state file for the textfile collector (/var/lib/standort/replication).
      "StateDirectory=standort/replication",
      // rsync runs unchanged, behind the source guard: a missing, empty or foreign source, a site that is
      // not the primary, or a run deleting too much stops here, and the standby keeps its data.
      execLine("ExecStart", [
        REPLICATE_COMMAND,
        ...guardArguments(job, job.path),
        "/usr/bin/rsync",
        ...rsyncArguments(job, REPLICATION_SSH_DIR, job.path),
      ]),
    ];
  } else {
    description = `standort: back up ${job.service} into ${job.store.placement === "offsite" ? `${job.store.host} at ${job.store.site}` : job.store.host}`;
    const dumps = `/var/lib/standort/dumps`;
    service = [
      "[Service]",
      "Type=oneshot",
      `Environment=RESTIC_REPOSITORY=${resticRepository(job)}`,
      // One password per repository (service and store), so each copy stands alone (named as ./credentials delivers it).
      `Environment=RESTIC_PASSWORD_FILE=${BACKUP_SECRETS_DIR}/${job.service}.${job.store.host}.password`,
      `Environment=PGSERVICEFILE=${BACKUP_SECRETS_DIR}/pg_service.conf`,
      `Environment=PGPASSFILE=${BACKUP_SECRETS_DIR}/pgpass`,
      execLine("ExecStartPre", ["install", "-d", "-m", "0700", `${dumps}/${job.service}`]),
      // The repository is created on the first run: `restic init` fails once it exists, which the `-` lets pass
      // (a repository that is really unusable fails the backup itself, visibly).
      execLine("ExecStartPre", ["restic", "init"]).replace("ExecStartPre=", "ExecStartPre=-"),
      ...job.databases.map((db) => execLine("ExecStartPre", dumpCommand(db, dumpPath(job, db.name, dumps), BACKUP_SECRETS_DIR))),
      execLine("ExecStart", [
        "restic",
        "backup",
        "--tag",
        "standort",
        "--tag",
        job.service,
        ...job.trees.map((t) => t.path),
        `${dumps}/${job.service}`,
      ]),
      execLine("ExecStartPost", ["restic", ...forgetArguments(job)]),
    ];
  }
  const serviceFile = [
    HEADER,
    `# ${job.key}: runs on the active member of ${job.hosts.join(", ")} at ${job.site}.`,
    "[Unit]",
    `Description=${description}`,
    "Wants=network-online.target",
    "After=network-online.target",
    `ConditionPathExists=${STORAGE_ACTIVE_FLAG}`,
    // No silent failure: a failed run is recorded where the monitoring reads it (lib/monitoring/job-record.ts).
    ON_FAILURE_LINE,
    "",
    ...service,
    // Last: runs only when everything before it succeeded, and records the success for the freshness alerts.
    recordSuccessLine(`${unit}.service`),
    "",
  ].join("\n");
  const timerFile = [
    HEADER,
    "[Unit]",
    `Description=${description}`,
    "",
    "[Timer]",
    `OnCalendar=${systemdCalendar(job)}`,
    // Without this systemd may delay a start by up to a minute, eating into the RPO.
    "AccuracySec=10s",
    ...(job.kind === "backup" ? ["Persistent=true"] : []),
    `Unit=${unit}.service`,
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
  return [
    { path: `${dir}/${unit}.service`, content: serviceFile },
    { path: `${dir}/${unit}.timer`, content: timerFile },
  ];
}

/** Every systemd unit a site's storage hosts need, sorted by path. */
export function renderSiteSystemdUnits(jobs: ReadonlyArray<PlannedJob>): RenderedFile[] {
  return jobs
    .filter(isPeriodic)
    .filter((j) => j.runner === "systemd")
    .flatMap(renderSystemdUnits)
    .sort((a, b) => a.path.localeCompare(b.path));
}

/** Container images the backup CronJobs run; pin them by digest in the stack configuration. */
export interface JobImages {
  readonly restic: string;
  readonly postgres: string;
  readonly mariadb: string;
}

export const DEFAULT_JOB_IMAGES: JobImages = {
  restic: "docker.io/restic/restic:0.17.3",
  postgres: "docker.io/library/postgres:16-alpine",
  mariadb: "docker.io/library/mariadb:11.4",
};

/** Kubernetes secrets the backup CronJobs mount: referenced by name, created by the stack from its secrets. */
export const JOB_SECRETS = {
  backup: (service: string) => `standort-backup-${service}`,
} as const;

/** A DNS-1123 name of at most 52 characters (a CronJob's limit): long keys are cut and get a stable hash. */
export function kubernetesName(key: string): string {
  if (key.length <= 52) return key;
  const hash = createHash("sha256").update(key).digest("hex").slice(0, 8);
  return `${key.slice(0, 43).replace(/-+$/, "")}-${hash}`;
}

/** A plain CronJob manifest (metadata and spec) for one backup of a Kubernetes site. */
export interface CronJobManifest {
  readonly metadata: { readonly name: string; readonly namespace: string; readonly labels: Readonly<Record<string, string>> };
  readonly spec: Record<string, unknown>;
}

/**
 * The CronJob of one backup of a Kubernetes site: same schedule as its timer
 * would have, never two runs at once. File copies never run as CronJobs
 * (`jobRunner`): they run on the storage hosts at every site.
 */
export function cronJobManifest(job: BackupJob, namespace: string, images: JobImages = DEFAULT_JOB_IMAGES): CronJobManifest {
  const labels = {
    "app.kubernetes.io/managed-by": "standort",
    "standort/service": job.service,
    "standort/job-kind": job.kind,
  };
  const dumps = "/dumps";
  const secrets = "/etc/standort/backup";
  const mounts = [
    { name: "dumps", mountPath: dumps },
    { name: "secrets", mountPath: secrets, readOnly: true },
  ];
  const env = [
    { name: "RESTIC_REPOSITORY", value: resticRepository(job) },
    { name: "RESTIC_PASSWORD_FILE", value: `${secrets}/restic.${job.store.host}.password` },
  ];
  const podSpec: Record<string, unknown> = {
    restartPolicy: "Never",
    initContainers: [
      ...job.databases.map((db) => ({
        name: `dump-${db.name.replace(/_/g, "-")}`,
        image: db.engine === "postgres" ? images.postgres : images.mariadb,
        command: dumpCommand(db, `${dumps}/${db.name}.dump`, secrets),
        env: [
          { name: "PGSERVICEFILE", value: `${secrets}/pg_service.conf` },
          { name: "PGPASSFILE", value: `${secrets}/pgpass` },
        ],
        volumeMounts: mounts,
      })),
      {
        // The repository is created on the first run; a later run finds it (restic cat config) and goes on.
        name: "init",
        image: images.restic,
        command: ["sh", "-c", "restic cat config >/dev/null 2>&1 || restic init"],
        env,
        volumeMounts: mounts,
      },
      {
        name: "backup",
        image: images.restic,
        command: ["restic", "backup", "--tag", "standort", "--tag", job.service, ...job.trees.map((t) => `/data/${t.name}`), dumps],
        env,
        volumeMounts: [...mounts, ...job.trees.map((t) => ({ name: `tree-${t.name}`, mountPath: `/data/${t.name}`, readOnly: true }))],
      },
    ],
    containers: [{ name: "forget", image: images.restic, command: ["restic", ...forgetArguments(job)], env, volumeMounts: mounts }],
    volumes: [
      { name: "dumps", emptyDir: {} },
      { name: "secrets", secret: { secretName: JOB_SECRETS.backup(job.service), defaultMode: 0o400 } },
      ...job.trees.map((t) => ({ name: `tree-${t.name}`, nfs: { server: job.sourceAddress, path: t.path, readOnly: true } })),
    ],
  };
  return {
    metadata: { name: kubernetesName(job.key), namespace, labels },
    spec: {
      schedule: cronSchedule(job),
      timeZone: "Etc/UTC",
      concurrencyPolicy: "Forbid",
      // A run that cannot start within a minute waits for the next slot instead of piling up.
      startingDeadlineSeconds: 60,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 3,
      jobTemplate: { metadata: { labels }, spec: { backoffLimit: 0, template: { metadata: { labels }, spec: podSpec } } },
    },
  };
}
