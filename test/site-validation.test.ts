import test from "node:test";
import assert from "node:assert/strict";
import { validateSites } from "../lib/model/validate";
import { loadSites } from "../lib/model/load";
import { adapterOf } from "../lib/providers/registry";
import { loadFootprint } from "../lib/footprint/load";
import { planHostFiles } from "../lib/preview/files";
import { HCLOUD_USER_DATA_LIMIT } from "../lib/render";
import { main } from "../scripts/plan";
import { absentSiteName, documentOf, knownSites, siteDocuments, siteNamesIn, sitesWith } from "./helpers/sites";

/** Validates the committed sites after `change`; returns the problem lines. */
function problemsAfter(change: (docs: ReturnType<typeof siteDocuments>) => void): string[] {
  const docs = siteDocuments();
  change(docs);
  return validateSites(docs).problems;
}

test("the committed site files are valid and give one site per file, on at least three providers in three countries", () => {
  const sites = loadSites();
  assert.deepEqual(
    sites.map((s) => s.name),
    siteNamesIn(),
  );
  // The spread the footprint relies on: at least three providers in at least three countries.
  const providers = new Set(sites.map((s) => adapterOf(s).operator));
  assert.ok(providers.size >= 3, [...providers].join(", "));
  const countries = new Set(sites.map((s) => s.country));
  assert.ok(countries.size >= 3, [...countries].join(", "));
  // Each file's site, as the file says it: its name is the file's, and its provider and country are the file's own.
  for (const { file, data } of siteDocuments()) {
    const doc = data as Record<string, any>;
    const site = sites.find((s) => s.file === file);
    assert.ok(site, `${file} gives a site`);
    assert.equal(site.name, doc.name, file);
    assert.equal(`sites/${site.name}.yaml`, file);
    assert.equal(site.country, doc.country, file);
    assert.equal(adapterOf(site).id, doc.provider.kind === "preprovisioned" ? doc.provider.name : doc.provider.kind, file);
  }
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
  const unknown = absentSiteName();
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").partner = unknown)),
    [`sites/vienna.yaml: partner: ${unknown} does not exist (known sites: ${knownSites()})`],
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
    [
      "sites/helsinki.yaml: public.mode: own-prefix is not possible here: Hetzner Cloud has no documented way to route a customer-owned prefix (BYOIP): the site uses floating IPs: use mode: provider-failover-ips",
    ],
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
  const unknown = absentSiteName();
  const problems = problemsAfter((d) => {
    documentOf(d, "vienna").public.prefix = "198.18.4.0/24";
    documentOf(d, "frankfurt").partner = unknown;
    documentOf(d, "helsinki").country = "XX";
  });
  assert.deepEqual(problems, [
    "sites/helsinki.yaml: country: XX is not an ISO 3166-1 alpha-2 country code",
    "sites/vienna.yaml: public.prefix: 198.18.4.0/24 must be a /23",
    `sites/frankfurt.yaml: partner: ${unknown} does not exist (known sites: ${knownSites()})`,
  ]);
});

test("pre-provisioned failover IPs must be declared; Hetzner Cloud ones must not", () => {
  assert.deepEqual(
    problemsAfter((d) => delete documentOf(d, "karlsruhe").public.addresses),
    ["sites/karlsruhe.yaml: public.addresses: is required: list the failover IPs ionos handed over (proxy, nat)"],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "helsinki").public.addresses = { proxy: "198.19.8.1", nat: "198.19.8.2" })),
    [
      "sites/helsinki.yaml: public.addresses: Hetzner Cloud hel1 assigns the failover IPs when the stack creates them: remove public.addresses",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "karlsruhe").public.addresses.nat = "198.19.20.100")),
    ["sites/karlsruhe.yaml: public.addresses.nat: 198.19.20.100 is also the proxy address: the proxy and NAT need one failover IP each"],
  );
});

// Issue 10, item 4: every bad input in a site file is refused before anything is planned, one line each.

