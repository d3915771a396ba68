import test from "node:test";
import assert from "node:assert/strict";
import { SiteService, siteServices } from "../lib/footprint/services";
import { checkFootprint } from "../lib/footprint/policies";
import { Footprint } from "../lib/footprint/schema";
import { SiteModel } from "../lib/model/model";
import { example, withService } from "./fixtures/footprint/example";
import { absentSiteName, knownSites } from "./helpers/sites";

function everySite(footprint: Footprint, sites: SiteModel[]): Map<string, SiteService[]> {
  return new Map(sites.map((s) => [s.name, siteServices(footprint, sites, s.name)]));
}

/** A site's view as role and names only, for compact expectations. */
function roles(entries: SiteService[]): Array<[string, string, string]> {
  return entries.map((e) => [e.service, e.role, e.names.map((n) => `${n.name}:${n.reads ? "r" : ""}${n.writes ? "w" : ""}`).join(" ")]);
}

test("each site hosts its services with their roles and names", () => {
  const { footprint, sites } = example();
  const views = everySite(footprint, sites);
  assert.deepEqual(roles(views.get("frankfurt")!), [
    ["git", "standby", "git-de.standby.example.net:r"],
    ["groupware", "primary", "cloud.example.com:rw"],
    ["webhosting", "standby", "web.example.com:r webhosting-de.standby.example.net:r"],
  ]);
  assert.deepEqual(roles(views.get("helsinki")!), [
    ["git", "migration-source", "git.example.com:w"],
    ["groupware", "standby", "cloud.example.com:r groupware-fi.standby.example.net:r"],
    ["webhosting", "primary", "web.example.com:rw"],
  ]);
  assert.deepEqual(roles(views.get("karlsruhe")!), [
    ["mail", "standby", "mail.example.com:r mail-de.standby.example.net:r"],
    ["tickets", "primary", "support.example.com:rw"],
  ]);
  assert.deepEqual(roles(views.get("vienna")!), [
    ["git", "migration-target", "git.example.com:r"],
    ["mail", "primary", "mail.example.com:rw"],
    ["tickets", "standby", "support.example.com:r tickets-at.standby.example.net:r"],
  ]);
  assert.equal(views.get("vienna")!.find((e) => e.service === "git")!.migrationStep, "switch-reads");
});

test("a site runs the copies of what it writes and the replica side of what it stands by for", () => {
  const { footprint, sites } = example();
  const karlsruhe = siteServices(footprint, sites, "karlsruhe");
  assert.deepEqual(
    karlsruhe.map((e) => [e.service, e.jobs.map((j) => j.key)]),
    [
      // The standby side of mail: the replica's database settings and, per file tree, the receiving end of the copy.
      ["mail", ["mail-db-postfixadmin-from-vienna", "mail-files-dkim-from-vienna", "mail-files-vmail-from-vienna"]],
      [
        "tickets",
        [
          "tickets-backup-fkb-stor-1",
          "tickets-backup-fkb-stor-2",
          // The third backup leaves the site: into the standby site's (vienna's) store.
          "tickets-backup-offsite-vienna",
          "tickets-db-tickets-to-vienna",
          "tickets-db-wiki-to-vienna",
          "tickets-files-attachments-to-vienna",
        ],
      ],
    ],
  );
});

test("promoting one service changes that service's role at both sites and nothing else", () => {
  const { footprint, sites } = example();
  const before = everySite(footprint, sites);
  for (const service of footprint.services.filter((s) => !s.migration)) {
    const promoted = withService(footprint, service.name, (s) => ({ ...s, mode: "promoted" }));
    assert.deepEqual(checkFootprint(promoted, sites), [], `promoting ${service.name} keeps every policy`);
    const after = everySite(promoted, sites);
    for (const site of sites) {
      const others = (view: SiteService[]) => view.filter((e) => e.service !== service.name);
      assert.deepEqual(
        others(after.get(site.name)!),
        others(before.get(site.name)!),
        `${site.name}: other services unchanged by promoting ${service.name}`,
      );
      const mine = (view: SiteService[]) => view.filter((e) => e.service === service.name);
      const [was] = mine(before.get(site.name)!);
      const [now] = mine(after.get(site.name)!);
      if (site.name === service.primary) {
        assert.equal(was.role, "primary");
        assert.equal(now.role, "standby");
        assert.deepEqual(now.names, [
          { name: `${service.name}-${site.country.toLowerCase()}.standby.example.net`, reads: true, writes: false },
        ]);
        // The old primary now receives: only replica-side database settings and the receiving end of each
        // file copy (from the promoted site), no copies, no backups.
        assert.deepEqual(
          now.jobs.map((j) => j.kind),
          [...service.data.databases.map(() => "database-replication"), ...service.data.files.map(() => "file-receive")],
        );
        assert.deepEqual(
          now.jobs.flatMap((j) => (j.kind === "file-receive" ? [j.source.site] : [])),
          service.data.files.map(() => service.standby),
        );
      } else if (site.name === service.standby) {
        assert.equal(was.role, "standby");
        assert.equal(now.role, "promoted");
        assert.deepEqual(now.names, [
          { name: service.publicName, reads: true, writes: true },
          { name: `${service.name}-${site.country.toLowerCase()}.standby.example.net`, reads: true, writes: true },
        ]);
        const copies = now.jobs.filter((j) => j.kind === "file-copy");
        assert.deepEqual(
          copies.map((j) => (j.kind === "file-copy" ? j.target.site : "")),
          service.data.files.map(() => service.primary),
        );
        // Two backups into the promoted site's own stores, and the off-site one into the old primary's store.
        assert.deepEqual(now.jobs.flatMap((j) => (j.kind === "backup" ? [`${j.store.placement}:${j.store.site}`] : [])).sort(), [
          `local:${site.name}`,
          `local:${site.name}`,
          `offsite:${service.primary}`,
        ]);
      } else {
        assert.equal(was, undefined);
        assert.equal(now, undefined);
      }
    }
  }
});

