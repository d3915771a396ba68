import test from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  FileCopyJob,
  MAX_FILE_INTERVAL_MINUTES,
  cronJobManifest,
  cronSchedule,
  fileIntervalMinutes,
  kubernetesName,
  planJobs,
  renderDatabaseReplication,
  renderSiteSystemdUnits,
  siteJobs,
  systemdCalendar,
} from "../lib/footprint/jobs";
import { example, withService, withSite } from "./fixtures/footprint/example";

const fileCopies = (jobs: ReturnType<typeof planJobs>) => jobs.filter((j): j is FileCopyJob => j.kind === "file-copy");

test("every file copy runs at least every 15 minutes and within its service's RPO", () => {
  const { footprint, sites } = example();
  const copies = fileCopies(planJobs(footprint, sites));
  assert.ok(copies.length > 0);
  for (const job of copies) {
    const service = footprint.services.find((s) => s.name === job.service)!;
    assert.ok(job.intervalMinutes <= MAX_FILE_INTERVAL_MINUTES, job.key);
    assert.ok(job.intervalMinutes <= service.recovery.rpoMinutes, job.key);
  }
  assert.deepEqual(
    copies.map((j) => [j.key, j.intervalMinutes, cronSchedule(j)]),
    [
      ["groupware-files-data-to-helsinki", 15, "*/15 * * * *"],
      ["git-files-repositories-to-frankfurt", 15, "*/15 * * * *"],
      ["git-files-repositories-to-vienna", 15, "*/15 * * * *"],
      ["webhosting-files-htdocs-to-frankfurt", 10, "*/10 * * * *"],
      ["webhosting-files-uploads-to-frankfurt", 10, "*/10 * * * *"],
      ["tickets-files-attachments-to-vienna", 15, "*/15 * * * *"],
      ["mail-files-dkim-to-karlsruhe", 1, "*/1 * * * *"],
      ["mail-files-vmail-to-karlsruhe", 5, "*/5 * * * *"],
    ],
  );
});

test("the file interval is min(15, RPO, site interval) for any RPO and site setting", () => {
  const { footprint, sites } = example();
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 10080 }), fc.integer({ min: 1, max: 15 }), (rpo, siteInterval) => {
      const site = withSite(sites, "frankfurt", (s) => ({
        ...s,
        storage: { ...s.storage, replicationIntervalMinutes: siteInterval },
      })).find((s) => s.name === "frankfurt")!;
      const service = { ...footprint.services[0], recovery: { rpoMinutes: rpo, rtoMinutes: 60 } };
      const interval = fileIntervalMinutes(service, site);
      assert.ok(interval <= 15 && interval <= rpo && interval <= siteInterval);
      assert.ok(interval === 15 || interval === rpo || interval === siteInterval);
    }),
    { numRuns: 200, seed: 15 },
  );
});

test("a cron schedule of */n never leaves a gap longer than n minutes, across the hour too", () => {
  for (let n = 1; n <= MAX_FILE_INTERVAL_MINUTES; n++) {
    const minutes = Array.from({ length: 60 }, (_, m) => m).filter((m) => m % n === 0);
    const gaps = minutes.map((m, i) => (i + 1 < minutes.length ? minutes[i + 1] - m : 60 - m + minutes[0]));
    assert.ok(Math.max(...gaps) <= n, `*/${n}`);
  }
});

test("jobs run where the data is written: copies and backups at the writer, replica settings at the copy", () => {
  const { footprint, sites } = example();
  assert.deepEqual(
    siteJobs(footprint, sites, "vienna").map((j) => [j.key, j.kind, j.runner]),
    [
      ["git-db-forge-from-helsinki", "database-replication", "systemd"],
      ["mail-backup-vie-stor-1", "backup", "systemd"],
      ["mail-backup-vie-stor-2", "backup", "systemd"],
      ["mail-db-postfixadmin-to-karlsruhe", "database-replication", "systemd"],
      ["mail-files-dkim-to-karlsruhe", "file-copy", "systemd"],
      ["mail-files-vmail-to-karlsruhe", "file-copy", "systemd"],
      ["tickets-db-tickets-from-karlsruhe", "database-replication", "systemd"],
      ["tickets-db-wiki-from-karlsruhe", "database-replication", "systemd"],
    ],
  );
  // Helsinki runs Kubernetes: its periodic jobs become CronJobs, not timers.
  const helsinki = siteJobs(footprint, sites, "helsinki");
  assert.ok(helsinki.every((j) => j.runner === "kubernetes"));
  assert.deepEqual(renderSiteSystemdUnits(helsinki), []);
});