test("a host address that names no single host is refused, whatever the kind", () => {
  const cases: Array<[string, string]> = [
    ["0.0.0.0", "the unspecified address"],
    ["255.255.255.255", "the limited broadcast address"],
    ["0.1.2.3", "in the this-network range 0.0.0.0/8"],
    ["127.0.0.1", "a loopback address"],
    ["169.254.7.7", "a link-local address"],
    ["224.0.0.18", "a multicast address"],
    ["240.0.0.1", "in the reserved range 240.0.0.0/4 (former class E)"],
  ];
  for (const [address, kind] of cases) {
    assert.deepEqual(
      problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[2].address = address)),
      [
        `sites/vienna.yaml: provider.hosts[2].address: ${address} is ${kind}, not a host address: give the address the provider assigned to the host`,
      ],
    );
  }
});

test("the next hop, BGP peers, failover IPs and time sources follow the same address rules", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.routing.nextHop = "255.255.255.255")),
    [
      "sites/vienna.yaml: public.routing.nextHop: 255.255.255.255 is the limited broadcast address, not a host address: give the provider-side failover address the provider routes the prefix to",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "frankfurt").public.routing.peers[1].address = "224.0.0.5")),
    [
      "sites/frankfurt.yaml: public.routing.peers[1].address: 224.0.0.5 is a multicast address, not a host address: give the provider router's address",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "karlsruhe").public.addresses.nat = "0.0.0.0")),
    [
      "sites/karlsruhe.yaml: public.addresses.nat: 0.0.0.0 is the unspecified address, not a host address: list the failover IP the provider handed over for outbound NAT",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").time = { servers: ["127.0.0.1", "Bad Name", "ntp.example", "ntp.example"] })),
    [
      "sites/vienna.yaml: time.servers[0]: 127.0.0.1 is a loopback address, not a host address: list the NTP server's own address",
      'sites/vienna.yaml: time.servers[1]: "Bad Name" is not a host name or IPv4 address: list each NTP server by its DNS name (lower case) or address',
      "sites/vienna.yaml: time.servers[3]: ntp.example is already listed as time.servers[2]: list each time source once",
    ],
  );
});

test("a pinned segment address may not be the segment's network or broadcast address, nor a VIP or gateway", () => {
  assert.deepEqual(
    problemsAfter(
      (d) =>
        (documentOf(d, "vienna").provider.hosts[0].segments = {
          dmz: "10.30.0.0",
          mgmt: "10.30.2.255",
          app: "10.30.4.1",
          data: "10.30.1.5",
        }),
    ),
    [
      "sites/vienna.yaml: provider.hosts[0].segments.dmz: 10.30.0.0 is the network address of segment dmz (10.30.0.0/24): pin a host address from 10.30.0.1 to 10.30.0.254",
      "sites/vienna.yaml: provider.hosts[0].segments.mgmt: 10.30.2.255 is the broadcast address of segment mgmt (10.30.2.0/24): pin a host address from 10.30.2.1 to 10.30.2.254",
      "sites/vienna.yaml: provider.hosts[0].segments.app: 10.30.4.1 is the firewall pair's VIP in app (the segment's gateway): pin another address to vie-fw-1",
      "sites/vienna.yaml: provider.hosts[0].segments.data: 10.30.1.5 is the storage pair's VIP in data: pin another address to vie-fw-1",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[3].segments = { dmz: "10.30.0.4" })),
    ["sites/vienna.yaml: provider.hosts[3].segments.dmz: 10.30.0.4 is the proxy pair's VIP in dmz: pin another address to vie-proxy-2"],
  );
});

