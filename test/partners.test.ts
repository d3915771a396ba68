import test, { after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { SiteDocument, validateSites } from "../lib/model/validate";
import { partnerProblems, partnersOf } from "../lib/model/partners";
import { loadFootprint } from "../lib/footprint/load";
import { planTunnels } from "../lib/footprint/wireguard";
import { tunnelProblems } from "../lib/footprint/policies";
import { planHostFiles } from "../lib/preview/files";
import { planStack } from "../lib/preview/run-stack";
import { SiteModel } from "../lib/model/model";
import { main } from "../scripts/plan";
import { captured } from "./helpers/cli";
import { absentSiteName, siteDocuments, tempSites } from "./helpers/sites";

/**
 * A third site at Netcup, Gmunden, whose partner is helsinki although helsinki's own partner is frankfurt: a copy of
 * vienna with its own name, code, addresses, prefix and supernet.
 */
function gmundenText(vienna: string): string {
  return vienna
    .replace("name: vienna", "name: gmunden")
    .replace("code: vie", "code: grz")
    .replace(/Vienna/g, "Gmunden")
    .replace("at/vie", "at/grz")
    .replace(/vie-/g, "grz-")
    .replace(/198\.19\.40\./g, "198.19.60.")
    .replace("198.18.4.0/23", "198.18.6.0/23")
    .replace("10.30.0.0/16", "10.50.0.0/16")
    .replace("partner: karlsruhe", "partner: helsinki");
}

/** A service written at gmunden that stands by at helsinki: its jobs are what helsinki receives. */
const SHOP = {
  name: "shop",
  description: "Web shop",
  publicName: "shop.example.com",
  primary: "gmunden",
  standby: "helsinki",
  mode: "standby",
  data: {
    databases: [{ name: "shop", engine: "postgres" }],
    files: [{ name: "media", path: "/srv/shop/media", sizeGb: 100 }],
  },
  recovery: { rpoMinutes: 15, rtoMinutes: 60 },
  workload: {
    containers: [
      {
        name: "app",
        image: "registry.example.net/shop/app:1.0.0@sha256:c356d8e188a4ee313d20fb6a6e9a48ed8a3ddf97728313c797d484c0e7acd111",
        port: 8080,
        secrets: { DB_PASS: "database-password" },
        volumes: [{ tree: "media", mount: "/var/lib/shop/media" }],
      },
    ],
    readOnly: { environment: { SHOP_READ_ONLY: "true" } },
  },
};

/** The committed site documents plus gmunden, helsinki standing by for it (unless `standby` is false). */
function documentsWithGmunden(standby = true): SiteDocument[] {
  const documents = siteDocuments();
  const vienna = readFileSync("sites/vienna.yaml", "utf8");
  documents.push({ file: "sites/gmunden.yaml", data: parse(gmundenText(vienna)) });
  if (standby) (documents.find((d) => d.file === "sites/helsinki.yaml")!.data as Record<string, unknown>).standbyFor = ["gmunden"];
  return documents.sort((a, b) => a.file.localeCompare(b.file));
}

function problemsWith(change: (helsinki: Record<string, any>) => void): string[] {
  const documents = documentsWithGmunden();
  change(documents.find((d) => d.file === "sites/helsinki.yaml")!.data as Record<string, any>);
  return validateSites(documents).problems;
}

// One temporary sites/ and stacks/ with gmunden, its shop service and helsinki's standbyFor, for the rendered files.
const copy = tempSites();
const stacks = mkdtempSync(join(tmpdir(), "standort-stacks-"));
after(() => {
  copy.dispose();
  rmSync(stacks, { recursive: true, force: true });
});
writeFileSync(join(copy.dir, "gmunden.yaml"), gmundenText(readFileSync(join(copy.dir, "vienna.yaml"), "utf8")));
copy.edit("helsinki", (d) => (d.standbyFor = ["gmunden"]));
copy.edit("footprint", (d) => d.services.push(SHOP));
cpSync("stacks", stacks, { recursive: true, filter: (src) => !src.includes("plans") });
writeFileSync(
  join(stacks, "Pulumi.gmunden.yaml"),
  readFileSync("stacks/Pulumi.vienna.yaml", "utf8").replace("standort:site: vienna", "standort:site: gmunden"),
);
const loaded = loadFootprint(copy.dir);
const site = (name: string): SiteModel => loaded.sites.find((s) => s.name === name)!;
/** Every file of a site's stack as `host:path` → content. */
function filesOf(name: string, sites = loaded.sites, footprint = loaded.footprint): Map<string, string> {
  const model = sites.find((s) => s.name === name)!;
  return new Map(planHostFiles(model, sites, footprint).flatMap((h) => h.files.map((f) => [`${h.host}:${f.path}`, f.content] as const)));
}
const helsinki = filesOf("helsinki");
const gmunden = filesOf("gmunden");
const committed = loadFootprint();
const file = (files: Map<string, string>, key: string) => {
  const content = files.get(key);
  assert.ok(content !== undefined, `${key} is rendered`);
  return content;
};

test("a site may stand by for several: gmunden's partner helsinki validates, and partnersOf lists both directions", () => {
  assert.deepEqual(validateSites(documentsWithGmunden()).problems, []);
  assert.deepEqual(site("helsinki").standbyFor, ["gmunden"]);
  assert.deepEqual(site("gmunden").standbyFor, []);
  const names = (name: string) => partnersOf(site(name), loaded.sites).map((s) => s.name);
  // The own partner first, then the sites it stands by for.
  assert.deepEqual(names("helsinki"), ["frankfurt", "gmunden"]);
  assert.deepEqual(names("gmunden"), ["helsinki"]);
  assert.deepEqual(names("frankfurt"), ["helsinki"]);
  assert.deepEqual(names("vienna"), ["karlsruhe"]);
  // The committed sites: their own partner, then the sites they stand by for (karlsruhe also for falkenstein).
  for (const s of committed.sites)
    assert.deepEqual(
      partnersOf(s, committed.sites).map((p) => p.name),
      [s.partner, ...s.standbyFor],
    );
  assert.deepEqual(committed.sites.find((s) => s.name === "karlsruhe")!.standbyFor, ["falkenstein"]);
  // One tunnel per partnership: gmunden's to helsinki besides the committed ones (falkenstein's to karlsruhe among them).
  assert.deepEqual(
    planTunnels(loaded.footprint, loaded.sites)
      .filter((t) => t.purpose === "partner")
      .map((t) => t.name),
    ["wg-fkb-vie", "wg-fra-hel", "wg-fsn-fkb", "wg-grz-hel"],
  );
});

test("without helsinki's standbyFor entry gmunden's partnership is one-way: refused, naming both files and the fix", () => {
  assert.deepEqual(validateSites(documentsWithGmunden(false)).problems, [
    "sites/gmunden.yaml: partner: helsinki names frankfurt as its partner in sites/helsinki.yaml, not gmunden: a one-way partnership: add gmunden to standbyFor in sites/helsinki.yaml (helsinki then stands by for gmunden too), or name each other as partners in both files",
  ]);
});

test("each standbyFor rule refuses its bad case with the entry's path", () => {
  const unknown = absentSiteName();
  const known = "falkenstein, frankfurt, gmunden, helsinki, karlsruhe, vienna";
  const cases: Array<[string[], string]> = [
    [["gmunden", unknown], `sites/helsinki.yaml: standbyFor[1]: ${unknown} does not exist (known sites: ${known})`],
    [
      ["gmunden", "helsinki"],
      "sites/helsinki.yaml: standbyFor[1]: helsinki is this site itself: a site does not stand by for itself: remove it",
    ],
    [["gmunden", "gmunden"], "sites/helsinki.yaml: standbyFor[1]: gmunden is already listed as standbyFor[0]: list each site once"],
    [
      ["gmunden", "frankfurt"],
      "sites/helsinki.yaml: standbyFor[1]: frankfurt is already this site's partner, and frankfurt's partner is helsinki: mutual partners stand by for each other already: remove frankfurt from standbyFor",
    ],
    [
      ["gmunden", "vienna"],
      "sites/helsinki.yaml: standbyFor[1]: vienna's partner is karlsruhe, not helsinki: a site stands by only for sites that name it as partner: set partner: helsinki in sites/vienna.yaml, or remove vienna from standbyFor",
    ],
  ];
  for (const [standbyFor, problem] of cases)
    assert.deepEqual(
      problemsWith((h) => (h.standbyFor = standbyFor)),
      [problem],
      problem,
    );
  // Not a list of site names: the schema says so.
  assert.deepEqual(
    problemsWith((h) => (h.standbyFor = "gmunden")),
    ['sites/helsinki.yaml: standbyFor: expected array, got "gmunden"'],
  );
});

test("partnerProblems keeps the rules for a partner that is missing or the site itself, and skips files that did not parse", () => {
  const files = [
    { file: "sites/a.yaml", site: { partner: "a", standbyFor: [] } },
    { file: "sites/b.yaml", site: { partner: "nowhere", standbyFor: [] } },
    // c's file is present but broken: b may name it, and its own fields are its problem.
    { file: "sites/d.yaml", site: { partner: "c", standbyFor: ["c"] } },
  ];
  assert.deepEqual(partnerProblems(files, ["a", "b", "c", "d"]), [
    "sites/a.yaml: partner: a is this site itself: name another site",
    "sites/b.yaml: partner: nowhere does not exist (known sites: a, b, c, d)",
  ]);
});

test("helsinki's files receive gmunden: the tunnel, routes and filters for gmunden's supernet, the receive side of its jobs", () => {
  // The tunnel on both firewalls, carrying exactly gmunden's supernet.
  for (const fw of ["hel-fw-1", "hel-fw-2"]) {
    const wg = file(helsinki, `${fw}:/etc/wireguard/wg-grz-hel.conf`);
    assert.match(wg, /^AllowedIPs = 10\.50\.0\.0\/16$/m);
    assert.match(wg, /^Endpoint = 198\.18\.6\.65:\d+$/m);
    const nft = file(helsinki, `${fw}:/etc/nftables.conf`);
    assert.match(nft, /elements = \{ 10\.10\.0\.0\/16, 10\.30\.0\.0\/16, 10\.50\.0\.0\/16 \}/, "gmunden among the partner supernets");
    assert.match(nft, /iifname != @internal_ifs ip saddr 198\.18\.6\.65 udp dport \d+ accept comment "internet-to-wg-grz-hel"/);
    assert.match(
      nft,
      /iifname "wg-grz-hel" ip saddr 10\.50\.0\.0\/16 oifname @internal_ifs ip daddr 10\.40\.2\.0\/24 tcp dport 22 accept comment "partner-gmunden-to-data-replication"/,
    );
    assert.match(
      nft,
      /iifname "wg-grz-hel" ip saddr 10\.50\.0\.0\/16 oifname @internal_ifs ip daddr 10\.40\.4\.0\/22 tcp dport \{ 3306, 5432 \} accept comment "partner-gmunden-to-app-databases"/,
    );
    assert.match(file(helsinki, `${fw}:/etc/systemd/network/20-standort-dmz.network`), /^Destination=10\.50\.0\.0\/16$/m);
  }
  for (const stor of ["hel-stor-1", "hel-stor-2"]) {
    assert.match(file(helsinki, `${stor}:/etc/systemd/network/20-standort-data.network`), /^Destination=10\.50\.0\.0\/16$/m);
    assert.match(
      file(helsinki, `${stor}:/etc/nftables.conf`),
      /iifname "data" ip saddr 10\.50\.0\.0\/16 ip daddr 10\.40\.2\.0\/24 tcp dport 22 accept comment "partner-gmunden-to-data-replication"/,
    );
    // gmunden's file copies land here (its replication key, from gmunden's supernet only), and its off-site backups.
    assert.match(
      file(helsinki, `${stor}:/etc/standort/replication/authorized_keys`),
      /^restrict,from="10\.50\.0\.0\/16",command="\/usr\/local\/sbin\/standort-replica-receive" .* gmunden-replication$/m,
    );
    assert.match(file(helsinki, `${stor}:/etc/standort/replication/trees`), /^shop media \/srv\/shop\/media$/m);
    assert.match(
      file(helsinki, `${stor}:/etc/standort/sshd/restic_authorized_keys`),
      /^restrict,from="10\.50\.0\.0\/16",.* gmunden-backup$/m,
    );
  }
  for (const virt of ["hel-virt-1", "hel-virt-4"]) {
    assert.match(file(helsinki, `${virt}:/etc/systemd/network/20-standort-app.network`), /^Destination=10\.50\.0\.0\/16$/m);
    assert.match(file(helsinki, `${virt}:/etc/nftables.conf`), /ip saddr 10\.50\.0\.0\/16 .*comment "partner-gmunden-to-app-databases"/);
    // The database replica of gmunden's shop database, with gmunden's replication login.
    assert.match(file(helsinki, `${virt}:/etc/standort/databases/shop-db-shop-from-gmunden.conf`), /gmunden/);
    assert.match(
      file(helsinki, `${virt}:/etc/standort/databases/pgpass`),
      /^shop\.shop\.db\.grz\.standort\.internal:5432:replication:replicator:/m,
    );
  }
  // The tunnel is watched like every other.
  assert.match(file(helsinki, "hel-fw-1:/etc/systemd/system/standort-host-metrics.service"), /--tunnel wg-grz-hel=gmunden/);
});

test("gmunden's files send to helsinki: tunnel, routes, filters, file copies, the database and the off-site backup", () => {
  for (const fw of ["grz-fw-1", "grz-fw-2"]) {
    assert.match(file(gmunden, `${fw}:/etc/wireguard/wg-grz-hel.conf`), /^AllowedIPs = 10\.40\.0\.0\/16$/m);
    const nft = file(gmunden, `${fw}:/etc/nftables.conf`);
    assert.match(nft, /oifname "wg-grz-hel" ip daddr 10\.40\.0\.0\/16 tcp dport 22 accept comment "data-to-partner-helsinki-replication"/);
    assert.doesNotMatch(nft, /frankfurt|wg-fra-hel/, "gmunden has no tunnel to helsinki's own partner");
  }
  for (const stor of ["grz-stor-1", "grz-stor-2"]) {
    assert.match(file(gmunden, `${stor}:/etc/systemd/network/20-standort-data.network`), /^Destination=10\.40\.0\.0\/16$/m);
    // Its own partner's key is the plain id_ed25519; the copy goes to helsinki's storage VIP.
    assert.ok(gmunden.has(`${stor}:/etc/standort/replication/id_ed25519`));
    assert.match(file(gmunden, `${stor}:/etc/standort/replication/known_hosts`), /^10\.40\.2\.5 ssh-ed25519 .*helsinki/m);
    assert.match(
      file(gmunden, `${stor}:/etc/systemd/system/standort-shop-files-media-to-helsinki.service`),
      /-i \/etc\/standort\/replication\/id_ed25519 .* root@10\.40\.2\.5:\/srv\/shop\/media\//,
    );
    assert.ok(gmunden.has(`${stor}:/etc/systemd/system/standort-shop-backup-offsite-helsinki.timer`));
  }
  assert.match(file(gmunden, "grz-virt-1:/etc/standort/databases/shop-db-shop-to-helsinki.conf"), /gmunden -> helsinki over wg-grz-hel/);
});

test("frankfurt and helsinki's partnership stays exactly as before", () => {
  const before = {
    frankfurt: filesOf("frankfurt", committed.sites, committed.footprint),
    helsinki: filesOf("helsinki", committed.sites, committed.footprint),
  };
  const now = { frankfurt: filesOf("frankfurt"), helsinki };
  for (const [key, content] of [...before.frankfurt].filter(([k]) => /wireguard|nftables|systemd\/network|replication\//.test(k)))
    assert.equal(now.frankfurt.get(key), content, `frankfurt ${key}`);
  for (const key of ["hel-fw-1:/etc/wireguard/wg-fra-hel.conf", "hel-fw-2:/etc/wireguard/wg-fra-hel.conf"])
    assert.equal(now.helsinki.get(key), before.helsinki.get(key), key);
  // helsinki only gains lines: every line of its filters and routes before is still there, in order.
  for (const [key, content] of [...before.helsinki].filter(([k]) => /nftables|systemd\/network/.test(k))) {
    const lines = now.helsinki.get(key)!.split("\n");
    let at = 0;
    for (const line of content
      .split("\n")
      .filter((l) => !l.includes('comment "standort ') && !l.includes("elements = {") && !l.includes("udp sport {"))) {
      const found = lines.indexOf(line, at);
      assert.ok(found >= 0, `${key} keeps ${line}`);
      at = found + 1;
    }
  }
});

test("a standby that is neither partner names every partner of the primary", () => {
  const footprint = structuredClone(loaded.footprint);
  const webhosting = footprint.services.find((s) => s.name === "webhosting")!;
  (webhosting as { standby: string }).standby = "karlsruhe";
  assert.deepEqual(
    tunnelProblems(footprint, loaded.sites).filter((p) => p.includes("webhosting")),
    [
      "sites/footprint.yaml: services[2] (webhosting): no site-to-site tunnel connects helsinki and karlsruhe for its standby copy: choose frankfurt or gmunden (the partners of helsinki) as the standby, or make helsinki and karlsruhe partners in their site files",
    ],
  );
});

test("the stacks: helsinki plans with gmunden's tunnel and says whom it stands by for; gmunden plans against helsinki", async () => {
  const hel = await planStack("helsinki", { sitesDir: copy.dir, stacksDir: stacks });
  const outputs = hel.outputs as Record<string, any>;
  assert.deepEqual(outputs.storage.replication.partnerSite, "frankfurt");
  assert.deepEqual(outputs.storage.standbyFor, [{ site: "gmunden", sourceSupernet: "10.50.0.0/16", path: "/srv/data/gmunden" }]);
  assert.deepEqual(outputs.partnerFacing.standbyFor, [{ site: "gmunden", supernet: "10.50.0.0/16", listenPort: 48992 }]);
  assert.ok(hel.resources.some((r) => r.name === "helsinki-tunnels-wg-grz-hel-private-key"));
  const grz = await planStack("gmunden", { sitesDir: copy.dir, stacksDir: stacks });
  const gmundenOutputs = grz.outputs as Record<string, any>;
  assert.equal(gmundenOutputs.storage.replication.partnerSite, "helsinki");
  assert.equal(gmundenOutputs.storage.replication.target, "10.40.2.5");
  assert.equal(gmundenOutputs.storage.standbyFor, undefined);
  assert.equal(gmundenOutputs.partnerFacing.standbyFor, undefined);
  const { code, out, err } = await captured(main, ["helsinki", "--sites", copy.dir, "--stacks", stacks]);
  assert.equal(code, 0, err.join("\n"));
  assert.ok(
    out.includes("site helsinki (hel, FI) on Hetzner Cloud hel1, partner frankfurt, stands by also for gmunden"),
    out.slice(0, 5).join("\n"),
  );
});
