/**
 * The databases of the pair twin: every database replicated between the two
 * locations runs as a real server (Debian's PostgreSQL 15 and MariaDB) on a
 * virtualization host of each site, configured by the rendered database files
 * (`lib/footprint/database-files.ts`) as they are, and replicating through
 * the real tunnel. Then the recovery point is measured under a steady write
 * load: a row written at the primary, the time until the standby returns it.
 *
 * What the twin does that a service deployment would: it places each
 * database on a virtualization host (one server per database and engine per
 * host) and resolves the endpoint names in `/etc/hosts` (there is no DNS in
 * the twin), creates the data directory, points the server at the rendered
 * files (`include`, `--defaults-extra-file`, pg_hba.conf appended), and
 * starts the standby from a base backup. The credentials are the stack's
 * files rendered with working values (`derivedCredentials`), the servers'
 * TLS certificates and CA bundles among them.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { loadFootprint } from "../../lib/footprint/load";
import { DatabaseReplicationJob, planJobs } from "../../lib/footprint/jobs";
import { DATABASE_TLS, PGPASS_FILE, REPLICATION_USER } from "../../lib/footprint/database-files";
import type { SiteModel } from "../../lib/model/model";
import type { PairTwin } from "./pair";
import type { SiteTwin } from "./site";

const PG_BIN = "/usr/lib/postgresql/15/bin";
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One database server of the twin. */
export interface DatabaseInstance {
  readonly site: string;
  readonly service: string;
  readonly database: string;
  readonly engine: "postgres" | "mariadb";
  /** The endpoint name (`<db>.<service>.db.<code>.standort.internal`). */
  readonly endpoint: string;
  readonly host: string;
  readonly address: string;
  /** The replication paths this server is a side of (within the pair). */
  readonly jobs: ReadonlyArray<DatabaseReplicationJob>;
  readonly role: "primary" | "standby";
}

/** Recovery point of one replicated item, measured. */
export interface RpoEntry {
  readonly service: string;
  /** The database or file tree. */
  readonly data: string;
  readonly kind: "postgres" | "mariadb" | "files";
  readonly from: string;
  readonly to: string;
  /** The longest time a write took to become readable at the standby, seconds (null: never within the bound). */
  readonly seconds: number | null;
  /** Every sample, seconds. */
  readonly samples: ReadonlyArray<number | null>;
  readonly targetSeconds: number;
  /** Writes per second of the steady load running meanwhile (counted at the primary). */
  readonly loadPerSecond: number;
}

/** Targets of the issue: a database write readable at the standby within 5 s, a file within 60 s. */
export const RPO_TARGET_SECONDS = { postgres: 5, mariadb: 5, files: 60 } as const;
/** Samples per database; each waits at most this long. */
const SAMPLES = 10;
const SAMPLE_BOUND_MS = 30_000;

/** The database replication paths between the two locations of the pair. */
export function pairDatabaseJobs(pair: PairTwin, sitesDir?: string): DatabaseReplicationJob[] {
  const { sites, footprint } = loadFootprint(sitesDir);
  const names = new Set([pair.a.model.name, pair.b.model.name]);
  return planJobs(footprint, sites).filter(
    (j): j is DatabaseReplicationJob => j.kind === "database-replication" && names.has(j.site) && names.has(j.peer.site),
  );
}

/**
 * Places every database of the paths on a virtualization host of its site:
 * per site and engine, the endpoints in name order on the hosts in name order.
 * @throws Error when a site has more databases of one engine than virtualization hosts
 */
export function placeDatabases(models: ReadonlyArray<SiteModel>, jobs: ReadonlyArray<DatabaseReplicationJob>): DatabaseInstance[] {
  const instances: DatabaseInstance[] = [];
  for (const model of models) {
    const hosts = model.hosts.filter((h) => h.role === "virtualization").sort((a, b) => a.name.localeCompare(b.name));
    for (const engine of ["postgres", "mariadb"] as const) {
      const here = jobs.filter((j) => j.site === model.name && j.engine === engine);
      const endpoints = [...new Set(here.map((j) => j.endpoint))].sort();
      if (endpoints.length > hosts.length)
        throw new Error(
          `${model.name}: ${endpoints.length} ${engine} databases, but the twin runs one per virtualization host (${hosts.length})`,
        );
      endpoints.forEach((endpoint, i) => {
        const own = here.filter((j) => j.endpoint === endpoint);
        const host = hosts[i];
        instances.push({
          site: model.name,
          service: own[0].service,
          database: own[0].database,
          engine,
          endpoint,
          host: host.name,
          address: host.interfaces.find((x) => x.segment === "app")?.address ?? host.interfaces[0].address,
          jobs: own,
          role: own[0].side === "source" ? "primary" : "standby",
        });
      });
    }
  }
  return instances;
}

