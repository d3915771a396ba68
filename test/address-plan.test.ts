import test from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { validateSites } from "../lib/model/validate";
import { SiteModel, addressPlan, splitPublicPrefix } from "../lib/model/model";
import { cidr, containsAddress, containsCidr, overlaps, parseAddress } from "../lib/net/ipv4";
import { absentSiteNames, documentOf, siteDocuments } from "./helpers/sites";

function sitesAfter(change: (docs: ReturnType<typeof siteDocuments>) => void = () => {}): SiteModel[] {
  const docs = siteDocuments();
  change(docs);
  const { sites, problems } = validateSites(docs);
  assert.deepEqual(problems, []);
  return sites;
}
const byName = (sites: SiteModel[], name: string) => sites.find((s) => s.name === name)!;

test("the same files give the same model, byte for byte", () => {
  assert.equal(JSON.stringify(sitesAfter()), JSON.stringify(sitesAfter()));
});

test("segments of a site are inside its supernet and disjoint", () => {
  for (const site of sitesAfter()) {
    const supernet = cidr(site.supernet);
    site.segments.forEach((s, i) => {
      assert.ok(containsCidr(supernet, cidr(s.cidr)), `${site.name} ${s.name}`);
      for (const t of site.segments.slice(i + 1)) assert.ok(!overlaps(cidr(s.cidr), cidr(t.cidr)), `${s.name} ${t.name}`);
    });
  }
});

test("vienna's address plan: standard segments, one heartbeat per pair, gateways are the firewall VIPs", () => {
  const vienna = byName(sitesAfter(), "vienna");
  assert.deepEqual(
    addressPlan(vienna).map((r) => `${r.segment} ${r.cidr} gw ${r.gateway} ${r.firstUsable}-${r.lastUsable} ${r.vips}`),
    [
      "dmz 10.30.0.0/24 gw 10.30.0.1 10.30.0.1-10.30.0.254 10.30.0.1 (firewall), 10.30.0.4 (proxy)",
      "app 10.30.4.0/22 gw 10.30.4.1 10.30.4.1-10.30.7.254 10.30.4.1 (firewall)",
      "data 10.30.1.0/24 gw 10.30.1.1 10.30.1.1-10.30.1.254 10.30.1.1 (firewall), 10.30.1.5 (storage)",
      "mgmt 10.30.2.0/24 gw 10.30.2.1 10.30.2.1-10.30.2.254 10.30.2.1 (firewall)",
      "hb-firewall 10.30.3.0/29 gw - 10.30.3.1-10.30.3.6 -",
      "hb-proxy 10.30.3.8/29 gw - 10.30.3.9-10.30.3.14 -",
      "hb-storage 10.30.3.16/29 gw - 10.30.3.17-10.30.3.22 -",
    ],
  );
});

test("each cluster has its own heartbeat subnet holding exactly its two members", () => {
  for (const site of sitesAfter()) {
    const heartbeats = site.segments.filter((s) => s.kind === "heartbeat");
    assert.deepEqual(
      heartbeats.map((s) => s.cluster),
      ["firewall", "proxy", "storage"],
    );
    for (const pair of site.pairs) {
      const segment = site.segments.find((s) => s.name === pair.heartbeatSegment)!;
      const onSegment = site.hosts.filter((h) => h.interfaces.some((i) => i.segment === segment.name)).map((h) => h.name);
      assert.deepEqual(onSegment, [...pair.members]);
      for (const member of pair.members) assert.ok(containsAddress(cidr(segment.cidr), parseAddress(pair.heartbeat[member])!));
    }
  }
});

test("adding a segment never renumbers an existing one", () => {
  const before = byName(sitesAfter(), "vienna");
  const after = byName(
    sitesAfter((d) => (documentOf(d, "vienna").network.extraSegments = [{ name: "backup", prefixLength: 25, members: ["storage"] }])),
    "vienna",
  );
  assert.deepEqual(after.segments.slice(0, before.segments.length), before.segments);
  assert.deepEqual(after.segments.map((s) => s.name).slice(-1), ["backup"]);
  // The storage hosts join it, and keep every address they had.
  for (const host of before.hosts) {
    const now = after.hosts.find((h) => h.name === host.name)!;
    assert.deepEqual(now.interfaces.slice(0, host.interfaces.length), host.interfaces);
  }
  assert.deepEqual(
    after.hosts.filter((h) => h.interfaces.some((i) => i.segment === "backup")).map((h) => h.name),
    ["vie-fw-1", "vie-fw-2", "vie-stor-1", "vie-stor-2"],
  );
});

