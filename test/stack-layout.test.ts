// One layout at every location: pre-provisioned and Hetzner Cloud sites compared,
// and what changes (or does not) when a site file changes.
import test from "node:test";
import assert from "node:assert/strict";
import { InputError } from "../lib/model/validate";
import { loadSites } from "../lib/model/load";
import { cidr, containsAddress, parseAddress } from "../lib/net/ipv4";
import { MockRunResult } from "../lib/preview/harness";
import { countByType, diffPlans, fileChanges, stableJson, toSnapshot, transactionFiles } from "../lib/preview/plan";
import { planStack } from "../lib/preview/run-stack";
import { sitesWith } from "./helpers/sites";

const LOCATIONS = ["frankfurt", "helsinki", "karlsruhe", "vienna"] as const;
type Location = (typeof LOCATIONS)[number];
// The mock runtime is process-global: plans run one at a time, each once.
const cache = new Map<Location, MockRunResult>();
async function planOf(location: Location): Promise<MockRunResult> {
  if (!cache.has(location)) cache.set(location, await planStack(location));
  return cache.get(location)!;
}
const outputs = async (l: Location) => (await planOf(l)).outputs as Record<string, any>;
const inBlock = (address: string, block: string) => containsAddress(cidr(block), parseAddress(address)!);

/**
 * What the layout is, whatever the provider: segments, the segments each
 * role joins, the pairs and the zone policy's rule names (partner named
 * generically; the Kubernetes API rule exists exactly where Kubernetes runs).
 */
function projection(o: Record<string, any>) {
  const roleSegments = Object.fromEntries(
    Object.entries(o.hostsByRole as Record<string, Array<{ interfaces: Array<{ segment: string }> }>>).map(([role, hosts]) => [
      role,
      [...new Set(hosts.map((h) => h.interfaces.map((i) => i.segment).join(",")))],
    ]),
  );
  const pairs = Object.fromEntries(
    Object.entries(o.pairs as Record<string, any>).map(([role, p]) => [
      role,
      {
        members: p.members.length,
        heartbeat: p.heartbeat.segment,
        vipSegments: p.vips.map((v: { segment: string }) => v.segment),
        dissolved: p.dissolved,
      },
    ]),
  );
  // Peers are named generically (the partner, and the far end of a migration tunnel), and the rules sorted:
  // their order follows the peers' names, which differ from site to site.
  const rules = (o.firewall.rules as string[])
    .map((r) => r.replace(/wg-[a-z]{3}-[a-z]{3}/, "wg-<tunnel>").replace(/(frankfurt|helsinki|karlsruhe|vienna)/, "<peer>"))
    .filter((r) => r !== "mgmt-to-kubernetes-api")
    .sort();
  return {
    segments: (o.addressPlan as Array<{ segment: string }>).map((s) => s.segment),
    roleSegments,
    pairs,
    rules,
    defaultAction: o.firewall.defaultAction,
    components: ["firewall", "proxy", "storage", "virtualization"].filter((r) => (o.hostsByRole[r] ?? []).length > 0),
  };
}

test("every location plans without error: one Host, one HostConfig and one transaction with its confirmation per host of its site file", async () => {
  const models = loadSites();
  for (const l of LOCATIONS) {
    const run = await planOf(l);
    const hosts = models.find((m) => m.name === l)!.hosts.length;
    const count = (type: string) => run.resources.filter((r) => r.type === type).length;
    // Every host has a packet filter, which a fresh connection confirms: a transaction and a confirmation each.
    assert.deepEqual(
      [count("standort:host:Host"), count("standort:hosts:HostConfig"), count("command:remote:Command")],
      [hosts, hosts, 2 * hosts],
      l,
    );
  }
});

test("the same site files give the same plan, byte for byte", async () => {
  const again = await planStack("helsinki");
  assert.equal(stableJson(toSnapshot(again)), stableJson(toSnapshot(await planOf("helsinki"))));
});

