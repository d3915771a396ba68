// Promotion and migration as reviewed changes: editing one service in
// sites/footprint.yaml changes, in every site's plan diff, that service's
// resources at the sites it touches and nothing else.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { planStack } from "../lib/preview/run-stack";
import { FileChange, PlanDiff, PlanSnapshot, diffPlans, fileChanges, toSnapshot } from "../lib/preview/plan";
import { tempSites } from "./helpers/sites";

const LOCATIONS = ["frankfurt", "helsinki", "karlsruhe", "vienna"] as const;
const sites = tempSites();
after(() => sites.dispose());

async function planAll(): Promise<Record<string, PlanSnapshot>> {
  const plans: Record<string, PlanSnapshot> = {};
  // One at a time: the mock runtime is global to the process.
  for (const location of LOCATIONS) plans[location] = toSnapshot(await planStack(location, { sitesDir: sites.dir }));
  return plans;
}

function editFootprint(from: string, to: string): void {
  const path = join(sites.dir, "footprint.yaml");
  const text = readFileSync(path, "utf8");
  assert.ok(text.includes(from), `footprint.yaml holds ${JSON.stringify(from)}`);
  writeFileSync(path, text.replace(from, to));
}

const last = (urn: string) => urn.split("::").pop()!;

/** The service a change edits, and where it lives: the sites whose plan shows it before or after, and its databases. */
interface Scope {
  readonly service: string;
  readonly sites: ReadonlyArray<string>;
  readonly databases: ReadonlyArray<string>;
  readonly publicName: string;
}

function scopeOf(service: string, ...plans: Array<Record<string, PlanSnapshot>>): Scope {
  const sitesOfService = LOCATIONS.filter((l) =>
    plans.some((p) => (p[l].outputs.services as Record<string, unknown> | undefined)?.[service] !== undefined),
  );
  const entry = loadFootprint(sites.dir).footprint.services.find((s) => s.name === service);
  assert.ok(entry, `${service} is a service of the footprint`);
  return { service, sites: sitesOfService, databases: entry.data.databases.map((d) => d.name), publicName: entry.publicName };
}

/** Lines only one side of a file change has (its order aside), as `onlyPortLines` compares them. */
function changedLines(change: FileChange): string[] {
  const a = (change.before ?? "").split("\n");
  const b = (change.after ?? "").split("\n");
  return [...a.filter((l) => !b.includes(l)), ...b.filter((l) => !a.includes(l))];
}

/** `<database>.<service>.db.<site code>.standort.internal`: a name only the service's database endpoints carry. */
const serviceDatabaseName = (service: string) => new RegExp(`^[a-z0-9-]+\\.${service}\\.db\\.[a-z]+\\.standort\\.internal$`);

/** Names one side has and the other not; explained when there are some and each is one of the service's database names. */
function onlyServiceDatabaseNames(before: ReadonlyArray<string>, after: ReadonlyArray<string>, service: string): boolean {
  const moved = [...before.filter((n) => !after.includes(n)), ...after.filter((n) => !before.includes(n))];
  return moved.length > 0 && moved.every((n) => serviceDatabaseName(service).test(n));
}

/**
 * A database server certificate re-issued for the service's endpoints: the same certificate (subject, issuer,
 * serial, validity) but for the names that the site hosts or stops hosting for the service's databases.
 */
function certificateForServiceNames(change: FileChange, service: string): boolean {
  if (change.kind !== "changed") return false;
  try {
    const [a, b] = [change.before!, change.after!].map((pem) => new X509Certificate(pem));
    const same = (["subject", "issuer", "serialNumber", "validFrom", "validTo"] as const).every((k) => a[k] === b[k]);
    const names = (c: X509Certificate) => (c.subjectAltName ?? "").split(", ").map((n) => n.replace(/^DNS:/, ""));
    return same && onlyServiceDatabaseNames(names(a), names(b), service);
  } catch {
    return false; // not a certificate on both sides (a placeholder): not explained
  }
}

/**
 * A zone file of the name servers every site's proxies run: each serves every zone, so a change to where a
 * service is answered edits the zone files at every site, not only the service's. Explained when the file
 * changes (never appears or goes) and every changed line is the SOA (its serial is a digest of the records) or
 * names the service (its standby names, its public name and the comments above them), with at least one such
 * record line changed.
 */
function dnsZoneFile(change: FileChange, scope: Scope): boolean {
  if (!/^[a-z]+-cfg-[a-z]+-proxy-\d+-tx$/.test(change.resource) || !change.path.startsWith("/etc/powerdns/zones/")) return false;
  if (change.kind !== "changed") return false;
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const namesService = new RegExp(`(\\b${scope.service}\\b|^${escape(scope.publicName)}\\.)`);
  const soa = (l: string) => /\tIN\tSOA\t/.test(l);
  const lines = changedLines(change);
  return lines.some((l) => !soa(l) && namesService.test(l)) && lines.every((l) => soa(l) || namesService.test(l));
}

