// The database credentials: each site's TLS (CA, server certificates, the CA bundle) and the backup dump user.
import test from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { planJobs } from "../lib/footprint/jobs";
import { DATABASE_TLS } from "../lib/footprint/database-files";
import {
  BACKUP_DATABASE_CA,
  CredentialValues,
  backupUserHbaFile,
  backupUserSqlFile,
  credentialIds,
  databaseEndpointsAt,
  derivedCredentialValues,
  placeholderCredentialValues,
  planCredentials,
  renderCredentialFiles,
} from "../lib/footprint/credentials";
import { SiteModel } from "../lib/model/model";
import { planStack } from "../lib/preview/run-stack";
import { requireTool, run } from "./helpers/tools";

const { footprint, sites } = loadFootprint();
const jobs = planJobs(footprint, sites);
const credentials = planCredentials(sites, jobs);
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const hostsOf = (name: string, role: string) =>
  site(name)
    .hosts.filter((h) => h.role === role)
    .map((h) => h.name);
const derived = derivedCredentialValues(credentials, "test");
const render = (name: string, values: CredentialValues = derived) => renderCredentialFiles(site(name), sites, jobs, values);
const content = (name: string, host: string, path: string, values: CredentialValues = derived) =>
  render(name, values).hostFiles[host].find((f) => f.path === path)!.content;
/** The values as `name`'s stack sees them before `peer` has run: the peer's CA not published. */
const without = (peer: string): CredentialValues => ({
  ...derived,
  certificates: { ...derived.certificates, [credentialIds.databaseTlsCa(peer)]: undefined },
});

test("database TLS: a CA per site, read by the sites it replicates with; a server certificate per virtualization host", () => {
  const ca = credentials.find((c) => c.id === "db-tls-ca-vienna")!;
  assert.deepEqual(
    [ca.kind, ca.generator, ca.site, ca.publish, ca.readers],
    ["database-tls-ca", "tls.SelfSignedCert", "vienna", "certificate", ["helsinki", "karlsruhe"]],
  );
  const servers = credentials.filter((c) => c.kind === "database-tls-server" && c.site === "vienna");
  assert.deepEqual(
    servers.map((c) => c.id),
    hostsOf("vienna", "virtualization").map((h) => `db-tls-server-${h}`),
  );
  for (const c of servers) {
    assert.deepEqual([c.generator, c.publish, c.readers, c.issuer], ["tls.LocallySignedCert", "none", [], "db-tls-ca-vienna"]);
    assert.deepEqual(c.dnsNames, databaseEndpointsAt("vienna", jobs));
  }
  // Every endpoint the site runs: both ends of its paths and the databases it backs up.
  assert.deepEqual(databaseEndpointsAt("vienna", jobs), [
    "forge.git.db.vie.standort.internal",
    "postfixadmin.mail.db.vie.standort.internal",
    "tickets.tickets.db.vie.standort.internal",
    "wiki.tickets.db.vie.standort.internal",
  ]);
});

test("database TLS files land exactly on the site's virtualization hosts; the key is secret and 0600", () => {
  for (const name of ["vienna", "helsinki", "karlsruhe", "frankfurt"]) {
    const files = Object.entries(render(name, placeholderCredentialValues(credentials)).hostFiles).flatMap(([host, list]) =>
      list.map((f) => ({ host, ...f })),
    );
    for (const path of [DATABASE_TLS.ca, DATABASE_TLS.cert, DATABASE_TLS.key]) {
      const got = files.filter((f) => f.path === path);
      assert.deepEqual(
        got.map((f) => f.host),
        hostsOf(name, "virtualization"),
        `${name}: ${path}`,
      );
      const secret = path === DATABASE_TLS.key;
      for (const f of got) assert.deepEqual([f.secret, f.mode], [secret, secret ? "0600" : "0644"], `${name}: ${f.host}: ${path}`);
    }
    // Each host its own key.
    const keys = hostsOf(name, "virtualization").map((h) => content(name, h, DATABASE_TLS.key));
    assert.equal(new Set(keys).size, keys.length, `${name}: one key per host`);
    assert.match(keys[0], /^-----BEGIN EC PRIVATE KEY-----\n/);
  }
  // The offline plan names the secret the key stands for.
  assert.equal(
    content("vienna", "vie-virt-2", DATABASE_TLS.key, placeholderCredentialValues(credentials)),
    "(secret: standort:credentials.db-tls-server-vie-virt-2)\n",
  );
});