test("vienna shows the same layout on pre-provisioned hosts, without cloud resources", async () => {
  const run = await planOf("vienna");
  assert.deepEqual(countByType(run.resources), [
    // Delivery over SSH: no cloud resource, one transaction per host and its packet filter's confirmation.
    ["command:remote:Command", 18],
    ["pulumi:pulumi:StackReference", 2],
    ["random:index/randomBytes:RandomBytes", 2],
    // Job credentials for mail, the one service vienna writes: a restic password per repository (its two stores and
    // the off-site one at karlsruhe: 3), the replication password of postfixadmin to karlsruhe, its backup dump password.
    ["random:index/randomPassword:RandomPassword", 5],
    ["standort:firewall:Firewall", 1],
    ["standort:footprint:ReplicationCredentials", 1],
    ["standort:footprint:SiteTunnels", 1],
    ["standort:host:Host", 9],
    ["standort:hosts:HostConfig", 9],
    ["standort:network:NetworkSegments", 1],
    ["standort:pair:FailoverPair", 3],
    ["standort:prefix:RoutedPrefix", 1],
    ["standort:proxy:ProxyTier", 1],
    ["standort:site:Site", 1],
    ["standort:storage:Storage", 1],
    ["standort:virtualization:VirtualizationHosts", 1],
    // The database TLS of the site: one server certificate per virtualization host (3), each from its request,
    // signed by the site's own CA.
    ["tls:index/certRequest:CertRequest", 3],
    ["tls:index/locallySignedCert:LocallySignedCert", 3],
    // Each pair member's two fence keys (its fence sshd's host key, its client key): 12. Job credentials: the backup
    // SSH key, the replication SSH key to karlsruhe, the storage pair's shared host key, the database CA's key and the
    // three server keys: 7.
    ["tls:index/privateKey:PrivateKey", 19],
    ["tls:index/selfSignedCert:SelfSignedCert", 1],
  ]);
  const byUrn = new Map(run.resources.map((r) => [r.urn, r]));
  const hosts = run.resources.filter((r) => r.type === "standort:host:Host").map((h) => [h.name, byUrn.get(h.parent!)!.name]);
  assert.deepEqual(hosts, [
    ["vienna-fw-1", "vienna-fw"],
    ["vienna-fw-2", "vienna-fw"],
    ["vienna-proxy-1", "vienna-proxy"],
    ["vienna-proxy-2", "vienna-proxy"],
    ["vienna-stor-1", "vienna-stor"],
    ["vienna-stor-2", "vienna-stor"],
    ["vienna-virt-1", "vienna-virt"],
    ["vienna-virt-2", "vienna-virt"],
    ["vienna-virt-3", "vienna-virt"],
  ]);
  const o = await outputs("vienna");
  assert.deepEqual(
    o.hostsByRole.proxy.map((h: any) => [h.name, h.origin, h.physical, h.publicAddress]),
    [
      ["vie-proxy-1", "pre-provisioned", "vie-node-a", "198.19.40.21"],
      ["vie-proxy-2", "pre-provisioned", "vie-node-b", "198.19.40.22"],
    ],
  );
});

test("the layout has the same shape on Hetzner Cloud and on pre-provisioned hosts", async () => {
  const hel = await outputs("helsinki");
  const vie = await outputs("vienna");
  assert.deepEqual(projection(hel), projection(vie));
  assert.equal(projection(vie).defaultAction, "drop");
  // The one difference the projection leaves out, and why it differs.
  assert.ok(hel.firewall.rules.includes("mgmt-to-kubernetes-api"), "helsinki runs Kubernetes");
  assert.ok(!vie.firewall.rules.includes("mgmt-to-kubernetes-api"), "vienna runs docker-compose");
});

test("pre-provisioned pair members sit on separate physical machines", async () => {
  for (const location of ["frankfurt", "karlsruhe", "vienna"] as const) {
    const o = await outputs(location);
    const physical = new Map<string, string>(
      Object.values(o.hostsByRole)
        .flat()
        .map((h: any) => [h.name, h.physical]),
    );
    for (const [role, pair] of Object.entries(o.pairs as Record<string, any>)) {
      const [a, b] = pair.members.map((m: string) => physical.get(m));
      assert.ok(a && b && a !== b, `${location} ${role}: ${a} / ${b}`);
    }
  }
});

test("own-prefix failover addresses lie in the right block of the /23", async () => {
  for (const location of ["frankfurt", "vienna"] as const) {
    const o = await outputs(location);
    const { blocks, prefix } = o.publicRouting;
    assert.ok(prefix && blocks, location);
    assert.equal(o.failoverAddresses.proxy.block, "failover");
    assert.ok(inBlock(o.failoverAddresses.proxy.address, blocks.failover), `${location} proxy`);
    assert.equal(o.failoverAddresses.nat.block, "nat");
    assert.ok(inBlock(o.failoverAddresses.nat.address, blocks.nat), `${location} nat`);
    assert.deepEqual(o.partnerFacing.prefixes, [prefix]);
    assert.equal(o.partnerFacing.tunnel.endpoint, o.failoverAddresses.nat.address);
  }
  assert.equal((await outputs("frankfurt")).publicRouting.mode, "bgp");
  assert.equal((await outputs("vienna")).publicRouting.mode, "static");
  assert.equal((await outputs("vienna")).publicRouting.nextHop, "198.19.40.10");
});

