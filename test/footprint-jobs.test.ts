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
  renderSiteSystemdUnits,
  siteJobs,
  systemdCalendar,
} from "../lib/footprint/jobs";
import { renderDatabaseFiles } from "../lib/footprint/database-files";
import {
  LSYNCD_CONFIG,
  LSYNCD_DELAY_SECONDS,
  lsyncdRsyncOptions,
  lsyncdRsyncWrapper,
  renderLsyncdConfig,
  renderLsyncdPathUnit,
  renderLsyncdUnit,
} from "../lib/footprint/lsyncd";
import { footprintHostFiles } from "../lib/footprint/site-files";
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

test("jobs run where the data is written: copies and backups at the writer, receiving ends and replica settings at the copy", () => {
  const { footprint, sites } = example();
  assert.deepEqual(
    siteJobs(footprint, sites, "vienna").map((j) => [j.key, j.kind, j.runner]),
    [
      ["git-db-forge-from-helsinki", "database-replication", "systemd"],
      ["git-files-repositories-from-helsinki", "file-receive", "systemd"],
      ["mail-backup-offsite-karlsruhe", "backup", "systemd"],
      ["mail-backup-vie-stor-1", "backup", "systemd"],
      ["mail-backup-vie-stor-2", "backup", "systemd"],
      ["mail-db-postfixadmin-to-karlsruhe", "database-replication", "systemd"],
      ["mail-files-dkim-to-karlsruhe", "file-copy", "systemd"],
      ["mail-files-vmail-to-karlsruhe", "file-copy", "systemd"],
      ["tickets-db-tickets-from-karlsruhe", "database-replication", "systemd"],
      ["tickets-db-wiki-from-karlsruhe", "database-replication", "systemd"],
      ["tickets-files-attachments-from-karlsruhe", "file-receive", "systemd"],
    ],
  );
  // Every copy has its receiving end at the target, on the target's storage pair, for the same tree.
  const all = planJobs(footprint, sites);
  for (const copy of fileCopies(all)) {
    const end = all.find(
      (j) => j.kind === "file-receive" && j.service === copy.service && j.tree === copy.tree && j.site === copy.target.site,
    );
    assert.ok(end && end.kind === "file-receive", copy.key);
    assert.deepEqual([end.path, end.source.site, end.tunnel], [copy.target.path, copy.site, copy.tunnel], copy.key);
  }
  // Helsinki runs Kubernetes: its backups (and database settings) are Kubernetes', its file copies and receiving ends
  // run on its storage hosts like everywhere, so its timers are the four copies' and no backup's.
  const helsinki = siteJobs(footprint, sites, "helsinki");
  for (const j of helsinki) {
    assert.equal(j.runner, j.kind === "file-copy" || j.kind === "file-receive" ? "systemd" : "kubernetes", j.key);
  }
  assert.deepEqual(
    renderSiteSystemdUnits(helsinki).map((f) => f.path),
    [
      "git-files-repositories-to-frankfurt",
      "git-files-repositories-to-vienna",
      "webhosting-files-htdocs-to-frankfurt",
      "webhosting-files-uploads-to-frankfurt",
    ].flatMap((key) => [`/etc/systemd/system/standort-${key}.service`, `/etc/systemd/system/standort-${key}.timer`]),
  );
});