test("a pinned address that collides with a planned one is named at the pin, whatever the host order", () => {
  // vie-fw-1 comes before vie-virt-2 in the file; the planned 10.30.2.33 is vie-virt-2's.
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[0].segments = { mgmt: "10.30.2.33" })),
    ["sites/vienna.yaml: provider.hosts[0].segments.mgmt: 10.30.2.33 is already used by vie-virt-2"],
  );
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").provider.hosts[6].segments = { mgmt: "10.30.2.200" };
      documentOf(d, "vienna").provider.hosts[8].segments = { mgmt: "10.30.2.200" };
    }),
    ["sites/vienna.yaml: provider.hosts[8].segments.mgmt: 10.30.2.200 is already used by vie-virt-1"],
  );
});

test("host addresses are each used once within a site, and across sites where they are public", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[3].address = "198.19.40.11")),
    [
      "sites/vienna.yaml: provider.hosts[3].address: 198.19.40.11 is already vie-fw-1's address (provider.hosts[0].address): give each host, failover IP and next hop its own address, and no BGP peer one of theirs",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[3].address = "198.19.20.11")),
    [
      "sites/vienna.yaml: provider.hosts[3].address: 198.19.20.11 is already fkb-fw-1's address (provider.hosts[0].address of sites/karlsruhe.yaml): give each host, failover IP and next hop its own address, and no BGP peer one of theirs",
    ],
  );
  // A private provider LAN address may repeat at another provider.
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").provider.hosts[3].address = "192.168.7.7";
      documentOf(d, "karlsruhe").provider.hosts[3].address = "192.168.7.7";
    }),
    [],
  );
});

test("a host address may not be the site's failover IP, next hop or BGP peer, nor another site's", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "karlsruhe").provider.hosts[7].address = "198.19.20.100")),
    [
      // Reported at the later of the two fields in the file.
      "sites/karlsruhe.yaml: public.addresses.proxy: 198.19.20.100 is already fkb-virt-2's address (provider.hosts[7].address): give each host, failover IP and next hop its own address, and no BGP peer one of theirs",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[0].address = "198.19.40.10")),
    [
      "sites/vienna.yaml: public.routing.nextHop: 198.19.40.10 is already vie-fw-1's address (provider.hosts[0].address): give each host, failover IP and next hop its own address, and no BGP peer one of theirs",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "frankfurt").public.routing.peers[1].address = "198.19.10.11")),
    [
      "sites/frankfurt.yaml: public.routing.peers[1].address: 198.19.10.11 is already fra-fw-1's address (provider.hosts[0].address): give each host, failover IP and next hop its own address, and no BGP peer one of theirs",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.routing.nextHop = "198.19.20.100")),
    [
      "sites/vienna.yaml: public.routing.nextHop: 198.19.20.100 is already the proxy failover IP (public.addresses.proxy of sites/karlsruhe.yaml): give each host, failover IP and next hop its own address, and no BGP peer one of theirs",
    ],
  );
});

test("provider-side addresses lie outside every site's supernet and own prefix", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").provider.hosts[2].address = "10.30.0.7")),
    [
      "sites/vienna.yaml: provider.hosts[2].address: 10.30.0.7 lies inside 10.30.0.0/16, this site's supernet: a provider-side address must lie outside every site's supernet (segments, gateways and VIPs live there)",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.routing.nextHop = "10.20.0.1")),
    [
      "sites/vienna.yaml: public.routing.nextHop: 10.20.0.1 lies inside 10.20.0.0/16, the supernet of sites/karlsruhe.yaml: a provider-side address must lie outside every site's supernet (segments, gateways and VIPs live there)",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "frankfurt").public.routing.peers[0].address = "10.10.0.5")),
    [
      "sites/frankfurt.yaml: public.routing.peers[0].address: 10.10.0.5 lies inside 10.10.0.0/16, this site's supernet: a provider-side address must lie outside every site's supernet (segments, gateways and VIPs live there)",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "karlsruhe").provider.hosts[2].address = "198.18.4.9")),
    [
      "sites/karlsruhe.yaml: provider.hosts[2].address: 198.18.4.9 lies inside 198.18.4.0/23, the own prefix of sites/vienna.yaml: a provider-side address must lie outside every own prefix (it is routed to the site that holds it)",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").public.routing.nextHop = "198.18.4.1")),
    [
      "sites/vienna.yaml: public.routing.nextHop: 198.18.4.1 lies inside the routed prefix 198.18.4.0/23: the next hop must be a provider-side address",
    ],
  );
});