test("backups go into both stores with the site's retention, two hours apart", () => {
  const { footprint, sites } = example();
  const backups = siteJobs(footprint, sites, "karlsruhe").filter((j) => j.kind === "backup");
  assert.deepEqual(
    backups.map((j) => (j.kind === "backup" ? [j.store, j.retention, systemdCalendar(j), cronSchedule(j)] : [])),
    [
      [{ host: "fkb-stor-1", address: "10.20.1.20" }, { daily: 30, weekly: 8, monthly: 12 }, "*-*-* 01:30:00", "30 1 * * *"],
      [{ host: "fkb-stor-2", address: "10.20.1.21" }, { daily: 30, weekly: 8, monthly: 12 }, "*-*-* 03:30:00", "30 3 * * *"],
    ],
  );
  const longer = withSite(sites, "karlsruhe", (s) => ({
    ...s,
    storage: { ...s.storage, backups: { daily: 45, weekly: 10, monthly: 24 } },
  }));
  const units = renderSiteSystemdUnits(siteJobs(footprint, longer, "karlsruhe"));
  const service = units.find((u) => u.path === "/etc/systemd/system/standort-tickets-backup-fkb-stor-2.service")!;
  assert.match(
    service.content,
    /^ExecStartPost=\/usr\/bin\/restic forget --tag tickets --keep-daily 45 --keep-weekly 10 --keep-monthly 24 --prune$/m,
  );
  assert.match(service.content, /^Environment=RESTIC_REPOSITORY=sftp:restic@10\.20\.1\.21:\/srv\/backup\/tickets$/m);
});

test("a file copy renders as a systemd service and timer for the storage hosts", () => {
  const { footprint, sites } = example();
  const units = renderSiteSystemdUnits(siteJobs(footprint, sites, "vienna"));
  assert.deepEqual(
    units.map((u) => u.path),
    [
      "/etc/systemd/system/standort-mail-backup-vie-stor-1.service",
      "/etc/systemd/system/standort-mail-backup-vie-stor-1.timer",
      "/etc/systemd/system/standort-mail-backup-vie-stor-2.service",
      "/etc/systemd/system/standort-mail-backup-vie-stor-2.timer",
      "/etc/systemd/system/standort-mail-files-dkim-to-karlsruhe.service",
      "/etc/systemd/system/standort-mail-files-dkim-to-karlsruhe.timer",
      "/etc/systemd/system/standort-mail-files-vmail-to-karlsruhe.service",
      "/etc/systemd/system/standort-mail-files-vmail-to-karlsruhe.timer",
    ],
  );
  assert.equal(
    units.find((u) => u.path.endsWith("standort-mail-files-vmail-to-karlsruhe.service"))!.content,
    [
      "# Generated by standort from sites/footprint.yaml and the site files: do not edit.",
      "# mail-files-vmail-to-karlsruhe: runs on the active member of vie-stor-1, vie-stor-2 at vienna.",
      "[Unit]",
      "Description=standort: copy mail/vmail to karlsruhe every 5 min",
      "Wants=network-online.target",
      "After=network-online.target",
      "ConditionPathExists=/run/standort/storage-active",
      "",
      "[Service]",
      "Type=oneshot",
      "Nice=10",
      "IOSchedulingClass=idle",
      'ExecStart=/usr/bin/rsync --archive --hard-links --acls --xattrs --numeric-ids --delete --delay-updates --partial-dir=.rsync-partial --timeout=300 "--rsh=ssh -i /etc/standort/replication/id_ed25519 -o UserKnownHostsFile=/etc/standort/replication/known_hosts -o BatchMode=yes -o StrictHostKeyChecking=yes" /srv/mail/vmail/ root@10.20.1.5:/srv/mail/vmail/',
      "",
    ].join("\n"),
  );
  assert.equal(
    units.find((u) => u.path.endsWith("standort-mail-files-vmail-to-karlsruhe.timer"))!.content,
    [
      "# Generated by standort from sites/footprint.yaml and the site files: do not edit.",
      "[Unit]",
      "Description=standort: copy mail/vmail to karlsruhe every 5 min",
      "",
      "[Timer]",
      "OnCalendar=*-*-* *:00/05:00",
      "AccuracySec=10s",
      "Unit=standort-mail-files-vmail-to-karlsruhe.service",
      "",
      "[Install]",
      "WantedBy=timers.target",
      "",
    ].join("\n"),
  );
});