test("adding a pair of partner sites never renumbers the others", () => {
  const before = sitesAfter();
  // Partnerships are mutual, so new sites arrive as a pair that names each other. Their names, codes, supernets,
  // public prefixes and provider addresses are ones no site file uses yet, so the pair is valid whatever sites exist.
  const [first, second] = absentSiteNames(2);
  const newSite = (d: ReturnType<typeof siteDocuments>, name: string, partner: string) => {
    const files = d.map((doc) => doc.data as Record<string, any>);
    const used = JSON.stringify(files);
    const code = [..."abcdefghijklmnopqrstuvwxyz"].map((c) => `zz${c}`).find((c) => !files.some((f) => f.code === c))!;
    // A /16 supernet and a 198.19.<n>.0/24 for its provider addresses that no site uses.
    const n = Array.from({ length: 155 }, (_, i) => i + 100).find(
      (k) => !files.some((f) => overlaps(cidr(f.network.supernet), cidr(`10.${k}.0.0/16`))) && !used.includes(`198.19.${k}.`),
    )!;
    // A public /23 that overlaps no site's prefix and holds no address a site file names.
    const p = Array.from({ length: 128 }, (_, i) => i * 2).find(
      (k) =>
        !files.some((f) => f.public.prefix && overlaps(cidr(f.public.prefix), cidr(`198.18.${k}.0/23`))) &&
        !used.includes(`198.18.${k}.`) &&
        !used.includes(`198.18.${k + 1}.`),
    )!;
    const site = structuredClone(documentOf(d, "vienna"));
    site.name = name;
    site.code = code;
    site.partner = partner;
    site.network.supernet = `10.${n}.0.0/16`;
    site.public.prefix = `198.18.${p}.0/23`;
    site.public.routing.nextHop = `198.19.${n}.10`;
    site.provider.hosts = site.provider.hosts.map((h: { name: string; address: string }, i: number) => ({
      ...h,
      name: h.name.replace("vie-", `${code}-`),
      address: `198.19.${n}.${i + 11}`,
    }));
    d.push({ file: `sites/${name}.yaml`, data: site });
  };
  const after = sitesAfter((d) => {
    newSite(d, first, second);
    newSite(d, second, first);
  });
  assert.equal(after.length, before.length + 2);
  for (const site of before) assert.deepEqual(byName(after, site.name), site);
  assert.deepEqual([byName(after, first).partner, byName(after, second).partner], [second, first]);
});

test("growing the virtualization pool adds hosts and moves none", () => {
  const before = byName(sitesAfter(), "helsinki");
  const after = byName(
    sitesAfter((d) => (documentOf(d, "helsinki").roles.virtualization.count = 9)),
    "helsinki",
  );
  for (const host of before.hosts)
    assert.deepEqual(
      after.hosts.find((h) => h.name === host.name),
      host,
    );
  assert.equal(after.hosts.length, before.hosts.length + 5);
});

test("own /23: failover, NAT, reserve and services blocks tile the prefix; proxy and NAT addresses sit in their blocks", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), (k) => {
      const prefix = `198.18.${(k * 2) % 256}.0/23`;
      const blocks = splitPublicPrefix(prefix);
      const all = [blocks.failover, blocks.nat, blocks.reserve, blocks.services].map(cidr);
      const size = all.reduce((n, c) => n + 2 ** (32 - c.length), 0);
      assert.equal(size, 512);
      all.forEach((c, i) => {
        assert.ok(containsCidr(cidr(prefix), c));
        all.slice(i + 1).forEach((d) => assert.ok(!overlaps(c, d)));
      });
    }),
  );
  const vienna = byName(sitesAfter(), "vienna");
  assert.equal(vienna.public.mode, "own-prefix");
  if (vienna.public.mode === "own-prefix") {
    assert.ok(containsAddress(cidr(vienna.public.blocks.failover), parseAddress(vienna.public.proxyAddress)!));
    assert.ok(containsAddress(cidr(vienna.public.blocks.nat), parseAddress(vienna.public.natAddress)!));
    assert.deepEqual(vienna.public.blocks, {
      failover: "198.18.4.0/26",
      nat: "198.18.4.64/26",
      reserve: "198.18.4.128/25",
      services: "198.18.5.0/24",
    });
  }
});