test("failover IPs are public, because customers reach the site on them", () => {
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "karlsruhe").public.addresses = { proxy: "10.99.0.1", nat: "198.19.20.101" })),
    [
      "sites/karlsruhe.yaml: public.addresses.proxy: 10.99.0.1 lies in a reserved range (private (RFC 1918)): customers reach the site on it: list the public failover IP the provider handed over",
    ],
  );
});

test("BGP peers: each name and address once, and never the site's own AS", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      const peers = documentOf(d, "frankfurt").public.routing.peers;
      peers[1].name = "edge-a";
      peers[1].address = "198.19.10.1";
    }),
    [
      "sites/frankfurt.yaml: public.routing.peers[1].name: edge-a is already the name of public.routing.peers[0]: list each BGP peer once, under its own name",
      "sites/frankfurt.yaml: public.routing.peers[1].address: 198.19.10.1 is already the address of public.routing.peers[0]: list each BGP peer once, under its own name",
    ],
  );
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "frankfurt").public.routing.peers[0].asn = 4200000101)),
    [
      "sites/frankfurt.yaml: public.routing.peers[0].asn: 4200000101 is the site's own AS (localAsn): give the provider's AS, the prefix is announced to it by eBGP",
    ],
  );
});

test("management allowlist: no range where no operator's address can be, each prefix once", () => {
  assert.deepEqual(
    problemsAfter(
      (d) => (documentOf(d, "vienna").management.allowlist = ["127.0.0.0/8", "224.0.0.0/24", "198.19.255.0/24", "198.19.255.0/24"]),
    ),
    [
      "sites/vienna.yaml: management.allowlist[0]: 127.0.0.0/8 overlaps 127.0.0.0/8 (loopback), where no operator's address can be: list the operator's own prefixes",
      "sites/vienna.yaml: management.allowlist[1]: 224.0.0.0/24 overlaps 224.0.0.0/4 (multicast), where no operator's address can be: list the operator's own prefixes",
      "sites/vienna.yaml: management.allowlist[3]: 198.19.255.0/24 is already listed as management.allowlist[2]: list each prefix once",
    ],
  );
});

test("extra segments: no standard or heartbeat name, no name twice, no name of a link the hosts already have", () => {
  assert.deepEqual(
    problemsAfter(
      (d) =>
        (documentOf(d, "vienna").network.extraSegments = [
          { name: "hb-proxy", prefixLength: 28 },
          { name: "backup", prefixLength: 28 },
          { name: "backup", prefixLength: 28 },
          { name: "eth1", prefixLength: 28 },
          { name: "wg-fkb-vie", prefixLength: 28 },
        ]),
    ),
    [
      "sites/vienna.yaml: network.extraSegments[3].name: eth1 is the name of a link the hosts already have (loopback, a NIC or a site tunnel): name the segment after its purpose",
      "sites/vienna.yaml: network.extraSegments[4].name: wg-fkb-vie is the name of a link the hosts already have (loopback, a NIC or a site tunnel): name the segment after its purpose",
      "sites/vienna.yaml: network.extraSegments[0].name: hb-proxy is a segment every site has: give the extra segment another name",
      "sites/vienna.yaml: network.extraSegments[2].name: backup is already the name of network.extraSegments[1]: give each segment its own name",
    ],
  );
});