/** The alert blocks (`- alert:` up to the next) of a rules file, and the text before the first. */
function alertBlocks(text: string): string[] {
  return text.split(/\n(?=\s*- alert: )/);
}

/** A rules file whose only changed blocks are alerts labelled `service: <service>`, with some changed. */
function onlyServiceAlerts(change: FileChange, service: string): boolean {
  const [a, b] = [alertBlocks(change.before ?? ""), alertBlocks(change.after ?? "")];
  const moved = [...a.filter((x) => !b.includes(x)), ...b.filter((x) => !a.includes(x))];
  const label = new RegExp(`^\\s*- alert: [\\s\\S]*\\n\\s+service: ${service}\\n`);
  return moved.length > 0 && moved.every((block) => label.test(block + "\n"));
}

/**
 * The site's replication machinery, as far as the service's part in it goes: files on the storage and
 * virtualization hosts of the service's sites that exist, or read as they do, because of which sites write,
 * copy, receive or keep backups of what. A service's mode or step decides whether its site writes (then it has
 * a backup key and backup settings, and its copies need the source guard, lsyncd and a replication key per
 * target), receives (then its storage sshd admits replication keys) and which role it has per service. So a
 * promotion or migration step may switch these on, off, or change them; only on those hosts, only these paths,
 * and where a shared file changes (not just appears or goes), only in lines naming the service or one of its
 * sites.
 */
function replicationMachineryFile(change: FileChange, scope: Scope): boolean {
  const host = new RegExp(`^(${scope.sites.join("|")})-cfg-[a-z]+-(stor|virt)-\\d+-tx$`).exec(change.resource);
  if (!host) return false;
  const namesScope = new RegExp(`\\b(${[scope.service, ...scope.sites].join("|")})\\b`);
  const linesNameScope = change.kind !== "changed" || changedLines(change).every((l) => namesScope.test(l));
  if (host[2] === "virt") {
    // The replicas' libpq password file (secret): present while the site replicates a PostgreSQL database.
    if (change.path === "/etc/standort/databases/pgpass") return change.kind !== "changed";
    // The database server certificate names every database endpoint the site hosts, the service's among them.
    if (change.path === "/etc/standort/databases/tls/server.crt") return certificateForServiceNames(change, scope.service);
    return false;
  }
  // The alerts on the jobs the site runs: only the alerts labelled with the service come or go.
  if (change.path === "/etc/prometheus/rules/standort.rules.yml")
    return change.kind === "changed" && onlyServiceAlerts(change, scope.service);
  // The site's role for this service (primary: it sends, standby: it receives), as both guards read it.
  if (change.path === `/etc/standort/replication/roles/${scope.service}`) return true;
  // The storage sshd admits the replication keys (the `Match User root` block) while the site receives pushes.
  if (change.path === "/etc/ssh/sshd_config.d/standort-storage.conf")
    return (
      change.kind === "changed" &&
      changedLines(change).every((l) => l.startsWith("#") || l === "Match User root" || l.includes("/etc/standort/replication/"))
    );
  const storagePaths = [
    // Backups of what the site writes: the service's restic password per repository, its MariaDB dump settings,
    // and the site's backup identity and dump settings, which exist while the site writes any service.
    ...scope.databases.map((d) => `/etc/standort/backup/${d}.cnf`),
    ...["id_ed25519", "known_hosts", "database-ca.crt", "pg_service.conf", "pgpass"].map((f) => `/etc/standort/backup/${f}`),
    "/etc/ssh/ssh_config.d/standort-backup.conf",
    // The writing sites' backup keys the store admits.
    "/etc/standort/sshd/restic_authorized_keys",
    // Replication keys: to each target site (`id_ed25519-<site>` past the first), their pins, the keys admitted,
    // and the trees the site replicates either way.
    ...["id_ed25519", ...scope.sites.map((s) => `id_ed25519-${s}`), "known_hosts", "authorized_keys", "trees"].map(
      (f) => `/etc/standort/replication/${f}`,
    ),
    // The guard programs (the source guard only where the site sends) and the continuous copy of what it sends.
    "/usr/local/sbin/standort-replicate",
    "/usr/local/sbin/standort-replica-receive",
    "/etc/lsyncd/standort.conf.lua",
    "/etc/systemd/system/standort-lsyncd.service",
    "/etc/systemd/system/standort-lsyncd.path",
    // The record of each job's last run (for the alerts), present while the site's storage hosts run jobs.
    "/usr/local/lib/standort/job-record",
    "/etc/systemd/system/standort-job-failed@.service",
  ];
  const servicePassword = change.path.startsWith(`/etc/standort/backup/${scope.service}.`) && change.path.endsWith(".password");
  return (servicePassword || storagePaths.includes(change.path)) && linesNameScope;
}