/** Runs a shell script in a host's machine; throws with its output on failure. */
async function sh(twin: SiteTwin, host: string, script: string, input?: string, timeoutMs = 60_000): Promise<string> {
  const r = await twin.machine(host).exec(["sh", "-ec", script], { input, timeoutMs });
  if (r.code !== 0) throw new Error(`${host}: ${script.split("\n")[0]}…: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(-800)}`);
  return r.stdout;
}

const q = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;

/** The running databases of a pair twin. */
export class PairDatabases {
  private constructor(
    private readonly pair: PairTwin,
    readonly instances: ReadonlyArray<DatabaseInstance>,
    private readonly dataRoot: string,
  ) {}

  /** Places, configures and starts every database of the pair's paths, primaries first, then the standbys from them. */
  static async start(pair: PairTwin, options: { sitesDir?: string; log?: (line: string) => void } = {}): Promise<PairDatabases> {
    const log = options.log ?? (() => undefined);
    const jobs = pairDatabaseJobs(pair, options.sitesDir);
    const instances = placeDatabases([pair.a.model, pair.b.model], jobs);
    // Data directories outside the twin's private folder: the servers run as their own users, who must traverse it.
    const dataRoot = join(pair.a.dir, "databases");
    mkdirSync(dataRoot, { recursive: true });
    chmodSync(pair.a.dir, 0o711);
    chmodSync(dataRoot, 0o755);
    const dbs = new PairDatabases(pair, instances, dataRoot);
    const hosts = instances.map((i) => `${i.address} ${i.endpoint}`).join("\n");
    // The stack's files are in place (the settings, the statements with the path's password, the standbys' pgpass,
    // the servers' TLS). What the service deployment adds: the endpoint names, and the key and the password file
    // handed to the PostgreSQL server's own user, which reads them.
    for (const twin of [pair.a, pair.b]) {
      for (const host of twin.model.hosts.filter((h) => h.role === "virtualization")) {
        const install = [
          `cat >> /etc/hosts <<'EOF'\n${hosts}\nEOF`,
          `chown postgres:postgres ${DATABASE_TLS.key}`,
          `if [ -e ${PGPASS_FILE} ]; then chown postgres:postgres ${PGPASS_FILE}; fi`,
        ].join("\n");
        await sh(twin, host.name, install);
      }
    }
    for (const role of ["primary", "standby"] as const) {
      for (const i of instances.filter((x) => x.role === role)) {
        const t0 = performance.now();
        await (i.engine === "postgres" ? dbs.startPostgres(i) : dbs.startMariadb(i));
        log(`${i.site}: ${i.engine} ${i.endpoint} (${role}) on ${i.host} (${Math.round(performance.now() - t0)} ms)`);
      }
    }
    return dbs;
  }

  private twin(site: string): SiteTwin {
    return this.pair.twin(site);
  }

  private dir(i: DatabaseInstance): string {
    return join(this.dataRoot, `${i.site}-${i.engine}-${i.database}`);
  }

