import test from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  backupProblems,
  checkFootprint,
  concentrationProblems,
  exceedsShare,
  pairProblems,
  placementProblems,
  referenceProblems,
  replicationProblems,
  tunnelProblems,
} from "../lib/footprint/policies";
import { providerOf } from "../lib/footprint/placement";
import { planJobs } from "../lib/footprint/jobs";
import { planTunnels } from "../lib/footprint/wireguard";
import { Footprint, FootprintService } from "../lib/footprint/schema";
import { SiteModel } from "../lib/model/model";
import { example, withService, withSite } from "./fixtures/footprint/example";
import { validateFootprint } from "../lib/footprint/load";
import { absentSiteName, knownSites } from "./helpers/sites";

test("the example footprint passes every policy", () => {
  const { footprint, sites } = example();
  assert.equal(footprint.services.length, 5);
  assert.deepEqual(checkFootprint(footprint, sites), []);
});

test("placement: a standby at the primary's own site is rejected", () => {
  const { footprint, sites } = example();
  const broken = withService(footprint, "groupware", (s) => ({ ...s, standby: "frankfurt" }));
  assert.deepEqual(placementProblems(broken, sites), [
    "sites/footprint.yaml: services[0] (groupware): standby frankfurt is the same site as primary frankfurt: choose a standby at another site",
  ]);
});

test("placement: a standby at the primary's provider is rejected", () => {
  const { footprint, sites } = example();
  // Vienna handed over by IONOS instead of Netcup: mail and tickets now stand by at their own provider.
  const ionosVienna = withSite(sites, "vienna", (s) => ({ ...s, provider: { ...s.provider, name: "ionos" } as SiteModel["provider"] }));
  assert.deepEqual(placementProblems(footprint, ionosVienna), [
    "sites/footprint.yaml: services[1] (mail): standby karlsruhe is at the same provider (ionos) as primary vienna: choose a standby at another provider",
    "sites/footprint.yaml: services[3] (tickets): standby vienna is at the same provider (ionos) as primary karlsruhe: choose a standby at another provider",
    "sites/footprint.yaml: services[4] (git): migration.standby karlsruhe is at the same provider (ionos) as migration.to vienna: choose a standby at another provider",
  ]);
});

test("placement: a standby in the primary's country is rejected", () => {
  const { footprint, sites } = example();
  const germanHelsinki = withSite(sites, "helsinki", (s) => ({ ...s, country: "DE" }));
  assert.deepEqual(placementProblems(footprint, germanHelsinki), [
    "sites/footprint.yaml: services[0] (groupware): standby helsinki is in the same country (DE) as primary frankfurt: choose a standby in another country",
    "sites/footprint.yaml: services[2] (webhosting): standby frankfurt is in the same country (DE) as primary helsinki: choose a standby in another country",
    "sites/footprint.yaml: services[4] (git): standby frankfurt is in the same country (DE) as primary helsinki: choose a standby in another country",
  ]);
});

test("placement: a migration may not target the primary or the standby, nor run while promoted", () => {
  const { footprint, sites } = example();
  const toPrimary = withService(footprint, "git", (s) => ({ ...s, migration: { to: "helsinki", step: "parallel" } }));
  assert.deepEqual(placementProblems(toPrimary, sites), [
    "sites/footprint.yaml: services[4] (git): migration.to helsinki is the primary itself: name the site the service moves to, or remove migration",
  ]);
  const toStandby = withService(footprint, "git", (s) => ({ ...s, migration: { to: "frankfurt", step: "parallel" } }));
  assert.deepEqual(placementProblems(toStandby, sites), [
    "sites/footprint.yaml: services[4] (git): migration.to frankfurt is the standby: to move writes to the standby set mode: promoted, or name another site",
  ]);
  const promoted = withService(footprint, "git", (s) => ({ ...s, mode: "promoted" }));
  assert.deepEqual(placementProblems(promoted, sites), [
    "sites/footprint.yaml: services[4] (git): mode promoted while migrating: finish or remove the migration first, or set mode: standby",
  ]);
  // Without migration.standby, frankfurt would stand by for vienna: still another provider and country, so spread holds.
  const keepStandby = withService(footprint, "git", (s) => ({ ...s, migration: { to: "vienna", step: "parallel" } }));
  assert.deepEqual(placementProblems(keepStandby, sites), []);
  const sameCountryAfter = withService(footprint, "git", (s) => ({
    ...s,
    migration: { to: "karlsruhe", step: "parallel", standby: "frankfurt" },
  }));
  assert.deepEqual(placementProblems(sameCountryAfter, sites), [
    "sites/footprint.yaml: services[4] (git): migration.standby frankfurt is at the same provider (ionos) as migration.to karlsruhe: choose a standby at another provider",
    "sites/footprint.yaml: services[4] (git): migration.standby frankfurt is in the same country (DE) as migration.to karlsruhe: choose a standby in another country",
  ]);
});