test("backups go into both stores and one off-site store at the standby site, with the site's retention, two hours apart", () => {
  const { footprint, sites } = example();
  const backups = siteJobs(footprint, sites, "karlsruhe").filter((j) => j.kind === "backup");
  const retention = { daily: 30, weekly: 8, monthly: 12 };
  assert.deepEqual(
    backups.map((j) => (j.kind === "backup" ? [j.key, j.store, j.repositoryPath, j.retention, systemdCalendar(j), cronSchedule(j)] : [])),
    [
      [
        "tickets-backup-fkb-stor-1",
        { placement: "local", site: "karlsruhe", host: "fkb-stor-1", address: "10.20.1.20" },
        "/var/lib/standort/backup/tickets",
        retention,
        "*-*-* 01:30:00",
        "30 1 * * *",
      ],
      [
        "tickets-backup-fkb-stor-2",
        { placement: "local", site: "karlsruhe", host: "fkb-stor-2", address: "10.20.1.21" },
        "/var/lib/standort/backup/tickets",
        retention,
        "*-*-* 03:30:00",
        "30 3 * * *",
      ],
      // The standby site's storage VIP, through the tunnel; the repository is named after the writing site.
      [
        "tickets-backup-offsite-vienna",
        { placement: "offsite", site: "vienna", host: "vie-storage", address: "10.30.1.5" },
        "/srv/backup/offsite/karlsruhe/tickets",
        retention,
        "*-*-* 05:30:00",
        "30 5 * * *",
      ],
    ],
  );
  // Every writing site keeps one copy off-site, at the service's standby, and no two sites share a repository there.
  const all = planJobs(footprint, sites).filter((j) => j.kind === "backup");
  const offsite = all.filter((j) => j.kind === "backup" && j.store.placement === "offsite");
  assert.equal(offsite.length, footprint.services.length);
  for (const j of offsite) assert.ok(j.kind === "backup" && j.store.site !== j.site, j.key);
  const repositories = all.map((j) => (j.kind === "backup" ? `${j.store.address}:${j.repositoryPath}` : ""));
  assert.equal(new Set(repositories).size, repositories.length, "one repository per copy");
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
  assert.match(service.content, /^Environment=RESTIC_REPOSITORY=sftp:restic@10\.20\.1\.21:\/var\/lib\/standort\/backup\/tickets$/m);
  assert.match(service.content, /^Environment=RESTIC_PASSWORD_FILE=\/etc\/standort\/backup\/tickets\.fkb-stor-2\.password$/m);
  const offsiteUnit = units.find((u) => u.path === "/etc/systemd/system/standort-tickets-backup-offsite-vienna.service")!;
  assert.match(offsiteUnit.content, /^Environment=RESTIC_REPOSITORY=sftp:restic@10\.30\.1\.5:\/srv\/backup\/offsite\/karlsruhe\/tickets$/m);
  assert.match(
    offsiteUnit.content,
    /^ExecStartPost=\/usr\/bin\/restic forget --tag tickets --keep-daily 45 --keep-weekly 10 --keep-monthly 24 --prune$/m,
  );
});

