import test from "node:test";
import assert from "node:assert/strict";
import { validateSites } from "../lib/model/validate";
import { loadSites } from "../lib/model/load";
import { documentOf, siteDocuments } from "./helpers/sites";

/** Validates the committed sites after `change`; returns the problem lines. */
function problemsAfter(change: (docs: ReturnType<typeof siteDocuments>) => void): string[] {
  const docs = siteDocuments();
  change(docs);
  return validateSites(docs).problems;
}

test("the committed site files are valid and give four sites on three providers in three countries", () => {
  const sites = loadSites();
  assert.deepEqual(
    sites.map((s) => s.name),
    ["frankfurt", "helsinki", "karlsruhe", "vienna"],
  );
  const providers = new Set(sites.map((s) => (s.provider.kind === "hcloud" ? "hetzner" : s.provider.name)));
  assert.deepEqual([...providers].sort(), ["hetzner", "ionos", "netcup"]);
  assert.deepEqual([...new Set(sites.map((s) => s.country))].sort(), ["AT", "DE", "FI"]);
});

test("wrong type: names file, field path and the expected type", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").roles.virtualization.count = "three")),
    ['sites/vienna.yaml: roles.virtualization.count: expected number, got "three"'],
  );
});

test("unknown key: names the key and where to look", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").network.supernett = "10.9.0.0/16")),
    ["sites/vienna.yaml: network.supernett: unknown key (check the spelling; see sites/schema/site.schema.json)"],
  );
});

test("a /24 where a /23 is needed", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.prefix = "198.18.4.0/24")),
    ["sites/vienna.yaml: public.prefix: 198.18.4.0/24 must be a /23"],
  );
});

test("a /23 with host bits set is not aligned", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.prefix = "198.18.5.0/23")),
    ["sites/vienna.yaml: public.prefix: 198.18.5.0/23 has host bits set: the network address of a /23 must be aligned"],
  );
});

test("overlapping public prefixes between two files name both files", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.prefix = "198.18.2.0/23")),
    ["sites/vienna.yaml: public.prefix: 198.18.2.0/23 overlaps 198.18.2.0/23 of sites/frankfurt.yaml"],
  );
});

test("a public prefix in a reserved range is refused, the benchmarking range is not", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.prefix = "192.168.4.0/23")),
    [
      "sites/vienna.yaml: public.prefix: 192.168.4.0/23 lies in a reserved range (private (RFC 1918)): use a public prefix the operator holds",
    ],
  );
});

test("overlapping internal supernets are refused because sites are meshed", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").network.supernet = "10.20.0.0/17")),
    [
      "sites/vienna.yaml: network.supernet: 10.20.0.0/17 overlaps 10.20.0.0/16 of sites/karlsruhe.yaml: sites are meshed, give each its own supernet",
    ],
  );
});

test("a partner that does not exist", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").partner = "graz")),
    ["sites/vienna.yaml: partner: graz does not exist (known sites: frankfurt, helsinki, karlsruhe, vienna)"],
  );
});

test("a duplicate host name across files", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      const hosts = documentOf(d, "karlsruhe").provider.hosts;
      hosts[hosts.length - 1].name = "vie-virt-1";
    }),
    [
      "sites/vienna.yaml: provider.hosts[6].name: vie-virt-1 is already used by sites/karlsruhe.yaml",
      "sites/karlsruhe.yaml: provider.hosts[7].name: vie-virt-1 must be named fkb-virt-<n> (site code, role, number)",
    ],
  );
});

test("an address outside its segment", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[0].segments = { mgmt: "10.30.9.10" })),
    ["sites/vienna.yaml: provider.hosts[0].segments.mgmt: 10.30.9.10 is outside segment mgmt (10.30.2.0/24)"],
  );
});

test("a pinned address inside its segment is used as given", () => {
  const docs = siteDocuments();
  documentOf(docs, "vienna").provider.hosts[0].segments = { mgmt: "10.30.2.200" };
  const vienna = validateSites(docs).sites.find((s) => s.name === "vienna")!;
  assert.equal(vienna.hosts.find((h) => h.name === "vie-fw-1")!.interfaces.find((i) => i.segment === "mgmt")!.address, "10.30.2.200");
});

