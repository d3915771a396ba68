/**
 * File replication in the pair twin, with the rendered units run unchanged:
 * the copy's oneshot service (`standort-<job>.service`: the source guard
 * around rsync over ssh, through the tunnel, into the partner's forced
 * receive command) and the continuous copy (`standort-lsyncd.service`).
 *
 * What the twin does that the service deployment would: it creates each
 * tree with its marker (`.standort-tree`) and some files at the primary's
 * active storage member, and the trees' parent folders at the standby. The
 * unit's command lines run as systemd would run them (`lib/twin/systemd-unit.ts`):
 * its `Environment=`, its `ConditionPathExists=` (only the active member
 * runs it), then `ExecStartPre=`, `ExecStart=`, `ExecStartPost=` in order.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { loadFootprint } from "../../lib/footprint/load";
import { FileCopyJob, STORAGE_ACTIVE_FLAG, planJobs } from "../../lib/footprint/jobs";
import { readServiceUnit } from "../../lib/twin/systemd-unit";
import type { PairTwin } from "./pair";
import type { SiteTwin } from "./site";
import { RPO_TARGET_SECONDS, RpoEntry } from "./databases";

/** One guard case: the rendered unit run against a source that must not be copied. */
export interface GuardEntry {
  readonly job: string;
  readonly case: "empty-source" | "missing-source" | "unmarked-source" | "mass-deletion" | "receiver-not-standby";
  /** The unit failed (a refusal monitoring sees: non-zero exit, the state file's failure). */
  readonly refused: boolean;
  /** The standby's tree is byte for byte what it was before the run. */
  readonly standbyKept: boolean;
  /** The refusal's reason, from the job's state file for monitoring. */
  readonly reason: string;
}

/** Files per tree the twin seeds at the primary. */
const SEED_FILES = 50;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The file copies between the two locations of the pair. */
export function pairFileJobs(pair: PairTwin, sitesDir?: string): FileCopyJob[] {
  const { sites, footprint } = loadFootprint(sitesDir);
  const names = new Set([pair.a.model.name, pair.b.model.name]);
  return planJobs(footprint, sites).filter(
    (j): j is FileCopyJob => j.kind === "file-copy" && j.runner === "systemd" && names.has(j.site) && names.has(j.target.site),
  );
}

async function shIn(twin: SiteTwin, host: string, script: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
  const r = await twin.machine(host).exec(["sh", "-c", script], { timeoutMs });
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

/** Runs a script (`set -e`) in a host's machine; its output, or an error naming the host and the first line. */
export async function must(twin: SiteTwin, host: string, script: string): Promise<string> {
  const r = await shIn(twin, host, `set -e\n${script}`);
  if (r.code !== 0) throw new Error(`${host}: ${script.split("\n")[0]}: exit ${r.code}: ${r.out.trim().slice(-600)}`);
  return r.out;
}

/** The storage member of a site that serves (holds the active flag the failover script writes). */
export async function activeStorage(twin: SiteTwin): Promise<string> {
  for (const h of twin.model.hosts.filter((x) => x.role === "storage")) {
    if (twin.isUp(h.name) && (await shIn(twin, h.name, `test -e ${STORAGE_ACTIVE_FLAG}`)).code === 0) return h.name;
  }
  throw new Error(`${twin.model.name}: no storage member holds ${STORAGE_ACTIVE_FLAG}`);
}

/** The storage member holding an address (the VIP the copy pushes to). */
async function holderOf(twin: SiteTwin, address: string): Promise<string> {
  const members = twin.model.hosts.filter((h) => h.role === "storage").map((h) => h.name);
  const [holder] = await twin.holders(address, members);
  if (!holder) throw new Error(`${twin.model.name}: no storage member holds ${address}`);
  return holder;
}

/** The result of running one unit as systemd would. */
export interface UnitRun {
  readonly ran: boolean;
  readonly code: number;
  readonly output: string;
}

/**
 * Runs a service unit the host has (`/etc/systemd/system/<unit>`, as the host
 * holds it now) as systemd runs a oneshot: conditions, environment, commands in order.
 */
export async function runServiceUnit(twin: SiteTwin, host: string, unit: string, timeoutMs = 120_000): Promise<UnitRun> {
  const m = twin.machine(host);
  const text = await m.exec(["cat", `/etc/systemd/system/${unit}`]);
  if (text.code !== 0) throw new Error(`${host}: ${unit} does not exist`);
  const u = readServiceUnit(text.stdout);
  for (const p of u.conditionPathExists) {
    const negate = p.startsWith("!");
    const exists = (await m.exec(["test", "-e", negate ? p.slice(1) : p])).code === 0;
    if (exists === negate) return { ran: false, code: 0, output: `condition ${p} not met` };
  }
  const env = Object.entries(u.environment).map(([k, v]) => `${k}=${v}`);
  let output = "";
  const commands = [
    ...u.pre.map((argv, i) => ({ argv, ignore: u.preIgnoringFailure.includes(i) })),
    ...[...u.start, ...u.post].map((argv) => ({ argv, ignore: false })),
  ];
  for (const { argv, ignore } of commands) {
    const r = await m.exec(["env", ...env, ...argv], { timeoutMs });
    output += `${r.stdout}${r.stderr}`;
    if (r.code !== 0 && !ignore) return { ran: true, code: r.code, output };
  }
  return { ran: true, code: 0, output };
}

/** The digest and file count of a tree (`find`, `md5sum`): what "unchanged" is measured by. */
async function treeState(twin: SiteTwin, host: string, path: string): Promise<{ digest: string; files: number }> {
  const out = await must(
    twin,
    host,
    `cd ${path} 2>/dev/null || { echo missing 0; exit 0; }\necho "$(find . -type f | LC_ALL=C sort | xargs -r md5sum | md5sum | cut -c1-32) $(find . -type f | wc -l)"`,
  );
  const [digest, files] = out.trim().split(" ");
  return { digest, files: Number(files) };
}

/** The failure reason the job's state file records for monitoring (`…_failure_info{reason="…"}`). */
async function stateReason(twin: SiteTwin, host: string, job: string): Promise<string> {
  const r = await shIn(twin, host, `cat /var/lib/standort/replication/${job}.prom 2>/dev/null`);
  return /failure_info\{[^}]*reason="([^"]*)"/.exec(r.out)?.[1] ?? "";
}