test("the active member setting moves only priorities", () => {
  const before = byName(sitesAfter(), "vienna");
  const after = byName(
    sitesAfter((d) => (documentOf(d, "vienna").pairs = { proxy: { active: 2 } })),
    "vienna",
  );
  assert.deepEqual(after.hosts, before.hosts);
  const proxyBefore = before.pairs.find((p) => p.role === "proxy")!;
  const proxyAfter = after.pairs.find((p) => p.role === "proxy")!;
  assert.deepEqual(proxyBefore.priorities, { "vie-proxy-1": 150, "vie-proxy-2": 100 });
  assert.deepEqual(proxyAfter.priorities, { "vie-proxy-2": 150, "vie-proxy-1": 100 });
  assert.equal(proxyAfter.active, "vie-proxy-2");
  assert.deepEqual({ ...proxyAfter, priorities: 0, active: 0, passive: 0 }, { ...proxyBefore, priorities: 0, active: 0, passive: 0 });
});

test("a dissolved pair keeps only the active member serving", () => {
  const vienna = byName(
    sitesAfter((d) => (documentOf(d, "vienna").pairs = { storage: { active: 2, dissolved: true } })),
    "vienna",
  );
  const storage = vienna.pairs.find((p) => p.role === "storage")!;
  assert.equal(storage.dissolved, true);
  assert.deepEqual(storage.priorities, { "vie-stor-2": 150 });
});

test("Hetzner Cloud hosts are spread in placement groups of at most ten", () => {
  const helsinki = byName(
    sitesAfter((d) => (documentOf(d, "helsinki").roles.virtualization.count = 23)),
    "helsinki",
  );
  const groups = new Map<string, number>();
  for (const h of helsinki.hosts) groups.set(h.physical, (groups.get(h.physical) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(groups), {
    "spread-fw-1": 2,
    "spread-proxy-1": 2,
    "spread-stor-1": 2,
    "spread-virt-1": 10,
    "spread-virt-2": 10,
    "spread-virt-3": 3,
  });
});

test("on Hetzner Cloud no segment contains the network's first address (the provider's router)", () => {
  const helsinki = byName(sitesAfter(), "helsinki");
  const router = parseAddress("10.40.0.1")!;
  for (const segment of helsinki.segments) assert.ok(!containsAddress(cidr(segment.cidr), router), `${segment.name} ${segment.cidr}`);
  // Pre-provisioned sites have no such router and start at the supernet's first block.
  assert.equal(byName(sitesAfter(), "vienna").segments[0].cidr, "10.30.0.0/24");
  assert.deepEqual(
    helsinki.segments.map((s) => `${s.name} ${s.cidr}`),
    [
      "dmz 10.40.1.0/24",
      "app 10.40.4.0/22",
      "data 10.40.2.0/24",
      "mgmt 10.40.3.0/24",
      "hb-firewall 10.40.0.8/29",
      "hb-proxy 10.40.0.16/29",
      "hb-storage 10.40.0.24/29",
    ],
  );
});

test("a Hetzner Cloud supernet that holds 172.31.1.1 (every server's public gateway) keeps it out of every segment", () => {
  const helsinki = byName(
    sitesAfter((d) => (documentOf(d, "helsinki").network.supernet = "172.31.0.0/20")),
    "helsinki",
  );
  const gateway = parseAddress("172.31.1.1")!;
  for (const s of helsinki.segments) assert.ok(!containsAddress(cidr(s.cidr), gateway), `${s.name} ${s.cidr}`);
  // The network's first address (Hetzner's router) stays out too; dmz moves past both.
  assert.equal(helsinki.segments.find((s) => s.name === "dmz")!.cidr, "172.31.2.0/24");
});
