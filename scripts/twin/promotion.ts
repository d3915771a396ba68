/**
 * Promotion and return in the pair twin, with writes on both sides:
 *
 * 1. The primary site is cut off (its end of the tunnel stopped) and keeps
 *    writing: files that never reach the standby.
 * 2. The standby is promoted by the footprint edit an operator makes
 *    (`mode: promoted`): the new files are rendered and delivered to the
 *    promoted site's storage hosts; its database stops replicating and
 *    takes writes. The new primary writes.
 * 3. The old primary comes back with its old configuration: its stale copy
 *    runs (as its timer would) and must be refused by the new primary.
 * 4. The old primary gets its new configuration (it is the standby now), and
 *    the new primary's copy runs: the old primary's writes that never
 *    replicated must be kept aside, counted, and none lost.
 *
 * Every job is the rendered unit run unchanged (`files.ts`).
 */
import type { Footprint } from "../../lib/footprint/schema";
import type { FileCopyJob } from "../../lib/footprint/jobs";
import { KEPT_ASIDE_DIR } from "../../lib/footprint/replication-guard";
import type { PairTwin } from "./pair";
import type { SiteTwin } from "./site";
import { PairFiles, activeStorage, must, runServiceUnit } from "./files";
import type { PairDatabases } from "./databases";

export interface PromotionEntry {
  readonly service: string;
  readonly tree: string;
  /** The old primary and the promoted standby. */
  readonly from: string;
  readonly to: string;
  /** The old primary's stale copy, run after its return, was refused by the new primary. */
  readonly staleRefused: boolean;
  /** The new primary's tree was unchanged by the old primary's return. */
  readonly newPrimaryKept: boolean;
  /** Writes made at the new primary after the promotion, and how many the old primary holds after the copy. */
  readonly newWrites: number;
  readonly newWritesCopied: number;
  /** The old primary's writes that never replicated, and how many of them were kept aside (not in the tree any more). */
  readonly unreplicatedWrites: number;
  readonly keptAside: number;
  /** Unreplicated writes found neither in the tree nor kept aside (files), or nowhere (databases). */
  readonly lost: number;
  /** The service's databases, promoted at the new primary (`pg_promote`, MariaDB's connection reset). */
  readonly databases: ReadonlyArray<DatabasePromotion>;
}

/** One database through the promotion and the old primary's return. */
export interface DatabasePromotion {
  readonly database: string;
  readonly engine: "postgres" | "mariadb";
  /** The new primary took its writes after the promotion and holds none of the old primary's later rows. */
  readonly newPrimaryKept: boolean;
  readonly newWrites: number;
  /** Rows the old primary took while cut off: they stay in its database (not discarded), reported here. */
  readonly unreplicatedWrites: number;
  readonly keptInPlace: number;
  readonly lost: number;
}