  private async startPostgres(i: DatabaseInstance): Promise<void> {
    const twin = this.twin(i.site);
    const data = this.dir(i);
    const includes = i.jobs.map((j) => `include '/etc/standort/databases/${j.key}.conf'`).join("\n");
    if (i.role === "primary") {
      await sh(
        twin,
        i.host,
        [
          `install -d -o postgres -g postgres -m 0700 ${data}`,
          `runuser -u postgres -- ${PG_BIN}/initdb -D ${data} -A trust -U postgres >/dev/null`,
          `printf '%s\\n' ${q(includes)} >> ${data}/postgresql.conf`,
          ...i.jobs.map((j) => `cat /etc/standort/databases/${j.key}.hba >> ${data}/pg_hba.conf`),
        ].join("\n"),
      );
    } else {
      const source = i.jobs[0].peer.endpoint;
      await sh(
        twin,
        i.host,
        [
          `install -d -o postgres -g postgres -m 0700 ${data}`,
          // The initial copy, through the tunnel, as the replication user, verifying the source's certificate.
          `runuser -u postgres -- ${PG_BIN}/pg_basebackup -D ${data} -X stream -c fast -d ${q(`host=${source} port=5432 user=${REPLICATION_USER} passfile=${PGPASS_FILE} sslmode=verify-full sslrootcert=${DATABASE_TLS.ca}`)}`,
          // The base backup copies the source's postgresql.conf: its includes name the source's files, not these.
          `sed -i '/^include .\\/etc\\/standort\\//d' ${data}/postgresql.conf`,
          `printf '%s\\n' ${q(includes)} >> ${data}/postgresql.conf`,
          `runuser -u postgres -- touch ${data}/standby.signal`,
        ].join("\n"),
        undefined,
        120_000,
      );
    }
    await twin.runUnit(i.host, {
      name: `postgres-${i.database}`,
      prepare: ["mkdir -p /run/postgresql", "chown postgres:postgres /run/postgresql"],
      argv: ["runuser", "-u", "postgres", "--", `${PG_BIN}/postgres`, "-D", data],
    });
    await this.until(i, async () => (await twin.machine(i.host).exec([`${PG_BIN}/pg_isready`, "-q", "-h", "/run/postgresql"])).code === 0);
    if (i.role === "primary") {
      for (const j of i.jobs)
        await sh(
          twin,
          i.host,
          `psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -q -f /etc/standort/databases/${j.key}.sql >/dev/null`,
        );
      // The service's database (the deployment creates it), where the twin's writes go.
      await sh(twin, i.host, `psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE ${i.database}'`);
      await this.sql(i, "CREATE TABLE standort_rpo (id bigserial PRIMARY KEY, marker text, at timestamptz DEFAULT now())");
    }
  }

  private mariadbSocket(i: DatabaseInstance): string {
    return `/run/mysqld/${i.database}.sock`;
  }

  private async startMariadb(i: DatabaseInstance): Promise<void> {
    const twin = this.twin(i.site);
    const data = this.dir(i);
    const base = join(data, "..", `${i.site}-${i.database}.cnf`);
    // The server's own places; the rendered option file is read after it, as it is on a host (`!includedir`).
    const cnf = [
      "[mariadb]",
      `datadir = ${data}`,
      `socket = ${this.mariadbSocket(i)}`,
      `pid_file = /run/mysqld/${i.database}.pid`,
      "user = root",
      // Accounts match networks, not names: no reverse lookups (the twin, like a site, has no PTR records for them).
      "skip_name_resolve = ON",
      ...i.jobs.map((j) => `!include /etc/standort/databases/${j.key}.cnf`),
    ].join("\n");
    await sh(
      twin,
      i.host,
      [
        `mkdir -p ${data} /run/mysqld`,
        `printf '%s\\n' ${q(cnf)} > ${base}`,
        `mariadb-install-db --defaults-file=${base} --auth-root-authentication-method=socket >/dev/null`,
      ].join("\n"),
      undefined,
      120_000,
    );
    await twin.runUnit(i.host, {
      name: `mariadb-${i.database}`,
      prepare: ["mkdir -p /run/mysqld"],
      argv: ["mariadbd", `--defaults-file=${base}`],
    });
    await this.until(
      i,
      async () => (await twin.machine(i.host).exec(["mariadb-admin", `--socket=${this.mariadbSocket(i)}`, "ping"])).code === 0,
    );
    for (const j of i.jobs) await sh(twin, i.host, `mariadb --socket=${this.mariadbSocket(i)} < /etc/standort/databases/${j.key}.sql`);
    if (i.role === "primary") {
      await this.sql(i, `CREATE DATABASE IF NOT EXISTS ${i.database}`);
      await this.sql(
        i,
        `CREATE TABLE ${i.database}.standort_rpo (id bigint AUTO_INCREMENT PRIMARY KEY, marker varchar(64), at timestamp DEFAULT CURRENT_TIMESTAMP)`,
      );
    }
  }