test("karlsruhe says plainly that it uses the failover IPs the provider handed over", async () => {
  const o = await outputs("karlsruhe");
  assert.equal(o.publicRouting.mode, "provider-failover-ips");
  assert.match(
    o.publicRouting.note,
    /^karlsruhe has no own prefix: it uses provider failover IPs \(proxy, nat\) because IONOS routes no customer prefix/,
  );
  assert.deepEqual(o.failoverAddresses, {
    nat: { address: "198.19.20.101", heldBy: "firewall pair", source: "provider failover IP (site file: public.addresses)" },
    proxy: { address: "198.19.20.100", heldBy: "proxy pair", source: "provider failover IP (site file: public.addresses)" },
  });
});

test("every site keeps backups at least 30 days and replicates to its partner", async () => {
  for (const location of LOCATIONS) {
    const o = await outputs(location);
    assert.ok(o.storage.backups.daily >= 30, location);
    assert.ok(o.storage.backups.weekly > 0 && o.storage.backups.monthly > 0, location);
    assert.ok(o.storage.replication.intervalMinutes <= 15, location);
    const partner = await outputs(o.storage.replication.partnerSite);
    assert.equal(o.storage.replication.target, partner.partnerFacing.storageVip, location);
  }
});

test("the proxy tier binds to any address and health-checks every backend", async () => {
  for (const location of LOCATIONS) {
    const o = await outputs(location);
    assert.deepEqual(o.proxy.binds, [
      { address: "0.0.0.0", port: 80 },
      { address: "0.0.0.0", port: 443 },
    ]);
    const backends = o.hostsByRole.virtualization.map((h: any) => h.interfaces.find((i: any) => i.segment === "app").address).sort();
    for (const service of o.proxy.services) {
      assert.deepEqual(service.servers.map((s: any) => s.address).sort(), backends, location);
      for (const s of service.servers)
        assert.deepEqual([s.check.kind, s.check.intervalMs, s.check.fall, s.check.rise], ["tcp-connect", 2000, 3, 2]);
    }
    assert.ok(o.proxy.sizing.globalMaxconn >= 800 * 2, location);
  }
});

const last = (urn: string) => urn.split("::").pop()!;

test("switching the active member changes only the pair's priorities, not the hosts", async () => {
  for (const location of ["helsinki", "vienna"] as const) {
    const before = await planOf(location);
    const after = await planStack(location, { sitesDir: sitesWith(`${location}.yaml`, (d) => (d.pairs = { firewall: { active: 2 } })) });
    const diff = diffPlans(toSnapshot(before), toSnapshot(after));
    assert.deepEqual([diff.added, diff.removed], [[], []], location);
    // What Pulumi would act on: changed inputs not covered by the resource's ignoreChanges. Host transactions
    // change whenever one of their files does: they are judged by their files below.
    const ignored = new Map(after.resources.map((r) => [r.urn, r.ignoreChanges]));
    const acted = diff.changed
      .filter(({ urn }) => !/-(tx|confirm)$/.test(last(urn)))
      .flatMap(({ urn, changes }) =>
        changes.filter((c) => !ignored.get(urn)!.some((k) => c.path === `inputs.${k}`)).map((c) => `${last(urn)} ${c.path}`),
      );
    // Exactly the two members' keepalived configuration (priorities) and failover script (which member fences);
    // on Hetzner Cloud also the VIPs' declared holder: the gateways move from fw-1's alias IPs to fw-2's.
    const code = location === "helsinki" ? "hel" : "vie";
    const files = [1, 2].flatMap((n) =>
      ["/etc/keepalived/keepalived.conf", "/etc/keepalived/standort-failover.sh"].map(
        (file) => `${location}-cfg-${code}-fw-${n}-tx ${file}`,
      ),
    );
    assert.deepEqual(
      fileChanges(toSnapshot(before), toSnapshot(after)).map((c) => `${c.resource} ${c.path}`),
      files,
      location,
    );
    const aliases =
      location === "helsinki" ? [1, 2].flatMap((n) => [4, 5, 6, 7].map((i) => `helsinki-fw-${n}-private inputs.aliasIps[${i}]`)) : [];
    assert.deepEqual([...acted].sort(), aliases.sort(), location);
    if (location === "helsinki") {
      const aliasesOf = (name: string) => after.resources.find((r) => r.name === name)!.inputs.aliasIps as string[];
      assert.deepEqual(aliasesOf("helsinki-fw-2-private").slice(4), ["10.40.1.1", "10.40.4.1", "10.40.2.1", "10.40.3.1"]);
      assert.equal(aliasesOf("helsinki-fw-1-private").length, 4);
    }
    // On Hetzner Cloud the floating IP's declared start moves too, but the running keepalived owns it.
    const declaredOnly = diff.changed
      .filter(({ urn }) => !/-(tx|confirm)$/.test(last(urn)) && !acted.some((a) => a.startsWith(`${last(urn)} `)))
      .map(({ urn, changes }) => [last(urn), changes.map((c) => c.path)]);
    assert.deepEqual(declaredOnly, location === "helsinki" ? [["helsinki-fw-pair-nat-assignment", ["inputs.serverId"]]] : [], location);
    assert.deepEqual(diff.outputs, [
      { path: "pairs.firewall.active", before: `${code}-fw-1`, after: `${code}-fw-2` },
      { path: "pairs.firewall.passive", before: `${code}-fw-2`, after: `${code}-fw-1` },
      { path: `pairs.firewall.priorities.${code}-fw-1`, before: 150, after: 100 },
      { path: `pairs.firewall.priorities.${code}-fw-2`, before: 100, after: 150 },
    ]);
  }
});