test("a file copy renders as a systemd service and timer for the storage hosts", () => {
  const { footprint, sites } = example();
  const units = renderSiteSystemdUnits(siteJobs(footprint, sites, "vienna"));
  assert.deepEqual(
    units.map((u) => u.path),
    [
      "/etc/systemd/system/standort-mail-backup-offsite-karlsruhe.service",
      "/etc/systemd/system/standort-mail-backup-offsite-karlsruhe.timer",
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
      "OnFailure=standort-job-failed@%n.service",
      "",
      "[Service]",
      "Type=oneshot",
      "Nice=10",
      "IOSchedulingClass=idle",
      "StateDirectory=standort/replication",
      'ExecStart=/usr/local/sbin/standort-replicate --job mail-files-vmail-to-karlsruhe --service mail --tree vmail --source /srv/mail/vmail --max-delete-percent 10 --max-delete-floor 20 -- /usr/bin/rsync --archive --hard-links --acls --xattrs --numeric-ids --delete --delay-updates --timeout=300 "--rsh=ssh -i /etc/standort/replication/id_ed25519 -o UserKnownHostsFile=/etc/standort/replication/known_hosts -o BatchMode=yes -o StrictHostKeyChecking=yes" /srv/mail/vmail/ root@10.20.1.5:/srv/mail/vmail/',
      "ExecStartPost=/usr/local/lib/standort/job-record success standort-mail-files-vmail-to-karlsruhe.service",
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
  const replicaFiles = renderDatabaseFiles(replica, "pw");
  // A PostgreSQL standby needs no statements: only its settings, and no secret among them.
  assert.deepEqual(
    replicaFiles.map((f) => [f.path, f.secret]),
    [["/etc/standort/databases/groupware-db-groupware-from-frankfurt.conf", false]],
  );
  const text = replicaFiles[0].content;
  assert.match(
    text,
    /^primary_conninfo = 'host=groupware\.groupware\.db\.fra\.standort\.internal port=5432 user=replicator passfile=\/etc\/standort\/databases\/pgpass sslmode=verify-full sslrootcert=\/etc\/standort\/databases\/tls\/ca\.crt application_name=helsinki'$/m,
  );
  assert.match(text, /^primary_slot_name = 'groupware_groupware_helsinki'$/m);
  assert.match(text, /^hot_standby = on$/m);
  const source = jobs.find((j) => j.key === "webhosting-db-sites-to-frankfurt")!;
  assert.ok(source.kind === "database-replication");
  const [cnf, sql] = renderDatabaseFiles(source, "p'w");
  assert.equal(cnf.path, "/etc/standort/databases/webhosting-db-sites-to-frankfurt.cnf");
  assert.match(cnf.content, /^server_id = 41600$/m);
  assert.match(cnf.content, /^log_bin = sites-bin$/m);
  // The replication user may connect from the peer's supernet only; the password makes the statements a secret file.
  assert.deepEqual([sql.path, sql.mode, sql.secret], ["/etc/standort/databases/webhosting-db-sites-to-frankfurt.sql", "0600", true]);
  assert.match(sql.content, /^CREATE USER IF NOT EXISTS 'replicator'@'10\.10\.0\.0\/255\.255\.0\.0' IDENTIFIED BY 'p''w' REQUIRE SSL;$/m);
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

test("CronJob manifests carry the backup's schedule and never overlap runs", () => {
  const { footprint, sites } = example();
  const job = siteJobs(footprint, sites, "helsinki").find((j) => j.key === "webhosting-backup-hel-stor-1")!;
  assert.ok(job.kind === "backup");
  const manifest = cronJobManifest(job, "standort-replication");
  assert.equal(manifest.metadata.name, "webhosting-backup-hel-stor-1");
  assert.equal(manifest.spec.schedule, `${job.at.minute} 1 * * *`);
  assert.equal(manifest.spec.concurrencyPolicy, "Forbid");
  const pod = (manifest.spec.jobTemplate as { spec: { template: { spec: { volumes: Array<{ name: string }> } } } }).spec.template.spec;
  // No file copy mounts the replication key any more: the backup's own Secret and its trees over NFS.
  assert.deepEqual(
    pod.volumes.map((v) => v.name),
    ["dumps", "secrets", "tree-htdocs", "tree-uploads"],
  );
});

test("a Kubernetes site's off-site backup is a CronJob into the standby site's store, with its own password", () => {
  const { footprint, sites } = example();
  const job = siteJobs(footprint, sites, "helsinki").find((j) => j.key === "git-backup-offsite-frankfurt")!;
  assert.ok(job.kind === "backup");
  const manifest = cronJobManifest(job, "standort-replication");
  assert.equal(manifest.spec.schedule, `${job.at.minute} 5 * * *`);
  const pod = (manifest.spec.jobTemplate as { spec: { template: { spec: { containers: Array<{ env: unknown[] }> } } } }).spec.template.spec;
  assert.deepEqual(pod.containers[0].env, [
    { name: "RESTIC_REPOSITORY", value: "sftp:restic@10.10.1.5:/srv/backup/offsite/helsinki/git" },
    { name: "RESTIC_PASSWORD_FILE", value: "/etc/standort/backup/restic.fra-storage.password" },
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

test("continuous replication: one lsyncd sync per file copy of a site, with the timer's rsync flags", () => {
  const { footprint, sites } = example();
  const jobs = planJobs(footprint, sites);
  const copies = fileCopies(jobs).filter((j) => j.site === "vienna");
  const vmail = copies.find((j) => j.key === "mail-files-vmail-to-karlsruhe")!;
  // The timer's command line, translated flag by flag: named options where lsyncd has them, _extra for the rest.
  assert.deepEqual(lsyncdRsyncOptions(vmail), {
    flags: ["archive", "hard_links", "acls", "xattrs"],
    timeout: 300,
    rsh: "ssh -i /etc/standort/replication/id_ed25519 -o UserKnownHostsFile=/etc/standort/replication/known_hosts -o BatchMode=yes -o StrictHostKeyChecking=yes",
    delete: true,
    extra: ["--numeric-ids", "--delay-updates"],
    source: "/srv/mail/vmail",
    target: "root@10.20.1.5:/srv/mail/vmail/",
  });
  const config = renderLsyncdConfig("vienna", copies);
  // Each sync only where its tree is there and marked: a missing tree must not end lsyncd for every other one.
  assert.equal((config.match(/^if marked\('[^']+'\) then sync \{$/gm) ?? []).length, copies.length);
  assert.match(config, /^local function marked\(tree\)\n\tlocal f = io\.open\(tree \.\. "\/\.standort-tree", "r"\)$/m);
  assert.ok(LSYNCD_DELAY_SECONDS > 0 && LSYNCD_DELAY_SECONDS < 60, "a few seconds, well inside the 60 s target");
  assert.ok(
    config.includes(
      [
        "if marked('/srv/mail/vmail') then sync {",
        "\tdefault.rsync,",
        "\tsource = '/srv/mail/vmail',",
        "\ttarget = 'root@10.20.1.5:/srv/mail/vmail/',",
        `\tdelay = ${LSYNCD_DELAY_SECONDS},`,
        "\tdelete = true,",
        "\texitcodes = exitcodes,",
        "\trsync = {",
        "\t\tbinary = '/usr/local/lib/standort/lsyncd/mail-files-vmail-to-karlsruhe',",
        "\t\tarchive = true,",
        "\t\thard_links = true,",
        "\t\tacls = true,",
        "\t\txattrs = true,",
        "\t\tprotect_args = false,",
        "\t\ttimeout = 300,",
        "\t\trsh = 'ssh -i /etc/standort/replication/id_ed25519 -o UserKnownHostsFile=/etc/standort/replication/known_hosts -o BatchMode=yes -o StrictHostKeyChecking=yes',",
        "\t\t_extra = { '--numeric-ids', '--delay-updates' },",
        "\t},",
        "} end",
      ].join("\n"),
    ),
    config,
  );
  assert.match(config, /^settings \{\n(\t--.*\n)*\tinsist = true,\n\}$/m);
  assert.match(config, /^\t\[75\] = 'again',$/m, "a guard refusal retries");
  assert.match(config, /^\t\[25\] = 'again',$/m, "--max-delete retries instead of ending every sync");
  assert.match(
    lsyncdRsyncWrapper(vmail),
    /^exec \/usr\/local\/sbin\/standort-replicate --job mail-files-vmail-to-karlsruhe --service mail --tree vmail --source \/srv\/mail\/vmail --max-delete-percent 10 --max-delete-floor 20 --lsyncd --active-flag \/run\/standort\/storage-active -- \/usr\/bin\/rsync "\$@"$/m,
  );
});

test("continuous replication: lsyncd's unit runs on the active storage member, started by a path unit on the flag", () => {
  const unit = renderLsyncdUnit("vienna", ["vie-stor-1", "vie-stor-2"]);
  const exec = unit.split("\n").filter((l) => l.startsWith("ExecStart"));
  // Exactly this plain form: the site twin runs ExecStart lines without systemd and refuses quotes, $, % and backslashes.
  assert.deepEqual(exec, [`ExecStart=/usr/bin/lsyncd -nodaemon ${LSYNCD_CONFIG}`]);
  assert.doesNotMatch(exec[0], /["'\\$%]/);
  assert.match(unit, /^ConditionPathExists=\/run\/standort\/storage-active$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  const path = renderLsyncdPathUnit("vienna");
  assert.match(path, /^PathExists=\/run\/standort\/storage-active$/m);
  assert.match(path, /^Unit=standort-lsyncd\.service$/m);
});

test("continuous replication reaches the storage hosts of every site that copies files, Kubernetes sites too", () => {
  const { footprint, sites } = example();
  const jobs = planJobs(footprint, sites);
  const lsyncdPaths = (site: string, host: string) =>
    (
      footprintHostFiles(
        sites.find((s) => s.name === site)!,
        jobs,
      )[host] ?? []
    )
      .map((f) => f.path)
      .filter((p) => /lsyncd/.test(p));
  const vienna = lsyncdPaths("vienna", "vie-stor-1");
  assert.deepEqual(vienna, [
    "/usr/local/lib/standort/lsyncd/mail-files-dkim-to-karlsruhe",
    "/usr/local/lib/standort/lsyncd/mail-files-vmail-to-karlsruhe",
    "/etc/lsyncd/standort.conf.lua",
    "/etc/systemd/system/standort-lsyncd.service",
    "/etc/systemd/system/standort-lsyncd.path",
  ]);
  assert.deepEqual(lsyncdPaths("vienna", "vie-stor-2"), vienna, "both members, only the active one runs it");
  // Helsinki (Kubernetes) copies four trees: its storage hosts run lsyncd for them, its cluster nodes nothing.
  const helsinki = [
    "/usr/local/lib/standort/lsyncd/git-files-repositories-to-frankfurt",
    "/usr/local/lib/standort/lsyncd/git-files-repositories-to-vienna",
    "/usr/local/lib/standort/lsyncd/webhosting-files-htdocs-to-frankfurt",
    "/usr/local/lib/standort/lsyncd/webhosting-files-uploads-to-frankfurt",
    "/etc/lsyncd/standort.conf.lua",
    "/etc/systemd/system/standort-lsyncd.service",
    "/etc/systemd/system/standort-lsyncd.path",
  ];
  assert.deepEqual(lsyncdPaths("helsinki", "hel-stor-1"), helsinki);
  assert.deepEqual(lsyncdPaths("helsinki", "hel-stor-2"), helsinki);
  for (const site of sites.filter((s) => s.virtualization.runtime === "kubernetes")) {
    for (const host of site.hosts.filter((h) => h.role !== "storage")) assert.deepEqual(lsyncdPaths(site.name, host.name), [], host.name);
  }
  const files = footprintHostFiles(
    sites.find((s) => s.name === "vienna")!,
    jobs,
  )["vie-stor-1"];
  const config = files.find((f) => f.path === LSYNCD_CONFIG)!;
  assert.deepEqual(config.check?.command, ["luac5.3", "-p", "{file}"]);
  assert.deepEqual(config.reload, ["systemctl", "try-restart", "standort-lsyncd.service"]);
  const path = files.find((f) => f.path.endsWith("standort-lsyncd.path"))!;
  assert.deepEqual(path.remove, ["systemctl", "disable", "--now", "standort-lsyncd.path"]);
  // The wrappers and the guard exist before the configuration and the units that use them.
  const order = files.map((f) => f.path);
  assert.ok(order.indexOf("/usr/local/sbin/standort-replicate") < order.indexOf(LSYNCD_CONFIG));
  assert.ok(order.indexOf("/usr/local/lib/standort/lsyncd/mail-files-vmail-to-karlsruhe") < order.indexOf(LSYNCD_CONFIG));
  assert.ok(order.indexOf(LSYNCD_CONFIG) < order.indexOf("/etc/systemd/system/standort-lsyncd.path"));
});