test("databases replicate continuously: streaming for postgres, binlog for mariadb, both ends rendered", () => {
  const { footprint, sites } = example();
  const jobs = planJobs(footprint, sites).filter((j) => j.kind === "database-replication");
  for (const job of jobs)
    assert.ok(
      job.kind === "database-replication" && (job.method === "streaming" ? job.engine === "postgres" : job.engine === "mariadb"),
      job.key,
    );
  const replica = jobs.find((j) => j.key === "groupware-db-groupware-from-frankfurt")!;
  assert.ok(replica.kind === "database-replication");
  const text = renderDatabaseReplication(replica).content;
  assert.match(
    text,
    /^primary_conninfo = 'host=groupware\.groupware\.db\.fra\.standort\.internal port=5432 user=replicator passfile=\/etc\/standort\/databases\/pgpass sslmode=verify-full application_name=helsinki'$/m,
  );
  assert.match(text, /^primary_slot_name = 'groupware_groupware_helsinki'$/m);
  assert.match(text, /^hot_standby = on$/m);
  const source = jobs.find((j) => j.key === "webhosting-db-sites-to-frankfurt")!;
  assert.ok(source.kind === "database-replication");
  const sourceText = renderDatabaseReplication(source).content;
  assert.match(sourceText, /^server_id = 41600$/m);
  assert.match(sourceText, /^log_bin = sites-bin$/m);
  // The replication user may connect from the peer's supernet only.
  assert.match(sourceText, /'replicator'@'10\.10\.0\.0\/255\.255\.0\.0'/);
});

test("a periodic dump is never planned as replication", () => {
  const { footprint, sites } = example();
  const dumped = withService(footprint, "mail", (s) => ({
    ...s,
    data: { ...s.data, databases: [{ name: "postfixadmin", engine: "mariadb", replication: "dump" }] },
  }));
  assert.deepEqual(
    planJobs(dumped, sites).filter((j) => j.service === "mail" && j.kind === "database-replication"),
    [],
  );
});

test("CronJob manifests carry the RPO schedule and never overlap runs", () => {
  const { footprint, sites } = example();
  const job = siteJobs(footprint, sites, "helsinki").find((j) => j.key === "webhosting-files-uploads-to-frankfurt")!;
  assert.ok(job.kind === "file-copy");
  const manifest = cronJobManifest(job, "standort-replication");
  assert.equal(manifest.metadata.name, "webhosting-files-uploads-to-frankfurt");
  assert.equal(manifest.spec.schedule, "*/10 * * * *");
  assert.equal(manifest.spec.concurrencyPolicy, "Forbid");
  const pod = (manifest.spec.jobTemplate as { spec: { template: { spec: { volumes: unknown[] } } } }).spec.template.spec;
  assert.deepEqual(pod.volumes, [
    { name: "source", nfs: { server: "10.40.2.5", path: "/srv/web/uploads", readOnly: true } },
    { name: "ssh", secret: { secretName: "standort-replication-ssh", defaultMode: 0o400 } },
  ]);
});

test("Kubernetes names stay within 52 characters and stable", () => {
  assert.equal(kubernetesName("groupware-files-data-to-helsinki"), "groupware-files-data-to-helsinki");
  const long = "a-very-long-service-name-for-tests-files-some-tree-to-frankfurt";
  const short = kubernetesName(long);
  assert.equal(short.length <= 52, true);
  assert.equal(short, kubernetesName(long));
  assert.match(short, /^a-very-long-service-name-for-tests-files-so-[0-9a-f]{8}$/);
});

test("planning is deterministic: the same inputs give the same bytes", () => {
  const first = example();
  const second = example();
  assert.equal(JSON.stringify(planJobs(first.footprint, first.sites)), JSON.stringify(planJobs(second.footprint, second.sites)));
});