test("the CA bundle waits for a peer until its outputs exist, then holds both CAs", () => {
  const before = render("vienna", without("karlsruhe"));
  const bundle = before.hostFiles["vie-virt-1"].find((f) => f.path === DATABASE_TLS.ca)!.content;
  assert.match(bundle, /^# Waiting for karlsruhe: its stack has not published db-tls-ca-karlsruhe yet\./m);
  assert.ok(before.waiting.some((w) => w.includes("db-tls-ca-karlsruhe")));
  assert.equal((bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, "own and helsinki's CA");
  const after = content("vienna", "vie-virt-1", DATABASE_TLS.ca);
  assert.doesNotMatch(after, /Waiting/);
  for (const peer of ["vienna", "karlsruhe", "helsinki"])
    assert.ok(after.includes(derived.certificates[`db-tls-ca-${peer}`]!.trim()), peer);
  // Only the sites it replicates with: frankfurt's CA is not in vienna's bundle.
  assert.ok(!after.includes(derived.certificates["db-tls-ca-frankfurt"]!.trim()));
});

test("derived certificates: a replica verifies its peer's server for every endpoint name (openssl verify)", async (t) => {
  const bundle = content("vienna", "vie-virt-1", DATABASE_TLS.ca);
  const peerCert = content("karlsruhe", "fkb-virt-2", DATABASE_TLS.cert);
  const x509 = new X509Certificate(peerCert);
  const endpoints = databaseEndpointsAt("karlsruhe", jobs);
  assert.equal(x509.subjectAltName, endpoints.map((e) => `DNS:${e}`).join(", "));
  assert.equal(x509.ca, false);
  assert.ok(x509.checkPrivateKey((await import("node:crypto")).createPrivateKey(content("karlsruhe", "fkb-virt-2", DATABASE_TLS.key))));
  const ca = new X509Certificate(derived.certificates["db-tls-ca-karlsruhe"]!);
  assert.ok(ca.ca && x509.verify(ca.publicKey) && x509.checkIssued(ca));
  // Deterministic: the same seed gives the same bytes.
  assert.equal(derivedCredentialValues(credentials, "test").certificates["db-tls-server-fkb-virt-2"], peerCert);

  if (!requireTool(t, "openssl")) return;
  const dir = mkdtempSync(join(tmpdir(), "standort-dbtls-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "bundle.pem"), bundle);
  writeFileSync(join(dir, "peer.crt"), peerCert);
  for (const name of endpoints) {
    const r = await run([
      "openssl",
      "verify",
      "-verify_hostname",
      name,
      "-purpose",
      "sslserver",
      "-CAfile",
      join(dir, "bundle.pem"),
      join(dir, "peer.crt"),
    ]);
    assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
  }
  const wrongName = await run([
    "openssl",
    "verify",
    "-verify_hostname",
    "forge.git.db.vie.standort.internal",
    "-CAfile",
    join(dir, "bundle.pem"),
    join(dir, "peer.crt"),
  ]);
  assert.notEqual(wrongName.code, 0, "another site's endpoint name is refused");
  // Before karlsruhe has run, vienna's bundle (a comment instead of its CA) does not trust karlsruhe's server.
  writeFileSync(join(dir, "waiting.pem"), content("vienna", "vie-virt-1", DATABASE_TLS.ca, without("karlsruhe")));
  const waiting = await run(["openssl", "verify", "-CAfile", join(dir, "waiting.pem"), join(dir, "peer.crt")]);
  assert.notEqual(waiting.code, 0);
  // The backup dumps at karlsruhe verify their own site's servers with the CA beside their settings.
  writeFileSync(join(dir, "dump-ca.pem"), content("karlsruhe", "fkb-stor-1", BACKUP_DATABASE_CA));
  const dump = await run([
    "openssl",
    "verify",
    "-verify_hostname",
    endpoints[0],
    "-CAfile",
    join(dir, "dump-ca.pem"),
    join(dir, "peer.crt"),
  ]);
  assert.equal(dump.code, 0, dump.stderr);
});

test("the dump user: secret, idempotent statements for both engines, only from where the dumps run", () => {
  // vienna (compose): mariadb; the timers on the storage hosts dump from their data addresses.
  const mariadb = render("vienna").hostFiles["vie-virt-1"].find((f) => f.path === backupUserSqlFile("mail", "postfixadmin"))!;
  assert.deepEqual([mariadb.secret, mariadb.mode], [true, "0600"]);
  const password = derived.secrets[credentialIds.databaseBackup("mail", "postfixadmin")]!;
  const lines = mariadb.content.split("\n").filter((l) => l && !l.startsWith("--"));
  const accounts = ["'standort_backup'@'10.30.1.20'", "'standort_backup'@'10.30.1.21'"];
  assert.deepEqual(
    lines,
    accounts.flatMap((a) => [
      `CREATE USER IF NOT EXISTS ${a} IDENTIFIED BY '${password}' REQUIRE SSL;`,
      `ALTER USER ${a} IDENTIFIED BY '${password}' REQUIRE SSL;`,
      `GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON \`postfixadmin\`.* TO ${a};`,
      `GRANT SELECT ON mysql.proc TO ${a};`,
    ]),
  );
  // helsinki (Kubernetes): postgres; the CronJobs run on the cluster's nodes (application segment).
  const files = render("helsinki").hostFiles["hel-virt-3"];
  const pg = files.find((f) => f.path === backupUserSqlFile("git", "forge"))!;
  assert.deepEqual([pg.secret, pg.mode], [true, "0600"]);
  const pgPassword = derived.secrets[credentialIds.databaseBackup("git", "forge")]!;
  assert.deepEqual(
    pg.content.split("\n").filter((l) => l && !l.startsWith("--")),
    [
      "SET password_encryption = 'scram-sha-256';",
      "SELECT 'CREATE ROLE standort_backup LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'standort_backup')",
      "\\gexec",
      `ALTER ROLE standort_backup WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '${pgPassword}';`,
      "GRANT pg_read_all_data TO standort_backup;",
    ],
  );
  const hba = files.find((f) => f.path === backupUserHbaFile("git", "forge"))!;
  assert.deepEqual([hba.secret, hba.mode], [false, "0644"]);
  assert.deepEqual(
    hba.content.split("\n").filter((l) => l && !l.startsWith("#")),
    ["hostssl forge standort_backup 10.40.4.0/22 scram-sha-256"],
  );
  // Only the writer's hosts create it; the standby's hosts and every storage host do not.
  for (const [host, list] of Object.entries(render("karlsruhe").hostFiles)) {
    assert.ok(!list.some((f) => f.path === backupUserSqlFile("mail", "postfixadmin")), host);
  }
  assert.deepEqual(
    Object.entries(render("vienna").hostFiles)
      .filter(([, list]) => list.some((f) => f.path.endsWith(".backup.sql")))
      .map(([host]) => host),
    hostsOf("vienna", "virtualization"),
  );
  // The dumps verify their server against the site's database CA.
  assert.match(
    content("vienna", "vie-stor-1", "/etc/standort/backup/postfixadmin.cnf"),
    /^ssl-ca=\/etc\/standort\/backup\/database-ca\.crt\nssl-verify-server-cert$/m,
  );
});

test("no database private key or password appears unwrapped in the plan", async () => {
  for (const stack of ["vienna", "helsinki"]) {
    const plan = await planStack(stack);
    const text = JSON.stringify(plan);
    assert.ok(!/PRIVATE KEY/.test(text), `${stack}: a private key shows`);
    const types = new Set(plan.resources.map((r) => r.type));
    for (const type of [
      "tls:index/selfSignedCert:SelfSignedCert",
      "tls:index/certRequest:CertRequest",
      "tls:index/locallySignedCert:LocallySignedCert",
    ]) {
      assert.ok(types.has(type), `${stack}: ${type}`);
    }
    for (const r of plan.resources.filter((x) => x.type.startsWith("tls:index/") && x.type !== "tls:index/privateKey:PrivateKey")) {
      for (const key of ["privateKeyPem", "caPrivateKeyPem"])
        if (key in r.inputs) assert.equal(r.inputs[key], "[secret]", `${r.name}.${key}`);
    }
    const ca = plan.resources.find((r) => r.type === "tls:index/selfSignedCert:SelfSignedCert")!;
    assert.deepEqual(
      [ca.inputs.isCaCertificate, ca.inputs.allowedUses, ca.inputs.validityPeriodHours, ca.inputs.earlyRenewalHours],
      [true, ["cert_signing", "crl_signing"], 87600, 8760],
    );
    const request = plan.resources.find((r) => r.type === "tls:index/certRequest:CertRequest")!;
    assert.deepEqual(request.inputs.dnsNames, databaseEndpointsAt(stack, jobs));
    for (const c of credentials.filter((x) => x.site === stack && x.generator === "random.RandomPassword")) {
      assert.ok(!text.includes(derived.secrets[c.id]!), c.id);
    }
  }
});

const PG_BIN = "/usr/lib/postgresql/15/bin";

test("PostgreSQL: the dump user's statements run twice; it reads, cannot write, and connects only verified over TLS", async (t) => {
  if (!requireTool(t, "runuser", "psql")) return;
  if (!existsSync(`${PG_BIN}/pg_ctl`)) return t.skip(`PostgreSQL 15 is not installed (${PG_BIN})`);
  if (process.getuid?.() !== 0) return t.skip("needs root (runs the server as postgres)");
  const dir = mkdtempSync(join(tmpdir(), "standort-dbuser-pg-"));
  chmodSync(dir, 0o755);
  const data = join(dir, "data");
  const port = String(20000 + Math.floor(Math.random() * 20000));
  const asPostgres = (...argv: string[]) => run(["runuser", "-u", "postgres", "--", ...argv], { timeoutMs: 60_000 });
  t.after(async () => {
    await asPostgres(`${PG_BIN}/pg_ctl`, "-D", data, "-m", "immediate", "stop");
    rmSync(dir, { recursive: true, force: true });
  });
  const file = (path: string) => content("helsinki", "hel-virt-1", path);
  for (const [name, text] of [
    ["server.crt", file(DATABASE_TLS.cert)],
    ["server.key", file(DATABASE_TLS.key)],
    ["dump-ca.crt", render("helsinki").kubernetesSecrets["standort-backup-git"]["database-ca.crt"]],
    ["backup.sql", file(backupUserSqlFile("git", "forge"))],
  ] as const)
    writeFileSync(join(dir, name), text, { mode: 0o600 });
  // The CronJobs' source addresses are the cluster's; here the test connects from 127.0.0.1.
  const hba = file(backupUserHbaFile("git", "forge")).replace(/ 10\.40\.4\.0\/22 /, " 127.0.0.1/32 ");
  writeFileSync(join(dir, "pg_hba.conf"), `local all postgres trust\n${hba}`);
  assert.equal((await run(["chown", "-R", "postgres:postgres", dir])).code, 0);
  const init = await asPostgres(`${PG_BIN}/initdb`, "-D", data, "-A", "trust", "-U", "postgres");
  assert.equal(init.code, 0, init.stderr);
  const conf = [
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    "ssl = on",
    `ssl_cert_file = '${join(dir, "server.crt")}'`,
    `ssl_key_file = '${join(dir, "server.key")}'`,
    `hba_file = '${join(dir, "pg_hba.conf")}'`,
  ];
  writeFileSync(join(data, "postgresql.auto.conf"), `${conf.join("\n")}\n`);
  const start = await asPostgres(`${PG_BIN}/pg_ctl`, "-D", data, "-w", "-l", join(dir, "log"), "start");
  assert.equal(start.code, 0, start.stderr + start.stdout);
  const admin = (sql: string, db = "postgres") =>
    asPostgres("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", port, "-d", db, "-c", sql);
  assert.equal((await admin("CREATE DATABASE forge")).code, 0);
  assert.equal((await admin("CREATE TABLE repos (name text); INSERT INTO repos VALUES ('standort')", "forge")).code, 0);
  for (const round of [1, 2]) {
    const r = await asPostgres(
      "psql",
      "-X",
      "-q",
      "-v",
      "ON_ERROR_STOP=1",
      "-h",
      dir,
      "-p",
      port,
      "-d",
      "postgres",
      "-f",
      join(dir, "backup.sql"),
    );
    assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
  }
  const password = derived.secrets[credentialIds.databaseBackup("git", "forge")]!;
  const dump = (sql: string, host = "forge.git.db.hel.standort.internal") =>
    run([
      "env",
      `PGPASSWORD=${password}`,
      "psql",
      "-X",
      "-At",
      "-v",
      "ON_ERROR_STOP=1",
      "-c",
      sql,
      `host=${host} hostaddr=127.0.0.1 port=${port} dbname=forge user=standort_backup sslmode=verify-full sslrootcert=${join(dir, "dump-ca.crt")}`,
    ]);
  const read = await dump("SELECT name FROM repos");
  assert.deepEqual([read.code, read.stdout.trim()], [0, "standort"], read.stderr);
  const write = await dump("INSERT INTO repos VALUES ('x')");
  assert.notEqual(write.code, 0);
  assert.match(write.stderr, /permission denied/);
  const wrongName = await dump("SELECT 1", "forge.git.db.fra.standort.internal");
  assert.notEqual(wrongName.code, 0, "a name the certificate does not carry is refused");
  const plain = await run([
    "env",
    `PGPASSWORD=${password}`,
    "psql",
    "-X",
    "-At",
    "-c",
    "SELECT 1",
    `host=127.0.0.1 port=${port} dbname=forge user=standort_backup sslmode=disable`,
  ]);
  assert.notEqual(plain.code, 0, "no connection without TLS");
});

test("MariaDB: the dump user's statements run twice and grant exactly the dump privileges", async (t) => {
  if (!requireTool(t, "mariadbd", "mariadb-install-db", "mariadb")) return;
  if (process.getuid?.() !== 0) return t.skip("needs root");
  const dir = mkdtempSync(join(tmpdir(), "standort-dbuser-maria-"));
  const socket = join(dir, "sock");
  const servers: ChildProcess[] = [];
  t.after(() => {
    for (const server of servers) server.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const install = await run(
    ["mariadb-install-db", "--no-defaults", `--datadir=${join(dir, "data")}`, "--user=root", "--auth-root-authentication-method=normal"],
    {
      timeoutMs: 120_000,
    },
  );
  assert.equal(install.code, 0, install.stderr);
  const server = spawn(
    "mariadbd",
    [
      "--no-defaults",
      `--datadir=${join(dir, "data")}`,
      `--socket=${socket}`,
      "--skip-networking",
      "--user=root",
      `--pid-file=${join(dir, "pid")}`,
    ],
    {
      stdio: "ignore",
    },
  );
  servers.push(server);
  const client = (sql: string) => run(["mariadb", "--no-defaults", `--socket=${socket}`, "-uroot", "-N", "-e", sql]);
  for (let i = 0; i < 100 && (await client("SELECT 1")).code !== 0; i++) await new Promise((r) => setTimeout(r, 200));
  assert.equal((await client("CREATE DATABASE postfixadmin")).code, 0);
  const sql = content("vienna", "vie-virt-1", backupUserSqlFile("mail", "postfixadmin"));
  for (const round of [1, 2]) {
    const r = await run(["mariadb", "--no-defaults", `--socket=${socket}`, "-uroot"], { input: sql });
    assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
  }
  const grants = await client("SHOW GRANTS FOR 'standort_backup'@'10.30.1.20'");
  assert.equal(grants.code, 0, grants.stderr);
  const lines = grants.stdout.trim().split("\n");
  assert.match(
    lines[0],
    /^GRANT USAGE ON \*\.\* TO `standort_backup`@`10\.30\.1\.20` IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}' REQUIRE SSL$/,
  );
  assert.deepEqual(lines.slice(1), [
    "GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON `postfixadmin`.* TO `standort_backup`@`10.30.1.20`",
    "GRANT SELECT ON `mysql`.`proc` TO `standort_backup`@`10.30.1.20`",
  ]);
  const accounts = await client("SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE User = 'standort_backup' ORDER BY Host");
  assert.deepEqual(accounts.stdout.trim().split("\n"), ["standort_backup@10.30.1.20", "standort_backup@10.30.1.21"]);
});