/** File replication of a pair twin. */
export class PairFiles {
  private constructor(
    private readonly pair: PairTwin,
    readonly jobs: ReadonlyArray<FileCopyJob>,
  ) {}

  /**
   * Seeds every tree at the primary and makes the standby's parent folders;
   * then runs each copy's unit once (the first full copy) and checks the
   * standby holds the primary's tree.
   */
  static async prepare(pair: PairTwin, options: { sitesDir?: string; log?: (line: string) => void } = {}): Promise<PairFiles> {
    const log = options.log ?? (() => undefined);
    const files = new PairFiles(pair, pairFileJobs(pair, options.sitesDir));
    for (const job of files.jobs) {
      const source = pair.twin(job.site);
      const target = pair.twin(job.target.site);
      const from = await activeStorage(source);
      await must(
        source,
        from,
        [
          `mkdir -p ${job.path}`,
          `printf '%s/%s\\n' ${job.service} ${job.tree} > ${job.path}/.standort-tree`,
          `i=0; while [ $i -lt ${SEED_FILES} ]; do head -c 4096 /dev/urandom > ${job.path}/seed-$i; i=$((i+1)); done`,
        ].join("\n"),
      );
      for (const h of target.model.hosts.filter((x) => x.role === "storage" && target.isUp(x.name))) {
        await must(target, h.name, `mkdir -p ${job.target.path.replace(/\/[^/]+\/?$/, "")}`);
      }
      const t0 = performance.now();
      const run = await runServiceUnit(source, from, `standort-${job.key}.service`);
      const to = await holderOf(target, job.target.address);
      const [a, b] = await Promise.all([treeState(source, from, job.path), treeState(target, to, job.target.path)]);
      if (run.code !== 0 || !run.ran || a.digest !== b.digest)
        throw new Error(
          `${job.key}: the first copy from ${from} to ${to} failed (unit ${run.ran ? `exit ${run.code}` : "did not run"}; ${a.files} files at the source, ${b.files} at the standby): ${run.output.trim().slice(-800)}`,
        );
      log(`${job.key}: first copy ${from} -> ${to}: ${b.files} files (${Math.round(performance.now() - t0)} ms)`);
    }
    return files;
  }