test("changing the number of virtualization hosts changes only those hosts (and the proxies' backend list, the scrape targets, the hairpin NAT)", async () => {
  const hel = await planStack("helsinki", { sitesDir: sitesWith("helsinki.yaml", (d) => (d.roles.virtualization.count = 5)) });
  const helDiff = diffPlans(toSnapshot(await planOf("helsinki")), toSnapshot(hel));
  const typed = (urn: string) => `${urn.split("::")[2].split("$").pop()} ${last(urn)}`;
  // Everything added belongs to the new host: its server, attachment and component, the delivery of its files, and
  // its database server certificate (key, request, certificate signed by the site's CA; no other host's changes).
  const added = helDiff.added.map(typed);
  assert.ok(
    added.every((a) => / helsinki-(virt-5|cfg-hel-virt-5|credentials-db-tls-server-hel-virt-5)(-|$)/.test(a)),
    added.join("\n"),
  );
  assert.deepEqual(
    added.filter((a) => !a.startsWith("command:")),
    [
      "tls:index/certRequest:CertRequest helsinki-credentials-db-tls-server-hel-virt-5-request",
      "tls:index/locallySignedCert:LocallySignedCert helsinki-credentials-db-tls-server-hel-virt-5",
      "tls:index/privateKey:PrivateKey helsinki-credentials-db-tls-server-hel-virt-5-key",
      "hcloud:index/server:Server helsinki-virt-5",
      "hcloud:index/serverNetwork:ServerNetwork helsinki-virt-5-private",
      "standort:hosts:HostConfig helsinki-cfg-hel-virt-5",
      "standort:host:Host helsinki-virt-5",
    ],
  );
  // The new server and its attachment are children of the new host.
  const host = hel.resources.find((r) => r.type === "standort:host:Host" && r.name === "helsinki-virt-5")!;
  assert.deepEqual(
    hel.resources.filter((r) => r.type.startsWith("hcloud:") && r.name.startsWith("helsinki-virt-5")).map((r) => r.parent),
    [host.urn, host.urn],
  );
  // Nothing removed; the only existing files that change are the proxies' HAProxy files, which list the pool, and
  // the storage hosts' Prometheus files, which list the hosts to scrape.
  assert.deepEqual(helDiff.removed, []);
  assert.deepEqual(
    helDiff.changed.map((c) => last(c.urn)),
    [
      "helsinki-cfg-hel-proxy-1-confirm",
      "helsinki-cfg-hel-proxy-1-tx",
      "helsinki-cfg-hel-proxy-2-confirm",
      "helsinki-cfg-hel-proxy-2-tx",
      "helsinki-cfg-hel-stor-1-confirm",
      "helsinki-cfg-hel-stor-1-tx",
      "helsinki-cfg-hel-stor-2-confirm",
      "helsinki-cfg-hel-stor-2-tx",
    ],
  );
  assert.deepEqual(
    fileChanges(toSnapshot(await planOf("helsinki")), toSnapshot(hel))
      .filter((c) => c.kind !== "added" || !c.resource.startsWith("helsinki-cfg-hel-virt-5-"))
      .map((c) => `${c.resource} ${c.path}`),
    [
      "helsinki-cfg-hel-proxy-1-tx /etc/haproxy/haproxy.cfg",
      "helsinki-cfg-hel-proxy-2-tx /etc/haproxy/haproxy.cfg",
      "helsinki-cfg-hel-stor-1-tx /etc/prometheus/prometheus.yml",
      "helsinki-cfg-hel-stor-2-tx /etc/prometheus/prometheus.yml",
    ],
  );
  assert.ok(
    helDiff.outputs.every((c) => /^(hostsByRole\.virtualization|proxy\.(services|sizing))/.test(c.path)),
    JSON.stringify(helDiff.outputs.map((c) => c.path)),
  );

  const vie = await planStack("vienna", {
    sitesDir: sitesWith("vienna.yaml", (d) =>
      d.provider.hosts.push({ name: "vie-virt-4", role: "virtualization", physical: "vie-node-f", address: "198.19.40.44" }),
    ),
  });
  const vieDiff = diffPlans(toSnapshot(await planOf("vienna")), toSnapshot(vie));
  assert.ok(
    vieDiff.added.every((u) => /^vienna-(virt-4|cfg-vie-virt-4|credentials-db-tls-server-vie-virt-4)(-|$)/.test(last(u))),
    vieDiff.added.map(last).join("\n"),
  );
  assert.ok(vieDiff.added.map(last).includes("vienna-virt-4"));
  assert.deepEqual(
    vieDiff.added.map(last).filter((n) => n.startsWith("vienna-credentials-")),
    [
      "vienna-credentials-db-tls-server-vie-virt-4-request",
      "vienna-credentials-db-tls-server-vie-virt-4",
      "vienna-credentials-db-tls-server-vie-virt-4-key",
    ],
  );
  assert.deepEqual(vieDiff.removed, []);
  assert.deepEqual(
    fileChanges(toSnapshot(await planOf("vienna")), toSnapshot(vie))
      .filter((c) => !c.resource.startsWith("vienna-cfg-vie-virt-4-"))
      .map((c) => `${c.resource} ${c.path}`),
    // The firewalls' hairpin NAT lists every host's own uplink address; the new host has one.
    [
      "vienna-cfg-vie-fw-1-tx /etc/nftables.conf",
      "vienna-cfg-vie-fw-2-tx /etc/nftables.conf",
      "vienna-cfg-vie-proxy-1-tx /etc/haproxy/haproxy.cfg",
      "vienna-cfg-vie-proxy-2-tx /etc/haproxy/haproxy.cfg",
      "vienna-cfg-vie-stor-1-tx /etc/prometheus/prometheus.yml",
      "vienna-cfg-vie-stor-2-tx /etc/prometheus/prometheus.yml",
    ],
  );
});