test("read-only mode: the standby answers both names read-only, the primary none", () => {
  const { footprint, sites } = example();
  const readOnly = withService(footprint, "mail", (s) => ({ ...s, mode: "read-only" }));
  assert.deepEqual(
    roles(siteServices(readOnly, sites, "karlsruhe")).find((r) => r[0] === "mail"),
    ["mail", "read-only", "mail.example.com:r mail-de.standby.example.net:r"],
  );
  assert.deepEqual(
    roles(siteServices(readOnly, sites, "vienna")).find((r) => r[0] === "mail"),
    ["mail", "primary", ""],
  );
});

test("a migration switches reads, then writes, step by step", () => {
  const { footprint, sites } = example();
  const at = (step: "parallel" | "switch-reads" | "switch-writes" | "done") => {
    const moved = withService(footprint, "git", (s) => ({ ...s, migration: { ...s.migration!, step } }));
    assert.deepEqual(checkFootprint(moved, sites), [], `step ${step} keeps every policy`);
    return Object.fromEntries(
      sites.map((site) => [
        site.name,
        roles(siteServices(moved, sites, site.name))
          .find((r) => r[0] === "git")
          ?.slice(1) ?? null,
      ]),
    );
  };
  // By hand for the sites git is placed on; every other site has no part in git at any step.
  const noneElsewhere = (expected: Record<string, [string, string] | null>) => {
    for (const name of Object.keys(expected))
      assert.ok(
        sites.some((s) => s.name === name),
        `${name} is a site`,
      );
    return Object.fromEntries(sites.map((site) => [site.name, expected[site.name] ?? null]));
  };
  assert.deepEqual(
    at("parallel"),
    noneElsewhere({
      frankfurt: ["standby", "git-de.standby.example.net:r"],
      helsinki: ["migration-source", "git.example.com:rw"],
      karlsruhe: null,
      vienna: ["migration-target", ""],
    }),
  );
  assert.deepEqual(
    at("switch-reads"),
    noneElsewhere({
      frankfurt: ["standby", "git-de.standby.example.net:r"],
      helsinki: ["migration-source", "git.example.com:w"],
      karlsruhe: null,
      vienna: ["migration-target", "git.example.com:r"],
    }),
  );
  assert.deepEqual(
    at("switch-writes"),
    noneElsewhere({
      frankfurt: null,
      helsinki: ["migration-source", ""],
      karlsruhe: ["standby", "git-de.standby.example.net:r"],
      vienna: ["migration-target", "git.example.com:rw"],
    }),
  );
  assert.deepEqual(
    at("done"),
    noneElsewhere({
      frankfurt: null,
      helsinki: null,
      // A finished migration's standby answers the public name read-only too, as any standby (the DNS switch).
      karlsruhe: ["standby", "git.example.com:r git-de.standby.example.net:r"],
      vienna: ["primary", "git.example.com:rw"],
    }),
  );
});

test("a finished migration looks exactly like the service placed at its new site", () => {
  const { footprint, sites } = example();
  const done = withService(footprint, "git", (s) => ({ ...s, migration: { ...s.migration!, step: "done" } }));
  const rewritten = withService(footprint, "git", (s) => ({ ...s, primary: "vienna", standby: "karlsruhe", migration: undefined }));
  for (const site of sites) {
    const withoutStep = (view: SiteService[]) =>
      view.map((entry) => Object.fromEntries(Object.entries(entry).filter(([key]) => key !== "migrationStep")));
    assert.deepEqual(withoutStep(siteServices(done, sites, site.name)), withoutStep(siteServices(rewritten, sites, site.name)), site.name);
  }
});

test("asking for a site the files do not define is a programming error", () => {
  const { footprint, sites } = example();
  const unknown = absentSiteName();
  assert.throws(() => siteServices(footprint, sites, unknown), {
    message: `siteServices: ${unknown} is not a site (known sites: ${knownSites()})`,
  });
});