/** sha256 of every regular file under `dir` (relative path → digest), recursively. */
async function digests(twin: SiteTwin, host: string, dir: string): Promise<Map<string, string>> {
  const out = await must(twin, host, `[ -d ${dir} ] || exit 0\ncd ${dir} && find . -type f -exec sha256sum {} + | LC_ALL=C sort -k2`);
  return new Map(
    out
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => {
        const [digest, path] = l.split(/\s+/);
        return [path.replace(/^\.\//, ""), digest] as const;
      }),
  );
}

/** The footprint with one service promoted (its standby takes writes), as the operator's edit says. */
function promoted(footprint: Footprint, service: string): Footprint {
  return { ...footprint, services: footprint.services.map((s) => (s.name === service ? { ...s, mode: "promoted" as const } : s)) };
}

/** Delivers the storage hosts' files of `twin` rendered for `footprint`; the paths changed per host. */
async function deliverStorage(twin: SiteTwin, footprint: Footprint): Promise<string[]> {
  const changed: string[] = [];
  for (const { host, files } of twin.renderFor(footprint)) {
    if (twin.model.hosts.find((h) => h.name === host)?.role !== "storage" || !twin.isUp(host)) continue;
    changed.push(...(await twin.deliver(host, files)).map((p) => `${host}:${p}`));
  }
  return changed;
}

/**
 * Promotes the service of the pair's first file copy and brings its old
 * primary back, with writes on both sides; files must be prepared (`PairFiles.prepare`).
 */
export async function promotion(
  pair: PairTwin,
  files: PairFiles,
  log: (line: string) => void = () => undefined,
  databases?: PairDatabases,
): Promise<PromotionEntry | undefined> {
  // A service in the middle of a migration moves by its steps, not by a promotion (the plan refuses that edit).
  const migrating = new Set(pair.a.bootedFootprint.services.filter((x) => x.migration !== undefined).map((x) => x.name));
  const job: FileCopyJob | undefined = files.jobs.find((j) => !migrating.has(j.service));
  // Kubernetes sites copy files with CronJobs: without a cluster in the twin (the platform issue) there is no copy to promote.
  if (!job) return undefined;
  const old = pair.twin(job.site);
  const next = pair.twin(job.target.site);
  const tunnel = pair.tunnel.plan.name;
  const oldFw = old.model.hosts.filter((h) => h.role === "firewall").map((h) => h.name);
  const oldStorage = await activeStorage(old);
  const nextStorage = await activeStorage(next);

  // 1. The primary is cut off and keeps writing: 3 new files and one changed, never replicated.
  for (const fw of oldFw) if (old.isUp(fw)) await old.machine(fw).exec(["systemctl", "stop", `wg-quick@${tunnel}`]);
  const oldWrites = ["unreplicated-0", "unreplicated-1", "unreplicated-2", "seed-40"];
  await must(old, oldStorage, oldWrites.map((f) => `head -c 3000 /dev/urandom > ${job.path}/${f}`).join("\n"));
  const oldOnly = new Map([...(await digests(old, oldStorage, job.path))].filter(([p]) => oldWrites.includes(p)));
  // The service's databases: the old primary takes rows that never replicate, too.
  const dbs = (databases?.instances ?? [])
    .filter((i) => i.service === job.service && i.role === "primary" && i.site === old.model.name)
    .map((primary) => ({
      primary,
      standby: databases!.instances.find((x) => x.role === "standby" && x.jobs.some((j) => j.slot === primary.jobs[0].slot))!,
    }))
    .filter((d) => d.standby !== undefined);
  for (const { primary } of dbs) for (let n = 0; n < 3; n++) await databases!.write(primary, `unreplicated-db-${n}`);
  log(`promotion ${job.service}: ${old.model.name} cut off (${tunnel} stopped); ${oldOnly.size} writes there never replicate`);

  // 2. The footprint edit: the standby is promoted; its storage hosts get their new files; it writes.
  const edited = promoted(next.bootedFootprint, job.service);
  const changedNext = await deliverStorage(next, edited);
  log(`promotion ${job.service}: ${next.model.name} promoted, ${changedNext.length} files delivered to its storage hosts`);
  const newWrites = ["after-promotion-0", "after-promotion-1", "after-promotion-2", "after-promotion-3", "after-promotion-4"];
  await must(next, nextStorage, newWrites.map((f) => `head -c 3000 /dev/urandom > ${job.target.path}/${f}`).join("\n"));
  const nextBefore = await digests(next, nextStorage, job.target.path);
  for (const { standby } of dbs) {
    await databases!.promote(standby);
    for (let n = 0; n < 5; n++) await databases!.write(standby, `after-promotion-db-${n}`);
  }

  // 3. The old primary returns with its old configuration; its timer fires.
  for (const fw of oldFw) if (old.isUp(fw)) await old.machine(fw).exec(["systemctl", "start", `wg-quick@${tunnel}`]);
  const stale = await runServiceUnit(old, oldStorage, `standort-${job.key}.service`);
  const nextAfter = await digests(next, nextStorage, job.target.path);
  const newPrimaryKept = nextAfter.size === nextBefore.size && [...nextBefore].every(([p, d]) => nextAfter.get(p) === d);
  log(
    `promotion ${job.service}: ${old.model.name} back with its old files; its stale copy ${stale.code !== 0 ? "refused" : "RAN"} (${stale.output.trim().split("\n").pop()}), the new primary ${newPrimaryKept ? "unchanged" : "CHANGED"}`,
  );

  // Nothing flows from the returned old primary into a promoted database: a standby pulls, and this one no longer does.
  await new Promise((r) => setTimeout(r, 3_000));
  const dbResults: DatabasePromotion[] = [];
  for (const { primary, standby } of dbs) {
    const atNext = await databases!.markers(standby, "");
    const atOld = await databases!.markers(primary, "unreplicated-db-");
    const mine = atNext.filter((m) => m.startsWith("after-promotion-db-")).length;
    const theirs = atNext.filter((m) => m.startsWith("unreplicated-db-")).length;
    dbResults.push({
      database: primary.database,
      engine: primary.engine,
      newPrimaryKept: mine === 5 && theirs === 0,
      newWrites: mine,
      unreplicatedWrites: 3,
      keptInPlace: atOld.length,
      lost: 3 - atOld.length,
    });
    log(
      `promotion ${job.service}: ${primary.engine} ${primary.database}: the new primary holds its ${mine}/5 writes and ${theirs} of the old primary's; the old primary keeps its ${atOld.length}/3 unreplicated rows in place`,
    );
  }

  // 4. The old primary gets its new files (standby now); the new primary's copy runs.
  const changedOld = await deliverStorage(old, edited);
  const reverse = files.jobs.length > 0 ? `standort-${job.service}-files-${job.tree}-to-${old.model.name}.service` : "";
  const copy = await runServiceUnit(next, nextStorage, reverse);
  if (!copy.ran || copy.code !== 0)
    throw new Error(`${nextStorage}: ${reverse} failed (exit ${copy.code}): ${copy.output.trim().slice(-600)}`);
  const tree = await digests(old, oldStorage, job.path);
  const parent = job.path.replace(/\/[^/]+\/?$/, "");
  const aside = await digests(old, oldStorage, `${parent}/${KEPT_ASIDE_DIR}/${job.service}/${job.tree}`);
  const asideDigests = new Set(aside.values());
  const keptAside = [...oldOnly].filter(([, d]) => asideDigests.has(d)).length;
  const lost = [...oldOnly].filter(([p, d]) => tree.get(p) !== d && !asideDigests.has(d)).length;
  const newWritesCopied = newWrites.filter((f) => tree.get(f) !== undefined && tree.get(f) === nextAfter.get(f)).length;
  log(
    `promotion ${job.service}: ${old.model.name} redelivered (${changedOld.length} files); the copy from ${next.model.name}: ${newWritesCopied}/${newWrites.length} new writes arrived, ${keptAside}/${oldOnly.size} unreplicated writes kept aside, ${lost} lost`,
  );
  return {
    service: job.service,
    tree: job.tree,
    from: old.model.name,
    to: next.model.name,
    staleRefused: stale.ran && stale.code !== 0,
    newPrimaryKept,
    newWrites: newWrites.length,
    newWritesCopied,
    unreplicatedWrites: oldOnly.size,
    keptAside,
    lost: lost + dbResults.reduce((n, d) => n + d.lost, 0),
    databases: dbResults,
  };
}