test("a pinned address that collides with another host", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[8].segments = { mgmt: "10.30.2.2" })),
    ["sites/vienna.yaml: provider.hosts[8].segments.mgmt: 10.30.2.2 is already used by vie-fw-1"],
  );
});

test("pair members on one physical machine are refused", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[1].physical = "vie-node-a")),
    [
      "sites/vienna.yaml: provider.hosts: vie-fw-1 and vie-fw-2 form the firewall pair but share physical machine vie-node-a: place them on separate machines",
    ],
  );
});

test("an own prefix on Hetzner Cloud is refused with the fix", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "helsinki").public = {
        mode: "own-prefix",
        prefix: "198.18.8.0/23",
        routing: { kind: "static", nextHop: "198.19.8.1" },
      };
    }),
    ["sites/helsinki.yaml: public.mode: Hetzner Cloud cannot route an own prefix (no BYOIP): use mode: provider-failover-ips"],
  );
});

test("backups kept fewer than 30 days and replication slower than 15 minutes are refused", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").storage = { backups: { daily: 14 }, replicationIntervalMinutes: 60 };
    }),
    [
      "sites/vienna.yaml: storage.backups.daily: backups must be kept at least 30 days: set 30 or more",
      "sites/vienna.yaml: storage.replicationIntervalMinutes: files must be replicated at least every 15 minutes: set 15 or less",
    ],
  );
});

test("a host named against the scheme is named once, without follow-on pair problems", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[0].name = "firewall-a")),
    ["sites/vienna.yaml: provider.hosts[0].name: firewall-a must be named vie-fw-<n> (site code, role, number)"],
  );
});

test("a site named differently from its file, and a reused code", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").name = "wien";
      documentOf(d, "helsinki").code = "fra";
    }),
    [
      "sites/helsinki.yaml: code: fra is already used by sites/frankfurt.yaml",
      "sites/vienna.yaml: name: wien must equal the file name (vienna)",
    ],
  );
});

test("management open to the whole internet is refused", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").management.allowlist = ["0.0.0.0/0"])),
    ["sites/vienna.yaml: management.allowlist[0]: 0.0.0.0/0 would open management to the whole internet: list the operator's own prefixes"],
  );
});

test("a segment too small for the hosts that join it names the size to change", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "helsinki").roles.virtualization.count = 40;
      documentOf(d, "helsinki").network.sizes = { app: 26 };
    }),
    [
      "sites/helsinki.yaml: network.sizes.app: segment app (10.40.0.64/26) has 62 usable addresses but hel-virt-32 … hel-virt-40 need host numbers up to 71: use a /25 or larger",
    ],
  );
});

test("every problem of every file is reported at once", () => {
  const problems = problemsAfter((d) => {
    documentOf(d, "vienna").public.prefix = "198.18.4.0/24";
    documentOf(d, "frankfurt").partner = "graz";
    documentOf(d, "helsinki").country = "XX";
  });
  assert.deepEqual(problems, [
    "sites/helsinki.yaml: country: XX is not an ISO 3166-1 alpha-2 country code",
    "sites/vienna.yaml: public.prefix: 198.18.4.0/24 must be a /23",
    "sites/frankfurt.yaml: partner: graz does not exist (known sites: frankfurt, helsinki, karlsruhe, vienna)",
  ]);
});

test("pre-provisioned failover IPs must be declared; Hetzner Cloud ones must not", () => {
  assert.deepEqual(
    problemsAfter((d) => delete documentOf(d, "karlsruhe").public.addresses),
    ["sites/karlsruhe.yaml: public.addresses: is required: list the failover IPs ionos handed over (proxy, nat)"],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "helsinki").public.addresses = { proxy: "198.19.8.1", nat: "198.19.8.2" })),
    ["sites/helsinki.yaml: public.addresses: Hetzner Cloud assigns floating IPs at creation: remove public.addresses"],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "karlsruhe").public.addresses.nat = "198.19.20.100")),
    ["sites/karlsruhe.yaml: public.addresses.nat: 198.19.20.100 is also the proxy address: the proxy and NAT need one failover IP each"],
  );
});