  /**
   * The guard cases, each with the rendered unit of the first copy: the source
   * emptied, missing, without its marker, or losing more than the delete
   * limit. Each must be refused and the standby kept; the source is restored after each.
   */
  async guards(log: (line: string) => void = () => undefined): Promise<GuardEntry[]> {
    const entries: GuardEntry[] = [];
    for (const job of this.jobs.slice(0, 1)) {
      const source = this.pair.twin(job.site);
      const target = this.pair.twin(job.target.site);
      const from = await activeStorage(source);
      const to = await holderOf(target, job.target.address);
      const cases: Array<[GuardEntry["case"], string, string]> = [
        ["empty-source", `mv ${job.path} ${job.path}.away && mkdir ${job.path}`, `rmdir ${job.path} && mv ${job.path}.away ${job.path}`],
        ["missing-source", `mv ${job.path} ${job.path}.away`, `mv ${job.path}.away ${job.path}`],
        ["unmarked-source", `mv ${job.path}/.standort-tree ${job.path}.marker`, `mv ${job.path}.marker ${job.path}/.standort-tree`],
        [
          "mass-deletion",
          `mkdir ${job.path}.away && i=0; while [ $i -lt 30 ]; do mv ${job.path}/seed-$i ${job.path}.away/; i=$((i+1)); done`,
          `mv ${job.path}.away/* ${job.path}/ && rmdir ${job.path}.away`,
        ],
      ];
      for (const [name, damage, repair] of cases) {
        const before = await treeState(target, to, job.target.path);
        await must(source, from, damage);
        const run = await runServiceUnit(source, from, `standort-${job.key}.service`);
        const reason = await stateReason(source, from, job.key);
        await must(source, from, repair);
        const after = await treeState(target, to, job.target.path);
        const entry: GuardEntry = {
          job: job.key,
          case: name,
          refused: run.ran && run.code !== 0 && reason !== "",
          standbyKept: before.digest === after.digest && before.files === after.files,
          reason,
        };
        entries.push(entry);
        log(
          `guard ${job.key} ${name}: ${entry.refused ? "refused" : "NOT refused"} (${reason || run.output.trim().split("\n").pop()}), standby ${entry.standbyKept ? `kept (${after.files} files)` : "CHANGED"}`,
        );
      }
    }
    return entries;
  }

  /**
   * The recovery point of each copied tree with the continuous copy running
   * (the rendered `standort-lsyncd.service` on the primary's active member):
   * a steady stream of writes at the primary, and per sample one marked file,
   * timed until the standby holds it.
   */
  async measureRpo(log: (line: string) => void = () => undefined): Promise<RpoEntry[]> {
    const entries: RpoEntry[] = [];
    const sites = [...new Set(this.jobs.map((j) => j.site))];
    for (const site of sites) {
      const source = this.pair.twin(site);
      const from = await activeStorage(source);
      const unit = await source.machine(from).exec(["cat", "/etc/systemd/system/standort-lsyncd.service"]);
      if (unit.code !== 0)
        throw new Error(`${from}: /etc/systemd/system/standort-lsyncd.service does not exist: no continuous copy is rendered`);
      const argv = readServiceUnit(unit.stdout).start[0];
      await source.runUnit(from, { name: "standort-lsyncd", argv });
    }
    for (const job of this.jobs) {
      const source = this.pair.twin(job.site);
      const target = this.pair.twin(job.target.site);
      const from = await activeStorage(source);
      const to = await holderOf(target, job.target.address);
      // The steady load: a file written every 100 ms into the tree (bounded by the sampling below).
      const load = source
        .machine(from)
        .spawn(
          ["sh", "-c", `i=0; while :; do head -c 2048 /dev/urandom > ${job.path}/load-$((i % 200)); i=$((i+1)); sleep 0.1; done`],
          `load-${job.key}`,
        );
      const samples: Array<number | null> = [];
      try {
        await sleep(1_000);
        for (let n = 0; n < 5; n++) {
          const name = `rpo-${randomBytes(6).toString("hex")}`;
          await must(source, from, `head -c 4096 /dev/urandom > ${job.path}/${name}`);
          const written = performance.now();
          let seen: number | null = null;
          while (performance.now() - written < 90_000) {
            if ((await shIn(target, to, `test -e ${job.target.path}/${name}`)).code === 0) {
              seen = (performance.now() - written) / 1000;
              break;
            }
            await sleep(100);
          }
          samples.push(seen === null ? null : Math.round(seen * 100) / 100);
        }
      } finally {
        load.kill("SIGKILL");
      }
      const seconds = samples.includes(null) ? null : Math.max(...(samples as number[]));
      entries.push({
        service: job.service,
        data: job.tree,
        kind: "files",
        from: job.site,
        to: job.target.site,
        seconds,
        samples,
        targetSeconds: RPO_TARGET_SECONDS.files,
        loadPerSecond: 10,
      });
      log(
        `rpo ${job.service}/${job.tree} (files) ${job.site} -> ${job.target.site}: at most ${seconds ?? "never"} s over ${samples.length} files`,
      );
    }
    return entries;
  }
}