test("references: unknown sites and duplicate names are named with the fix", () => {
  const { footprint, sites } = example();
  const unknown = absentSiteName();
  let broken = withService(footprint, "mail", (s) => ({ ...s, standby: unknown }));
  broken = withService(broken, "tickets", (s) => ({ ...s, name: "groupware", publicName: "mail.example.com" }));
  broken = withService(broken, "webhosting", (s) => ({
    ...s,
    publicName: "git-at.standby.example.net",
    data: { ...s.data, files: [...s.data.files, { name: "htdocs", path: "/srv/other", sizeGb: 1 }] },
  }));
  assert.deepEqual(referenceProblems(broken, sites), [
    `sites/footprint.yaml: services[1] (mail): standby ${unknown} is not a site: choose one of ${knownSites()}`,
    "sites/footprint.yaml: services[2] (webhosting): publicName git-at.standby.example.net is a standby name of git: choose a public name outside the standby names <service>-<cc>.standby.example.net",
    "sites/footprint.yaml: services[2] (webhosting): data.files[2].name htdocs is already used by data.files[0]: give each its own name",
    "sites/footprint.yaml: services[3] (groupware): name groupware is already used by services[0]: give each service its own name",
    "sites/footprint.yaml: services[3] (groupware): publicName mail.example.com is already used by services[1]: choose another public name",
  ]);
  // The other checks leave a service with an unknown site to the reference check.
  assert.deepEqual(
    checkFootprint(
      withService(footprint, "mail", (s) => ({ ...s, standby: unknown })),
      sites,
    ),
    [`sites/footprint.yaml: services[1] (mail): standby ${unknown} is not a site: choose one of ${knownSites()}`],
  );
});

test("concentration: a third IONOS / German primary of five breaks the 50% limit", () => {
  const { footprint, sites } = example();
  const broken = withService(footprint, "webhosting", (s) => ({ ...s, primary: "frankfurt", standby: "helsinki" }));
  assert.deepEqual(concentrationProblems(broken, sites), [
    "sites/footprint.yaml: policy.maxPrimaryShare: provider ionos holds the primaries of 3 of 5 services (groupware, tickets, webhosting), more than 50%: move a primary to a site of another provider",
    "sites/footprint.yaml: policy.maxPrimaryShare: country DE holds the primaries of 3 of 5 services (groupware, tickets, webhosting), more than 50%: move a primary to a site in another country",
  ]);
  // A stricter limit catches the example itself: Hetzner and Finland hold 2 of 5 (40%).
  const strict = { ...footprint, policy: { maxPrimaryShare: 0.3 } };
  assert.deepEqual(concentrationProblems(strict, sites), [
    "sites/footprint.yaml: policy.maxPrimaryShare: provider hetzner holds the primaries of 2 of 5 services (git, webhosting), more than 30%: move a primary to a site of another provider",
    "sites/footprint.yaml: policy.maxPrimaryShare: provider ionos holds the primaries of 2 of 5 services (groupware, tickets), more than 30%: move a primary to a site of another provider",
    "sites/footprint.yaml: policy.maxPrimaryShare: country DE holds the primaries of 2 of 5 services (groupware, tickets), more than 30%: move a primary to a site in another country",
    "sites/footprint.yaml: policy.maxPrimaryShare: country FI holds the primaries of 2 of 5 services (git, webhosting), more than 30%: move a primary to a site in another country",
  ]);
});

test("concentration: a migration counts at its target once writes have moved, a promotion never moves the count", () => {
  const { footprint, sites } = example();
  const moved = withService(footprint, "git", (s) => ({ ...s, migration: { ...s.migration!, step: "switch-writes" } }));
  // git now counts for netcup/AT: 2 of 5 there, still within the limit.
  assert.deepEqual(concentrationProblems(moved, sites), []);
  const promoted = withService(footprint, "mail", (s) => ({ ...s, mode: "promoted" }));
  assert.deepEqual(concentrationProblems(promoted, sites), []);
});