/**
 * Resources of the same machinery, in the stacks of the service's sites: the credentials whose only users are
 * the service's paths (a site's backup key exists while it writes; a replication key per source and target site
 * while copies go that way), a database server certificate request whose names change only by the service's
 * endpoints. (The replication keys are storage host files at every site, `replicationMachineryFile`.)
 */
function replicationMachineryResource(urn: string, diff: PlanDiff, before: PlanSnapshot, after: PlanSnapshot, scope: Scope): boolean {
  const stack = after.stack;
  if (!scope.sites.includes(stack)) return false;
  const type = urn.split("::")[2];
  const name = last(urn);
  const changes = diff.changed.find((c) => c.urn === urn)?.changes;
  const sitesPattern = scope.sites.join("|");
  if (type.startsWith("standort:footprint:ReplicationCredentials$") && name.startsWith(`${stack}-credentials-`)) {
    const id = name.slice(`${stack}-credentials-`.length);
    if (new RegExp(`^(backup-ssh-(${sitesPattern})|replication-ssh-(${sitesPattern})-to-(${sitesPattern}))$`).test(id))
      return changes === undefined; // generated or dropped, never edited
    if (type.endsWith("$tls:index/certRequest:CertRequest") && /^db-tls-server-[a-z0-9-]+-request$/.test(id) && changes) {
      const dnsNames = (plan: PlanSnapshot) => (plan.resources.find((r) => r.urn === urn)?.inputs.dnsNames ?? []) as string[];
      return (
        changes.every((c) => /^inputs\.dnsNames\[\d+\]$/.test(c.path)) &&
        onlyServiceDatabaseNames(dnsNames(before), dnsNames(after), scope.service)
      );
    }
    return false;
  }
  return false;
}

/**
 * Everything a change touches, classified at the level of files: the
 * service's own files (jobs, database settings named after it), the proxies'
 * HAProxy file (its backends), packet filters whose only changed lines
 * are the app-services port set (and the ruleset's digest stamp), and the
 * replication machinery of the service's sites as far as the service's part
 * in it goes (`replicationMachineryFile`, `replicationMachineryResource`,
 * including the alerts on its jobs), and the name servers' zone files in the
 * service's records only (`dnsZoneFile`).
 * The host transactions and their confirmations change whenever one of their
 * files does. Anything else is returned as unexplained.
 */