test("a dissolved pair leaves one member serving and keeps both hosts", async () => {
  const run = await planStack("vienna", {
    sitesDir: sitesWith("vienna.yaml", (d) => (d.pairs = { proxy: { active: 2, dissolved: true } })),
  });
  const o = run.outputs as Record<string, any>;
  assert.deepEqual(
    [o.pairs.proxy.dissolved, o.pairs.proxy.serving, o.pairs.proxy.priorities],
    [true, ["vie-proxy-2"], { "vie-proxy-2": 150 }],
  );
  assert.deepEqual(
    o.hostsByRole.proxy.map((h: any) => h.name),
    ["vie-proxy-1", "vie-proxy-2"],
  );
  // The released member runs no keepalived any more: its delivery has no keepalived file.
  const files = (host: string) => Object.keys(transactionFiles(toSnapshot(run)).get(`vienna-cfg-${host}-tx`)!);
  assert.ok(files("vie-proxy-2").includes("/etc/keepalived/keepalived.conf"));
  assert.ok(!files("vie-proxy-1").some((n) => n.includes("keepalived")));
});

test("dissolving the storage pair is refused while services keep backups there: two independent stores", async () => {
  await assert.rejects(
    planStack("vienna", { sitesDir: sitesWith("vienna.yaml", (d) => (d.pairs = { storage: { active: 2, dissolved: true } })) }),
    (e: InputError) =>
      e.problems.length === 1 &&
      /^sites\/footprint\.yaml: services\[1\] \(mail\): backups at vienna need two independent stores but the storage pair vie-storage is dissolved: restore it/.test(
        e.problems[0],
      ),
  );
});