test("concentration agrees with a brute-force count for any placement of primaries", () => {
  const { footprint, sites } = example();
  const base = footprint.services[0];
  const site = (name: string) => sites.find((s) => s.name === name)!;
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...sites.map((s) => s.name)), { minLength: 1, maxLength: 12 }),
      // Limits as exact fractions, so the brute force needs no floating point.
      fc.constantFrom([1, 4], [3, 10], [1, 3], [1, 2], [3, 5], [7, 10], [1, 1]),
      (primaries, [num, den]) => {
        const services: FootprintService[] = primaries.map((primary, i) => ({
          ...base,
          name: `svc-${i}`,
          publicName: `svc-${i}.example.com`,
          primary,
        }));
        const candidate: Footprint = { ...footprint, policy: { maxPrimaryShare: num / den }, services };
        let expected = 0;
        for (const key of [(s: SiteModel): string => providerOf(s), (s: SiteModel): string => s.country]) {
          const counts = new Map<string, number>();
          for (const p of primaries) counts.set(key(site(p)), (counts.get(key(site(p))) ?? 0) + 1);
          expected += [...counts.values()].filter((c) => c * den > num * primaries.length).length;
        }
        assert.equal(concentrationProblems(candidate, sites).length, expected);
      },
    ),
    { numRuns: 300, seed: 5 },
  );
});

test("exceedsShare treats exact binary-fraction limits as reached, not exceeded", () => {
  assert.equal(exceedsShare(3, 10, 0.3), false);
  assert.equal(exceedsShare(7, 10, 0.7), false);
  assert.equal(exceedsShare(4, 10, 0.3), true);
  assert.equal(exceedsShare(2, 4, 0.5), false);
  assert.equal(exceedsShare(3, 5, 0.5), true);
});

test("replication: a tree copied less often than the RPO allows is rejected", () => {
  const { footprint, sites } = example();
  const broken = withService(footprint, "mail", (s) => ({
    ...s,
    data: { ...s.data, files: s.data.files.map((f) => (f.name === "dkim" ? { ...f, intervalMinutes: 10 } : f)) },
  }));
  assert.deepEqual(replicationProblems(broken, sites), [
    "sites/footprint.yaml: services[1] (mail): data.files[1].intervalMinutes 10 exceeds the 5 min its files may lag when written at vienna (at most 15, the RPO 5, the site's 15): set 5 or less, or remove it",
  ]);
});

test("replication: a slower site interval lowers the limit, and 15 minutes is the ceiling whatever the RPO", () => {
  const { footprint, sites } = example();
  const slowFrankfurt = withSite(sites, "frankfurt", (s) => ({ ...s, storage: { ...s.storage, replicationIntervalMinutes: 10 } }));
  const broken = withService(footprint, "groupware", (s) => ({
    ...s,
    data: { ...s.data, files: [{ ...s.data.files[0], intervalMinutes: 12 }] },
  }));
  assert.deepEqual(replicationProblems(broken, slowFrankfurt), [
    "sites/footprint.yaml: services[0] (groupware): data.files[0].intervalMinutes 12 exceeds the 10 min its files may lag when written at frankfurt (at most 15, the RPO 15, the site's 10): set 10 or less, or remove it",
  ]);
  // tickets has an RPO of 60 minutes; its files are still copied every 15.
  const lax = withService(footprint, "tickets", (s) => ({
    ...s,
    data: { ...s.data, files: [{ ...s.data.files[0], intervalMinutes: 30 }] },
  }));
  assert.deepEqual(replicationProblems(lax, sites), [
    "sites/footprint.yaml: services[3] (tickets): data.files[0].intervalMinutes 30 exceeds the 15 min its files may lag when written at karlsruhe (at most 15, the RPO 60, the site's 15): set 15 or less, or remove it",
  ]);
});

test("replication: databases must replicate continuously with their engine's method", () => {
  const { footprint, sites } = example();
  const broken = withService(footprint, "webhosting", (s) => ({
    ...s,
    data: {
      ...s.data,
      databases: [
        { name: "sites", engine: "mariadb", replication: "dump" },
        { name: "panel", engine: "postgres", replication: "binlog" },
      ],
    },
  }));
  assert.deepEqual(replicationProblems(broken, sites), [
    "sites/footprint.yaml: services[2] (webhosting): data.databases[0].replication dump is periodic, not continuous: use binlog (mariadb keeps the standby current)",
    "sites/footprint.yaml: services[2] (webhosting): data.databases[1].replication binlog does not fit postgres: use streaming",
  ]);
});

