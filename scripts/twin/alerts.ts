/**
 * A stopped replication job raises its alert (issue 13): the primary site's
 * storage pair runs Prometheus from its rendered configuration and rules,
 * every host runs node exporter, and the copy's rendered unit records its
 * success for the textfile collector (`ExecStartPost=`). After the job's last
 * run (the first copy, `PairFiles.prepare`) the twin runs it no more, as a
 * stopped timer would, and watches Prometheus until `ReplicationStale` for
 * that job fires.
 *
 * `afterSeconds` is from the job's last success (what the recorder wrote) to
 * the evaluation at which Prometheus turned the alert firing (its `ALERTS`
 * series), so the poll's own interval does not count. The target: within the
 * service's RPO plus one scrape interval, and not before the RPO.
 */
import { SCRAPE_INTERVAL_SECONDS } from "../../lib/monitoring/site-plan";
import { MONITORING_PORTS } from "../../lib/render/policy";
import { TEXTFILE_DIR } from "../../lib/monitoring/plan";
import type { PairTwin } from "./pair";
import type { SiteTwin } from "./site";
import { PairFiles, activeStorage } from "./files";

export interface AlertEntry {
  readonly alert: "ReplicationStale";
  /** The job's systemd unit without `.service` (the `job` label). */
  readonly job: string;
  readonly service: string;
  readonly site: string;
  readonly rpoSeconds: number;
  /** RPO plus one scrape interval. */
  readonly boundSeconds: number;
  /** Prometheus read the job's success from node exporter before the wait. */
  readonly scraped: boolean;
  readonly fired: boolean;
  /** From the last success to the evaluation that turned the alert firing (s). */
  readonly afterSeconds: number | null;
  /** The alert was not firing before the RPO had passed. */
  readonly quietBefore: boolean;
  /** What went wrong, when something did. */
  readonly error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long after the success Prometheus may take to read it and clear the alert (s): a few scrapes and evaluations. */
const SETTLE_SECONDS = 120;

/** A Prometheus API call on a monitoring server of the site, from inside it. */
async function api(twin: SiteTwin, host: string, path: string): Promise<unknown> {
  const r = await twin.machine(host).exec(["curl", "-s", "--max-time", "5", `http://127.0.0.1:${MONITORING_PORTS.prometheus}${path}`]);
  if (r.code !== 0) throw new Error(`${host}: Prometheus ${path}: curl exited ${r.code}`);
  return JSON.parse(r.stdout);
}

interface Vector {
  data?: { result?: Array<{ value?: [number, string]; values?: Array<[number, string]> }> };
}

/**
 * Starts watching: picks the pair's replication job with the shortest RPO, reads its last success, and returns
 * at once with the watch running (other scenarios that do not run copies may go on meanwhile).
 */
export async function watchReplicationAlert(
  pair: PairTwin,
  files: PairFiles,
  log: (line: string) => void = () => undefined,
): Promise<{ readonly job: string; readonly done: Promise<AlertEntry> }> {
  const footprint = pair.a.footprint;
  const rpo = (service: string) => footprint.services.find((s) => s.name === service)!.recovery.rpoMinutes * 60;
  const job = [...files.jobs].sort((x, y) => rpo(x.service) - rpo(y.service) || x.key.localeCompare(y.key))[0];
  const unit = `standort-${job.key}`;
  const twin = pair.twin(job.site);
  const active = await activeStorage(twin);
  const servers = twin.model.hosts.filter((h) => h.role === "storage").map((h) => h.name);
  const rpoSeconds = rpo(job.service);
  const boundSeconds = rpoSeconds + SCRAPE_INTERVAL_SECONDS;
  const base = { alert: "ReplicationStale" as const, job: unit, service: job.service, site: twin.model.name, rpoSeconds, boundSeconds };
  const recorded = await twin.machine(active).exec(["cat", `${TEXTFILE_DIR}/standort-job-${unit}.prom`]);
  const success = Number(/^standort_job_last_success_timestamp_seconds\{[^}]*\} (\d+)$/m.exec(recorded.stdout)?.[1] ?? NaN);
  if (!Number.isFinite(success) || success === 0) {
    const error = `${active}: ${unit} recorded no success (${recorded.stdout.trim() || recorded.stderr.trim() || "no file"})`;
    return { job: unit, done: Promise.resolve({ ...base, scraped: false, fired: false, afterSeconds: null, quietBefore: true, error }) };
  }
  log(`alerts: ${unit} last succeeded at ${new Date(success * 1000).toISOString()} on ${active}; its timer is stopped now`);

  const done = (async (): Promise<AlertEntry> => {
    const server = servers[0];
    const selector = `{alertname="ReplicationStale",job="${unit}",alertstate="firing"}`;
    let scraped = false;
    let quietBefore = true;
    let firedAt: number | null = null;
    const firingNow = async () =>
      (((await api(twin, server, `/api/v1/query?query=${encodeURIComponent(`ALERTS${selector}`)}`)) as Vector).data?.result ?? []).length >
      0;
    try {
      // First the success must be scraped and the alert quiet: before the job's first run it fired, rightly
      // (a job that never succeeded), and it takes a scrape and an evaluation to clear.
      let resolvedAt: number | null = null;
      while (Date.now() / 1000 < success + SETTLE_SECONDS) {
        const v = (await api(
          twin,
          server,
          `/api/v1/query?query=${encodeURIComponent(`standort_job_last_success_timestamp_seconds{job="${unit}"}`)}`,
        )) as Vector;
        scraped ||= (v.data?.result ?? []).some((r) => Number(r.value?.[1]) === success);
        if (scraped && !(await firingNow())) {
          resolvedAt = Date.now() / 1000;
          break;
        }
        await sleep(1_000);
      }
      if (resolvedAt === null)
        throw new Error(
          `within ${SETTLE_SECONDS} s of the success, Prometheus ${scraped ? "still had the alert firing" : "never read it"}`,
        );
      const deadline = success + boundSeconds + 60;
      while (Date.now() / 1000 < deadline) {
        if (await firingNow()) {
          const now = Date.now() / 1000;
          // The first evaluation at which it was firing again, from Prometheus's own ALERTS series (1 s steps).
          const range = (await api(
            twin,
            server,
            `/api/v1/query_range?query=${encodeURIComponent(`ALERTS${selector}`)}&start=${Math.ceil(resolvedAt)}&end=${Math.ceil(now)}&step=1`,
          )) as Vector;
          firedAt = (range.data?.result ?? []).flatMap((r) => r.values ?? []).map((v) => Number(v[0]))[0] ?? now;
          if (firedAt < success + rpoSeconds) quietBefore = false;
          break;
        }
        await sleep(1_000);
      }
    } catch (error) {
      return { ...base, scraped, fired: false, afterSeconds: null, quietBefore, error: String(error) };
    }
    const afterSeconds = firedAt === null ? null : Math.round((firedAt - success) * 10) / 10;
    log(
      `alerts: ReplicationStale for ${unit} ${afterSeconds === null ? "did not fire" : `fired ${afterSeconds} s after its last success`} (RPO ${rpoSeconds} s, bound ${boundSeconds} s)`,
    );
    return { ...base, scraped, fired: firedAt !== null, afterSeconds, quietBefore };
  })();
  return { job: unit, done };
}