test("free text is one short line; Hetzner Cloud server types and images are names", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").description = "x".repeat(201);
      documentOf(d, "karlsruhe").public.reason = "two\nlines";
      documentOf(d, "helsinki").provider.serverTypes = { proxy: "CX32 " };
      documentOf(d, "helsinki").provider.image = "";
    }),
    [
      "sites/helsinki.yaml: provider.serverTypes.proxy: must be a Hetzner Cloud server type name (for example cx32)",
      "sites/helsinki.yaml: provider.image: must be a Hetzner Cloud image name or id (for example debian-12)",
      "sites/karlsruhe.yaml: public.reason: must be one line without control characters",
      "sites/vienna.yaml: description: is longer than 200 characters: keep it to one short line",
    ],
  );
});

test("every problem is one line: odd keys are quoted, long or multi-line values cut and escaped", () => {
  const problems = problemsAfter((d) => {
    documentOf(d, "vienna")["odd\nkey"] = 1;
    documentOf(d, "vienna").country = `${"y".repeat(100)}\nZ`;
    documentOf(d, "vienna").roles.virtualization.count = "x".repeat(100_000);
  });
  assert.deepEqual(problems, [
    `sites/vienna.yaml: country: "${"y".repeat(64)}…" is not an ISO 3166-1 alpha-2 country code`,
    `sites/vienna.yaml: roles.virtualization.count: expected number, got "${"x".repeat(64)}…"`,
    'sites/vienna.yaml: ["odd\\nkey"]: unknown key (check the spelling; see sites/schema/site.schema.json)',
  ]);
});

test("limits and missing choices say what to write", () => {
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").roles.virtualization.count = 500;
      documentOf(d, "vienna").management.allowlist = [];
      delete documentOf(d, "vienna").provider.hosts[0].role;
      delete documentOf(d, "vienna").public.mode;
    }),
    [
      "sites/vienna.yaml: provider.hosts[0].role: is required (one of firewall, proxy, virtualization, storage)",
      "sites/vienna.yaml: public.mode: is required (one of own-prefix, provider-failover-ips)",
      "sites/vienna.yaml: roles.virtualization.count: 500 is more than allowed: set 200 or less",
      "sites/vienna.yaml: management.allowlist: lists too few entries: list at least 1",
    ],
  );
});

test("partnerships are mutual or declared by standbyFor: a one-way partnership names both files", () => {
  // vienna -> frankfurt, but frankfurt <-> helsinki; and karlsruhe -> vienna is now one-sided too.
  assert.deepEqual(
    problemsAfter((d) => (documentOf(d, "vienna").partner = "frankfurt")),
    [
      "sites/karlsruhe.yaml: partner: vienna names frankfurt as its partner in sites/vienna.yaml, not karlsruhe: a one-way partnership: add karlsruhe to standbyFor in sites/vienna.yaml (vienna then stands by for karlsruhe too), or name each other as partners in both files",
      "sites/vienna.yaml: partner: frankfurt names helsinki as its partner in sites/frankfurt.yaml, not vienna: a one-way partnership: add vienna to standbyFor in sites/frankfurt.yaml (frankfurt then stands by for vienna too), or name each other as partners in both files",
    ],
  );
  // Swapping both pairs consistently is fine.
  assert.deepEqual(
    problemsAfter((d) => {
      documentOf(d, "vienna").partner = "frankfurt";
      documentOf(d, "frankfurt").partner = "vienna";
      documentOf(d, "karlsruhe").partner = "helsinki";
      documentOf(d, "helsinki").partner = "karlsruhe";
    }).filter((p) => p.includes(": partner:")),
    [],
  );
});

test("Hetzner Cloud: at most 50 subnets per network, named before anything is rendered", () => {
  assert.deepEqual(
    problemsAfter(
      (d) =>
        (documentOf(d, "helsinki").network.extraSegments = Array.from({ length: 44 }, (_, i) => ({
          name: `extra-${i}`,
          prefixLength: 28,
        }))),
    ),
    [
      "sites/helsinki.yaml: network.extraSegments: the site needs 51 segments (7 standard and heartbeat, 44 extra), each a subnet of its Hetzner Cloud network, but a Hetzner Cloud network holds at most 50 subnets (Hetzner Networks FAQ): remove 1 extra segment(s)",
    ],
  );
});