test("backups: kept fewer than 30 days, or in a dissolved storage pair, are rejected", () => {
  const { footprint, sites } = example();
  const shortLived = withSite(sites, "frankfurt", (s) => ({
    ...s,
    storage: { ...s.storage, backups: { ...s.storage.backups, daily: 7 } },
  }));
  assert.deepEqual(backupProblems(footprint, shortLived), [
    "sites/footprint.yaml: services[0] (groupware): backups at frankfurt are kept 7 days: set storage.backups.daily to 30 or more in sites/frankfurt.yaml",
  ]);
  const dissolved = withSite(sites, "helsinki", (s) => ({
    ...s,
    pairs: s.pairs.map((p) => (p.role === "storage" ? { ...p, dissolved: true } : p)),
  }));
  assert.deepEqual(backupProblems(footprint, dissolved), [
    "sites/footprint.yaml: services[2] (webhosting): backups at helsinki need two independent stores but the storage pair hel-storage is dissolved: restore it (pairs.storage.dissolved: false in sites/helsinki.yaml)",
    "sites/footprint.yaml: services[4] (git): backups at helsinki need two independent stores but the storage pair hel-storage is dissolved: restore it (pairs.storage.dissolved: false in sites/helsinki.yaml)",
  ]);
});

test("backups: jobs that write into one store only are rejected", () => {
  const { footprint, sites } = example();
  const jobs = planJobs(footprint, sites).filter((j) => j.key !== "tickets-backup-fkb-stor-2");
  assert.deepEqual(backupProblems(footprint, sites, jobs), [
    "sites/footprint.yaml: services[3] (tickets): backups at karlsruhe go into fkb-stor-1 only: back up into both stores fkb-stor-1 and fkb-stor-2 (missing fkb-stor-2)",
  ]);
});

test("tunnels: a standby that is not the primary's partner has no tunnel", () => {
  const { footprint, sites } = example();
  const broken = withService(footprint, "groupware", (s) => ({ ...s, standby: "vienna" }));
  assert.deepEqual(tunnelProblems(broken, sites), [
    "sites/footprint.yaml: services[0] (groupware): no site-to-site tunnel connects frankfurt and vienna for its standby copy: choose helsinki (the partner of frankfurt) as the standby, or make frankfurt and vienna partners in their site files",
  ]);
  // The same placement passes every other policy: the tunnel rule is what catches it.
  assert.deepEqual(checkFootprint(broken, sites), tunnelProblems(broken, sites));
});

test("tunnels: a migration's temporary tunnel is required while it lasts", () => {
  const { footprint, sites } = example();
  const tunnels = planTunnels(footprint, sites).filter((t) => t.purpose !== "migration");
  assert.deepEqual(tunnelProblems(footprint, sites, tunnels), [
    "sites/footprint.yaml: services[4] (git): no site-to-site tunnel connects helsinki and vienna for its migration copy: plan the migration tunnel between them (planTunnels)",
  ]);
});

test("tunnels: an end that carries more than the peer's supernet, or not all of it, is rejected", () => {
  const { footprint, sites } = example();
  const tunnels = planTunnels(footprint, sites).map((t) =>
    t.name === "wg-fkb-vie"
      ? {
          ...t,
          configs: {
            ...t.configs,
            karlsruhe: t.configs.karlsruhe.replace("AllowedIPs = 10.30.0.0/16", "AllowedIPs = 10.30.0.0/17, 0.0.0.0/0"),
          },
        }
      : t,
  );
  assert.deepEqual(tunnelProblems(footprint, sites, tunnels), [
    "sites/footprint.yaml: services[1] (mail): tunnel wg-fkb-vie at karlsruhe carries 0.0.0.0/0, 10.30.0.0/17 besides vienna's supernet 10.30.0.0/16: AllowedIPs must list only 10.30.0.0/16",
    "sites/footprint.yaml: services[1] (mail): tunnel wg-fkb-vie at karlsruhe does not carry vienna's supernet 10.30.0.0/16: set AllowedIPs = 10.30.0.0/16",
    "sites/footprint.yaml: services[3] (tickets): tunnel wg-fkb-vie at karlsruhe carries 0.0.0.0/0, 10.30.0.0/17 besides vienna's supernet 10.30.0.0/16: AllowedIPs must list only 10.30.0.0/16",
    "sites/footprint.yaml: services[3] (tickets): tunnel wg-fkb-vie at karlsruhe does not carry vienna's supernet 10.30.0.0/16: set AllowedIPs = 10.30.0.0/16",
  ]);
});