function unexplained(diff: PlanDiff, before: PlanSnapshot, after: PlanSnapshot, scope: Scope): string[] {
  const { service } = scope;
  const onlyPortLines = (change: FileChange) => {
    const changed = changedLines(change).filter((l) => !/^\tcomment "standort [0-9a-f]+"$/.test(l));
    return changed.length > 0 && changed.every((l) => /comment "(dmz|internet)-to-(app|proxy)-/.test(l) || /app-services/.test(l));
  };
  const files = fileChanges(before, after)
    .filter((c) => {
      if (c.path.includes(`-${service}-`) || c.path.includes(`/${service}-`)) return false;
      // The service's own instances, and the files that list every service of the site (proxy and ingress
      // routing, the ingress's fallback certificate names, the storage exports).
      if (c.path.startsWith(`/etc/standort/compose/${service}/`) || c.path.startsWith(`/etc/standort/compose/${service}-ro/`)) return false;
      if (c.path.startsWith(`/etc/standort/secrets/${service}/`)) return false;
      if (c.path === "/etc/haproxy/haproxy.cfg" || c.path === "/usr/local/sbin/standort-ingress-cert") return false;
      if (c.path === "/etc/ganesha/ganesha.conf") return false;
      if (c.path === "/etc/nftables.conf" && onlyPortLines(c)) return false;
      if (replicationMachineryFile(c, scope)) return false;
      if (dnsZoneFile(c, scope)) return false;
      return true;
    })
    .map((c) => `${c.resource}: ${c.kind} ${c.path}`);
  // Named after the service: `-<service>-` inside the name, or `-<service>` at its end (a Secret per service).
  const ownName = (name: string) => name.includes(`-${service}-`) || name.endsWith(`-${service}`);
  const touched = [...diff.added, ...diff.removed, ...diff.changed.map((c) => c.urn)].filter(
    (urn) => !/-(tx|confirm)$/.test(last(urn)) && !ownName(last(urn)) && !replicationMachineryResource(urn, diff, before, after, scope),
  );
  return [...touched, ...files];
}

test("promoting one service changes that service's role at both of its sites and nothing else", async () => {
  const before = await planAll();
  editFootprint(
    "primary: vienna\n    standby: karlsruhe\n    mode: standby",
    "primary: vienna\n    standby: karlsruhe\n    mode: promoted",
  );
  const promoted = await planAll();
  try {
    const mail = scopeOf("mail", before, promoted);
    assert.deepEqual(mail.sites, ["karlsruhe", "vienna"]);
    for (const location of ["frankfurt", "helsinki"]) {
      // Only its name servers' zone files change (every site serves every zone), in mail's records only.
      const diff = diffPlans(before[location], promoted[location]);
      assert.deepEqual([diff.added, diff.removed, diff.outputs], [[], [], []], `${location} adds, removes and outputs nothing new`);
      assert.ok(
        diff.changed.every((c) => /-cfg-[a-z]+-proxy-\d+-(tx|confirm)$/.test(last(c.urn))),
        `${location} changes only its proxies' host transactions: ${diff.changed.map((c) => last(c.urn)).join(", ")}`,
      );
      const files = fileChanges(before[location], promoted[location]);
      assert.ok(files.length > 0, `${location}'s name servers learn where mail is answered now`);
      assert.deepEqual(
        files.filter((c) => !dnsZoneFile(c, mail)).map((c) => `${c.resource}: ${c.kind} ${c.path}`),
        [],
        `${location} is otherwise untouched`,
      );
    }
    const vienna = diffPlans(before.vienna, promoted.vienna);
    const karlsruhe = diffPlans(before.karlsruhe, promoted.karlsruhe);
    assert.deepEqual(unexplained(vienna, before.vienna, promoted.vienna, mail), []);
    assert.deepEqual(unexplained(karlsruhe, before.karlsruhe, promoted.karlsruhe, mail), []);
    // The role, seen from both sites.
    const role = (d: PlanDiff) => d.outputs.find((c) => c.path === "services.mail.role");
    assert.deepEqual(role(vienna), { path: "services.mail.role", before: "primary", after: "standby" });
    assert.deepEqual(role(karlsruhe), { path: "services.mail.role", before: "standby", after: "promoted" });
    assert.ok([...vienna.outputs, ...karlsruhe.outputs].every((c) => /^(services\.mail\.|proxy\.services)/.test(c.path)));
    // Replication reverses: vienna stops copying mail to karlsruhe, karlsruhe starts copying to vienna.
    const timerChange = (location: "vienna" | "karlsruhe", resource: string, path: string) =>
      fileChanges(before[location], promoted[location]).find((c) => c.resource === resource && c.path === path)?.kind;
    assert.equal(
      timerChange("vienna", "vienna-cfg-vie-stor-1-tx", "/etc/systemd/system/standort-mail-files-vmail-to-karlsruhe.timer"),
      "removed",
    );
    assert.equal(
      timerChange("karlsruhe", "karlsruhe-cfg-fkb-stor-1-tx", "/etc/systemd/system/standort-mail-files-vmail-to-vienna.timer"),
      "added",
    );
  } finally {
    editFootprint(
      "primary: vienna\n    standby: karlsruhe\n    mode: promoted",
      "primary: vienna\n    standby: karlsruhe\n    mode: standby",
    );
  }
});

test("moving a service one step (writes switch to the new site) changes only that service's resources", async () => {
  const before = await planAll();
  editFootprint("step: switch-reads", "step: switch-writes");
  const moved = await planAll();
  try {
    const git = scopeOf("git", before, moved);
    // Helsinki and vienna (source and target), frankfurt (the standby until now) and karlsruhe (the standby from now).
    assert.deepEqual(git.sites, LOCATIONS);
    for (const location of LOCATIONS) {
      const diff = diffPlans(before[location], moved[location]);
      assert.deepEqual(unexplained(diff, before[location], moved[location], git), [], location);
      assert.ok(
        diff.outputs.every((c) => /^(services\.git(\.|$)|proxy\.services)/.test(c.path)),
        `${location}: ${diff.outputs.map((c) => c.path).join(", ")}`,
      );
    }
    // Writes now land in vienna: its role output says so; helsinki becomes the source that only reads.
    const role = (location: string) => moved[location].outputs.services as Record<string, { role: string }>;
    assert.equal(role("vienna").git.role, "migration-target");
    assert.equal(role("helsinki").git.role, "migration-source");
    const vienna = diffPlans(before.vienna, moved.vienna);
    assert.ok(
      vienna.outputs.some((c) => /^services\.git\.names\[\d+\]\.writes$/.test(c.path) && c.after === true),
      JSON.stringify(vienna.outputs),
    );
  } finally {
    editFootprint("step: switch-writes", "step: switch-reads");
  }
});