  /** Polls until `ready` or 60 s pass. */
  private async until(i: DatabaseInstance, ready: () => Promise<boolean>): Promise<void> {
    const t0 = performance.now();
    while (performance.now() - t0 < 60_000) {
      if (await ready()) return;
      if (!this.twin(i.site).isUp(i.host)) break;
      await sleep(200);
    }
    const unit = `${i.engine}-${i.database}`;
    throw new Error(`${i.host}: ${i.engine} ${i.endpoint} did not start within 60 s\n${this.twin(i.site).machine(i.host).tail(unit)}`);
  }

  /** Runs one statement on an instance (as the superuser over its local socket); the output, tab-separated. */
  async sql(i: DatabaseInstance, statement: string): Promise<string> {
    const argv =
      i.engine === "postgres"
        ? ["psql", "-h", "/run/postgresql", "-U", "postgres", "-d", i.database, "-v", "ON_ERROR_STOP=1", "-tAqc", statement]
        : ["mariadb", `--socket=${this.mariadbSocket(i)}`, "-N", "-B", "-e", statement];
    const r = await this.twin(i.site).machine(i.host).exec(argv, { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`${i.host}: ${statement}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  }

  /**
   * Creates the read-only dump user of every database of `service` at its
   * primary, as the service deployment does with the rendered files: the
   * `.backup.sql` statements, and for PostgreSQL the `.backup.hba` lines
   * appended to pg_hba.conf (then reloaded).
   */
  async createDumpUsers(service: string): Promise<void> {
    for (const i of this.instances.filter((x) => x.role === "primary" && x.service === service)) {
      const base = `/etc/standort/databases/${i.service}-${i.database}.backup`;
      const twin = this.twin(i.site);
      if (i.engine === "postgres") {
        await sh(twin, i.host, `cat ${base}.hba >> ${this.dir(i)}/pg_hba.conf`);
        await sh(twin, i.host, `psql -h /run/postgresql -U postgres -v ON_ERROR_STOP=1 -q -f ${base}.sql >/dev/null`);
        await this.sql(i, "SELECT pg_reload_conf()");
      } else {
        await sh(twin, i.host, `mariadb --socket=${this.mariadbSocket(i)} < ${base}.sql`);
      }
    }
  }

  /**
   * The standby's read-only mode at the database: what the application's own
   * user reads there (the rows the primary wrote) and that its write is
   * refused. MariaDB exempts privileged users from `read_only`, so the check
   * uses an application user created at the primary (it replicates like any
   * statement); a PostgreSQL hot standby refuses every write.
   */
  async readOnly(standby: DatabaseInstance): Promise<{ primaryRows: number; standbyRows: number; writeRefused: boolean; error: string }> {
    const primary = this.instances.find((p) => p.role === "primary" && p.jobs.some((j) => j.slot === standby.jobs[0].slot));
    if (!primary) throw new Error(`${standby.endpoint}: no primary in the pair`);
    const table = this.table(primary);
    if (primary.engine === "mariadb") {
      await this.sql(primary, `CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED BY 'twin-app'`);
      await this.sql(primary, `GRANT SELECT, INSERT ON ${primary.database}.* TO 'app'@'localhost'`);
    }
    await sleep(500);
    const primaryRows = Number(await this.sql(primary, `SELECT count(*) FROM ${table}`));
    const standbyRows = Number(await this.sql(standby, `SELECT count(*) FROM ${table}`));
    const write = `INSERT INTO ${table} (marker) VALUES ('standby-write')`;
    const argv =
      standby.engine === "postgres"
        ? ["psql", "-h", "/run/postgresql", "-U", "postgres", "-d", standby.database, "-v", "ON_ERROR_STOP=1", "-tAqc", write]
        : ["mariadb", `--socket=${this.mariadbSocket(standby)}`, "-u", "app", "-ptwin-app", "-N", "-B", "-e", write];
    const r = await this.twin(standby.site).machine(standby.host).exec(argv, { timeoutMs: 20_000 });
    return {
      primaryRows,
      standbyRows,
      writeRefused: r.code !== 0,
      error: r.stderr.split("\n").find((l) => l.startsWith("ERROR")) ?? r.stderr.trim(),
    };
  }

  /** Writes one marked row at an instance (as the service's superuser over its socket). */
  async write(i: DatabaseInstance, marker: string): Promise<void> {
    await this.sql(i, `INSERT INTO ${this.table(i)} (marker) VALUES ('${marker}')`);
  }

  /** The markers starting with `prefix` an instance holds. */
  async markers(i: DatabaseInstance, prefix: string): Promise<string[]> {
    const out = await this.sql(i, `SELECT marker FROM ${this.table(i)} WHERE marker LIKE '${prefix}%' ORDER BY marker`);
    return out.split("\n").filter(Boolean);
  }

  /**
   * Promotes a standby as the service deployment does once the promoted
   * footprint is delivered: PostgreSQL leaves recovery (`pg_promote`, waiting
   * for it), MariaDB stops and forgets its connection to the old source and
   * takes writes (`read_only` off, as the promoted side's option file has it).
   */
  async promote(standby: DatabaseInstance): Promise<void> {
    if (standby.engine === "postgres") {
      await this.sql(standby, "SELECT pg_promote(true, 60)");
    } else {
      const slot = standby.jobs[0].slot;
      await this.sql(standby, `STOP SLAVE '${slot}'; RESET SLAVE '${slot}' ALL; SET GLOBAL read_only = OFF`);
    }
  }

  table(i: DatabaseInstance): string {
    return i.engine === "postgres" ? "standort_rpo" : `${i.database}.standort_rpo`;
  }

  /**
   * The recovery point of every replicated database: a steady load writes at
   * the primary meanwhile; each sample writes a marked row there and times
   * until the standby returns it.
   */
  async measureRpo(log: (line: string) => void = () => undefined): Promise<RpoEntry[]> {
    const entries: RpoEntry[] = [];
    for (const primary of this.instances.filter((i) => i.role === "primary")) {
      const standby = this.instances.find((s) => s.role === "standby" && s.jobs.some((j) => j.slot === primary.jobs[0].slot));
      if (!standby) continue;
      // The steady load: a client inserting in a loop at the primary (bounded by the sampling below).
      const load = this.twin(primary.site)
        .machine(primary.host)
        .spawn(
          [
            "sh",
            "-c",
            primary.engine === "postgres"
              ? `while :; do echo "INSERT INTO standort_rpo (marker) VALUES ('load');"; sleep 0.02; done | psql -h /run/postgresql -U postgres -d ${primary.database} -q >/dev/null`
              : `while :; do echo "INSERT INTO ${this.table(primary)} (marker) VALUES ('load');"; sleep 0.02; done | mariadb --socket=${this.mariadbSocket(primary)}`,
          ],
          `load-${primary.database}`,
        );
      const count = async () => Number(await this.sql(primary, `SELECT count(*) FROM ${this.table(primary)} WHERE marker = 'load'`));
      await sleep(1_000);
      const c0 = await count();
      const t0 = performance.now();
      const samples: Array<number | null> = [];
      for (let n = 0; n < SAMPLES; n++) {
        const marker = `rpo-${randomBytes(6).toString("hex")}`;
        await this.sql(primary, `INSERT INTO ${this.table(primary)} (marker) VALUES ('${marker}')`);
        const written = performance.now();
        let seen: number | null = null;
        while (performance.now() - written < SAMPLE_BOUND_MS) {
          if ((await this.sql(standby, `SELECT count(*) FROM ${this.table(primary)} WHERE marker = '${marker}'`)) === "1") {
            seen = (performance.now() - written) / 1000;
            break;
          }
          await sleep(20);
        }
        samples.push(seen === null ? null : Math.round(seen * 1000) / 1000);
        await sleep(200);
      }
      const loadPerSecond = Math.round(((await count()) - c0) / ((performance.now() - t0) / 1000));
      load.kill("SIGKILL");
      await this.twin(primary.site).machine(primary.host).exec(["pkill", "-f", "standort_rpo"]);
      const seconds = samples.includes(null) ? null : Math.max(...(samples as number[]));
      entries.push({
        service: primary.service,
        data: primary.database,
        kind: primary.engine,
        from: primary.site,
        to: standby.site,
        seconds,
        samples,
        targetSeconds: RPO_TARGET_SECONDS[primary.engine],
        loadPerSecond,
      });
      log(
        `rpo ${primary.service}/${primary.database} (${primary.engine}) ${primary.site} -> ${standby.site}: at most ${seconds ?? "never"} s over ${SAMPLES} writes, load ${loadPerSecond}/s`,
      );
    }
    return entries;
  }
}