test("pairs: a member without a heartbeat on its dedicated segment, or a single time source, is rejected", () => {
  const { footprint, sites } = example();
  const broken = withSite(sites, "vienna", (s) => ({
    ...s,
    time: { servers: ["ntp.example.net", "ntp.example.net"] },
    pairs: s.pairs.map((p) => (p.role === "proxy" ? { ...p, heartbeat: { ...p.heartbeat, "vie-proxy-2": "10.30.0.11" } } : p)),
  }));
  assert.deepEqual(pairProblems(footprint, broken), [
    "sites/vienna.yaml: pairs.proxy: vie-proxy-2 has no heartbeat address on the dedicated segment hb-proxy (vienna hosts git, mail, tickets): give both members of vie-proxy an address there",
    "sites/vienna.yaml: time.servers: pair members need at least two distinct shared time sources, found 1 (ntp.example.net; vienna hosts git, mail, tickets): list two or more",
  ]);
});

test("checkFootprint reports every rule at once, in a fixed order", () => {
  const { footprint, sites } = example();
  let broken = withService(footprint, "webhosting", (s) => ({ ...s, primary: "frankfurt", standby: "helsinki" }));
  broken = withService(broken, "mail", (s) => ({
    ...s,
    data: { ...s.data, databases: [{ name: "postfixadmin", engine: "mariadb", replication: "dump" }] },
  }));
  const shortLived = withSite(sites, "vienna", (s) => ({ ...s, storage: { ...s.storage, backups: { ...s.storage.backups, daily: 14 } } }));
  const problems = checkFootprint(broken, shortLived);
  assert.deepEqual(problems, [
    "sites/footprint.yaml: policy.maxPrimaryShare: provider ionos holds the primaries of 3 of 5 services (groupware, tickets, webhosting), more than 50%: move a primary to a site of another provider",
    "sites/footprint.yaml: policy.maxPrimaryShare: country DE holds the primaries of 3 of 5 services (groupware, tickets, webhosting), more than 50%: move a primary to a site in another country",
    "sites/footprint.yaml: services[1] (mail): data.databases[0].replication dump is periodic, not continuous: use binlog (mariadb keeps the standby current)",
    "sites/footprint.yaml: services[1] (mail): backups at vienna are kept 14 days: set storage.backups.daily to 30 or more in sites/vienna.yaml",
  ]);
});

test("file trees: a path with . or .., a system folder or one level deep is refused by the schema; trees that overlap by the policy", () => {
  const { footprint, sites } = example();
  const mail = footprint.services.find((s) => s.data.files.length > 0)!;
  const paths = (path: string) =>
    validateFootprint(
      {
        ...structuredClone(footprint),
        services: footprint.services.map((s) =>
          s.name === mail.name ? { ...structuredClone(s), data: { ...s.data, files: [{ ...s.data.files[0], path }] } } : s,
        ),
      },
      sites,
    ).problems;
  assert.match(paths("/srv/..")[0], /data\.files\[0\]\.path: must not contain \. or \.\. segments/);
  assert.match(paths("/srv/mail/../../etc")[0], /must not contain \. or \.\. segments/);
  assert.match(paths("/proc/x")[0], /must be a tree of its own below a data folder such as \/srv/);
  assert.match(paths("/srv")[0], /must be a tree of its own below a data folder such as \/srv/);
  // The stores' restic repositories live under /srv/backup: a copy with --delete must never run through them.
  assert.match(paths("/srv/backup")[0], /data\.files\[0\]\.path: must not be at or under \/srv\/backup, where the storage hosts keep/);
  assert.match(paths("/srv/backup/offsite")[0], /must not be at or under \/srv\/backup/);
  assert.deepEqual(paths("/srv/backups-of-mail"), [], "a sibling folder of the same prefix is a tree of its own");
  const other = footprint.services.find((s) => s.name !== mail.name && s.data.files.length > 0)!;
  const overlapping = withService(footprint, other.name, (s) => ({
    ...s,
    data: { ...s.data, files: [{ ...s.data.files[0], path: `${mail.data.files[0].path}/inner` }] },
  }));
  assert.deepEqual(
    referenceProblems(overlapping, sites).filter((p) => p.includes("overlaps")),
    [
      `sites/footprint.yaml: services[${overlapping.services.indexOf(overlapping.services.find((s) => s.name === other.name)!)}] (${other.name}): data.files[0].path ${mail.data.files[0].path}/inner overlaps ${mail.data.files[0].path} (${mail.name} data.files[0]): give each file tree a folder of its own`,
    ],
  );
});
