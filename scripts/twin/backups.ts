/**
 * Backups in the pair twin, with the rendered units run unchanged: for a
 * service written at one of the two sites, each of its backup units (one per
 * local store, one into the partner site's store through the tunnel) dumps
 * the service's databases as the read-only dump user over verified TLS and
 * stores the trees and dumps with restic over sftp as `restic@<store>`.
 *
 * What the twin does that the host bootstrap and the service deployment
 * would: the `restic` user and `/var/lib/standort/backup` on the storage hosts, the dump
 * user created at the primary (the rendered `.backup.sql`, and `.backup.hba`
 * for PostgreSQL), and the database endpoint names on the storage hosts.
 */
import { LOCAL_BACKUP_ROOT } from "../../lib/footprint/schema";
import { loadFootprint } from "../../lib/footprint/load";
import { BackupJob, planJobs } from "../../lib/footprint/jobs";
import type { PairTwin } from "./pair";
import type { PairDatabases } from "./databases";
import { activeStorage, must, runServiceUnit } from "./files";
import { readServiceUnit } from "../../lib/twin/systemd-unit";

export interface BackupEntry {
  readonly job: string;
  readonly placement: "local" | "offsite";
  /** The store: a storage host of the writing site, or the partner's storage pair. */
  readonly store: string;
  readonly repository: string;
  /** The unit ran and exited 0. */
  readonly ran: boolean;
  /** Snapshots in the repository after the run (restic snapshots). */
  readonly snapshots: number;
  /** Files of the latest snapshot, and whether it holds every tree's seeded files and every database's dump. */
  readonly files: number;
  readonly treesIncluded: boolean;
  readonly dumpsIncluded: boolean;
  readonly output: string;
}

/** The backup jobs of the first service written at a site of the pair that runs its jobs under systemd. */
export function pairBackupJobs(pair: PairTwin, running: ReadonlySet<string>, sitesDir?: string): BackupJob[] {
  const { sites, footprint } = loadFootprint(sitesDir);
  const names = new Set([pair.a.model.name, pair.b.model.name]);
  // A service whose databases run in this pair (their endpoints are up), so its dumps have a server to read.
  const jobs = planJobs(footprint, sites).filter(
    (j): j is BackupJob =>
      j.kind === "backup" &&
      j.runner === "systemd" &&
      names.has(j.site) &&
      names.has(j.store.site) &&
      j.databases.every((d) => running.has(d.endpoint)),
  );
  const first = jobs[0]?.service;
  return jobs.filter((j) => j.service === first);
}

/** Runs every backup unit of one service and reads what each repository holds afterwards. */
export async function backups(
  pair: PairTwin,
  databases: PairDatabases,
  log: (line: string) => void = () => undefined,
  sitesDir?: string,
): Promise<BackupEntry[]> {
  const running = new Set(databases.instances.filter((i) => i.role === "primary").map((i) => i.endpoint));
  const jobs = pairBackupJobs(pair, running, sitesDir);
  if (jobs.length === 0) return [];
  const writer = pair.twin(jobs[0].site);
  // The storage hosts' bootstrap: the sftp-only restic user owning the repositories' folder.
  for (const twin of [pair.a, pair.b]) {
    for (const h of twin.model.hosts.filter((x) => x.role === "storage" && twin.isUp(x.name))) {
      await must(
        twin,
        h.name,
        [
          // No password (`*`), not a locked one (`!`): sshd refuses every login of a locked account without PAM.
          `id restic >/dev/null 2>&1 || useradd --system --home-dir ${LOCAL_BACKUP_ROOT} --shell /usr/sbin/nologin --password '*' restic`,
          `install -d -o restic -g restic -m 0700 ${LOCAL_BACKUP_ROOT}`,
          ...jobs
            .filter((j) => j.store.site === twin.model.name)
            .map((j) => `install -d -o restic -g restic -m 0700 ${j.repositoryPath.replace(/\/[^/]+$/, "")}`),
        ].join("\n"),
      );
    }
  }
  // The dump user at the primary of each database, and the endpoint names on the writer's storage hosts.
  await databases.createDumpUsers(jobs[0].service);
  const hosts = databases.instances.map((i) => `${i.address} ${i.endpoint}`).join("\n");
  for (const h of writer.model.hosts.filter((x) => x.role === "storage" && writer.isUp(x.name)))
    await must(writer, h.name, `grep -q standort.internal /etc/hosts || cat >> /etc/hosts <<'EOF'\n${hosts}\nEOF`);

  const from = await activeStorage(writer);
  const entries: BackupEntry[] = [];
  for (const job of jobs) {
    const unit = `standort-${job.key}.service`;
    const run = await runServiceUnit(writer, from, unit, 300_000);
    const u = readServiceUnit(await writer.machine(from).run(["cat", `/etc/systemd/system/${unit}`]));
    const env = Object.entries(u.environment).map(([k, v]) => `${k}=${v}`);
    const list = await writer.machine(from).exec(["env", ...env, "restic", "ls", "--json", "latest"], { timeoutMs: 120_000 });
    const snaps = await writer.machine(from).exec(["env", ...env, "restic", "snapshots", "--json"], { timeoutMs: 120_000 });
    const paths = list.stdout
      .split("\n")
      .filter((l) => l.includes('"type":"file"'))
      .map((l) => (JSON.parse(l) as { path: string }).path);
    const entry: BackupEntry = {
      job: job.key,
      placement: job.store.placement,
      store: job.store.host,
      repository: u.environment.RESTIC_REPOSITORY ?? "",
      ran: run.ran && run.code === 0,
      snapshots: snaps.code === 0 ? (JSON.parse(snaps.stdout || "[]") as unknown[]).length : 0,
      files: paths.length,
      treesIncluded: job.trees.every((t) => paths.some((p) => p.startsWith(`${t.path}/`))),
      dumpsIncluded: job.databases.every((d) => paths.some((p) => p.endsWith(`/${job.service}/${d.name}.dump`))),
      output: run.output.trim().split("\n").slice(-3).join(" | "),
    };
    entries.push(entry);
    log(
      `backup ${job.key} (${job.store.placement}, ${entry.repository}): ${entry.ran ? "ran" : "FAILED"}, ${entry.snapshots} snapshot(s), ${entry.files} files, trees ${entry.treesIncluded ? "in" : "MISSING"}, dumps ${entry.dumpsIncluded ? "in" : "MISSING"}${entry.ran ? "" : `: ${entry.output}`}`,
    );
  }
  return entries;
}