test("Hetzner Cloud: at the 50-subnet limit every server's first-boot user-data still fits in 32 KiB, so the subnet rule is the one that speaks", () => {
  const dir = sitesWith("helsinki.yaml", (data) => {
    data.network.extraSegments = Array.from({ length: 43 }, (_, i) => ({ name: `extra-${i}`, prefixLength: 28 }));
  });
  const { sites, footprint } = loadFootprint(dir);
  const helsinki = sites.find((s) => s.name === "helsinki")!;
  const sizes = planHostFiles(helsinki, sites, footprint).map((h) =>
    Buffer.byteLength(h.files.find((f) => f.delivery === "provision")!.content),
  );
  assert.ok(Math.max(...sizes) < HCLOUD_USER_DATA_LIMIT, `largest user-data ${Math.max(...sizes)} bytes`);
});

test("through the plan CLI: a broken address exits 2 with one line per problem and the count", async () => {
  const dir = sitesWith("vienna.yaml", (data) => {
    data.provider.hosts[2].address = "0.0.0.0";
    data.provider.hosts[3].address = "127.0.0.1";
  });
  const err: string[] = [];
  const code = await main(
    ["vienna", "--sites", dir],
    () => {},
    (line) => err.push(line),
  );
  assert.equal(code, 2);
  assert.deepEqual(err, [
    "sites/vienna.yaml: provider.hosts[2].address: 0.0.0.0 is the unspecified address, not a host address: give the address the provider assigned to the host",
    "sites/vienna.yaml: provider.hosts[3].address: 127.0.0.1 is a loopback address, not a host address: give the address the provider assigned to the host",
    "2 problem(s); nothing was planned",
  ]);
});

test("a pre-provisioned store's data disk is a whole disk or a stable link; Hetzner Cloud stores refuse one", () => {
  const storage = (d: ReturnType<typeof siteDocuments>, site: string) => {
    const roles = documentOf(d, site).roles;
    roles.storage ??= {};
    return roles.storage;
  };
  assert.deepEqual(
    problemsAfter((d) => (storage(d, "vienna").dataDisk = "/dev/vdb1; mkfs")),
    [
      "sites/vienna.yaml: roles.storage.dataDisk: must be a whole disk (/dev/vdb, /dev/sdb, /dev/nvme1n1) or a stable link under /dev/disk/by-id, by-path, by-uuid or by-label",
    ],
  );
  // Bare metal (Hetzner dedicated) has NVMe disks: a whole namespace is a disk, a partition of it is not.
  assert.deepEqual(
    problemsAfter((d) => (storage(d, "vienna").dataDisk = "/dev/nvme1n1")),
    [],
  );
  assert.equal(problemsAfter((d) => (storage(d, "vienna").dataDisk = "/dev/nvme1n1p1")).length, 1);
  assert.deepEqual(
    problemsAfter((d) => (storage(d, "helsinki").dataDisk = "/dev/sdb")),
    [
      "sites/helsinki.yaml: roles.storage.dataDisk: a Hetzner Cloud store's data disk is its volume, named by the rendered udev rule: remove the field",
    ],
  );
  // The named disk is the one DRBD replicates (and the first boot checks before it formats anything).
  const docs = siteDocuments();
  storage(docs, "vienna").dataDisk = "/dev/disk/by-id/virtio-data";
  const sites = validateSites(docs).sites;
  const { footprint } = loadFootprint();
  const files = planHostFiles(
    sites.find((s) => s.name === "vienna")!,
    sites,
    footprint,
  ).find((h) => h.host === "vie-stor-1")!.files;
  const resource = files.find((f) => f.path.startsWith("/etc/drbd.d/"))!;
  assert.match(resource.content, /disk +\/dev\/disk\/by-id\/virtio-data;/);
  assert.doesNotMatch(resource.content, /\/dev\/vdb/);
});
