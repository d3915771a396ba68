// Pure logic behind the components: no Pulumi runtime involved.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseDocument } from "yaml";
import { SITES_DIR, loadSites } from "../lib/model/load";
import { SiteModel, buildSiteModel } from "../lib/model/model";
import { SiteFileSchema } from "../lib/model/schema";
import { InputError } from "../lib/model/validate";
import { cidr, containsAddress, parseAddress } from "../lib/net/ipv4";
import { zonePolicy } from "../lib/render/policy";
import { cloudFirewallRules, cloudFirewallRulesByRole, portRanges, receivingRoles } from "../components/firewall/cloud-rules";
import { commandFencing, hcloudFencing } from "../components/failover-pair/fencing";
import { servingMembers, takeoverSteps, vrrpPlan } from "../components/failover-pair/plan";
import { bootstrapFor, defaultUserData } from "../components/host/bootstrap";
import { hcloudRouteGateway, serverNetworkPlan } from "../lib/providers/hcloud/provisioning";
import { ANY_ADDRESS, HEALTH_CHECK, MISSION_LOAD, proxyPlan, proxySizing } from "../components/proxy-tier/plan";
import { SERVER_CHECK, haproxyMaxconn } from "../lib/render/haproxy";
import { prefixPlan } from "../components/routed-prefix/plan";
import { MIN_BACKUP_DAYS, storagePlan } from "../components/storage/plan";
import { roleSegments } from "../components/virtualization-hosts";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const pairOf = (m: SiteModel, role: string) => m.pairs.find((p) => p.role === role)!;
const inBlock = (address: string, block: string) => containsAddress(cidr(block), parseAddress(address)!);

/** Builds a model from a repository site file with `change` applied to its parsed YAML. */
function modelWith(name: string, change: (data: Record<string, any>) => void): SiteModel {
  const data = parse(readFileSync(join(SITES_DIR, `${name}.yaml`), "utf8"));
  change(data);
  const built = buildSiteModel(`sites/${name}.yaml`, SiteFileSchema.parse(data));
  assert.deepEqual(built.problems, []);
  return built.model!;
}

test("serverNetworkPlan attaches a host by its first segment address and aliases the rest", () => {
  const fw = site("helsinki").hosts.find((h) => h.name === "hel-fw-1")!;
  // The active firewall also holds the pair's VIPs (the segment gateways) as alias IPs.
  assert.deepEqual(serverNetworkPlan(fw, site("helsinki")), {
    segment: "dmz",
    ip: "10.40.1.2",
    aliasIps: ["10.40.4.2", "10.40.2.2", "10.40.3.2", "10.40.0.9", "10.40.1.1", "10.40.4.1", "10.40.2.1", "10.40.3.1"],
  });
  const passive = site("helsinki").hosts.find((h) => h.name === "hel-fw-2")!;
  assert.deepEqual(serverNetworkPlan(passive, site("helsinki")).aliasIps, ["10.40.4.3", "10.40.2.3", "10.40.3.3", "10.40.0.10"]);
  const virt = site("helsinki").hosts.find((h) => h.name === "hel-virt-1")!;
  assert.deepEqual(serverNetworkPlan(virt, site("helsinki")), { segment: "app", ip: "10.40.4.32", aliasIps: ["10.40.3.32"] });
});

test("the hcloud route gateway is a firewall VIP, never the network's first address", () => {
  const helsinki = site("helsinki");
  // The model keeps segments clear of the network's first address, so the dmz VIP is usable.
  assert.equal(helsinki.pairs[0].vips[0].address, "10.40.1.1");
  assert.equal(hcloudRouteGateway(helsinki), "10.40.1.1");
  // A model whose firewall VIPs are all refused must be rejected, not routed to Hetzner's router.
  const onlyFirst = {
    ...helsinki,
    pairs: helsinki.pairs.map((p) => (p.role === "firewall" ? { ...p, vips: [{ ...p.vips[0], address: "10.40.0.1" }] } : p)),
  };
  assert.throws(
    () => hcloudRouteGateway(onlyFirst),
    (e: unknown) => e instanceof InputError && /10\.40\.0\.1 is the network's first address/.test(e.problems[0]),
  );
});

test("portRanges merges consecutive ports into ranges", () => {
  assert.deepEqual(portRanges([443, 80, 81, 82, 22]), ["22", "80-82", "443"]);
  assert.deepEqual(portRanges([]), []);
  assert.deepEqual(portRanges([8080, 8080]), ["8080"]);
});

test("cloud firewall rules come only from outside zones, SSH only from the allowlist", () => {
  const helsinki = site("helsinki");
  const policy = zonePolicy(helsinki, sites);
  const byRole = cloudFirewallRulesByRole(policy);
  for (const role of ["firewall", "proxy", "virtualization", "storage"] as const) {
    const ssh = byRole[role].filter((r) => r.protocol === "tcp" && r.port === "22");
    assert.deepEqual(
      ssh.map((r) => [r.description, r.sourceIps]),
      [["allowlist-to-ssh", ["198.19.255.0/24"]]],
      role,
    );
  }
  // Only the proxies are open to the internet, and only for the web and DNS.
  const open = (role: "firewall" | "proxy" | "virtualization" | "storage") => byRole[role].filter((r) => r.sourceIps.includes("0.0.0.0/0"));
  assert.deepEqual(
    open("proxy").map((r) => `${r.protocol}/${r.port}`),
    ["tcp/80", "tcp/443", "udp/53", "tcp/53"],
  );
  for (const role of ["firewall", "virtualization", "storage"] as const) assert.deepEqual(open(role), [], role);
  // Rules between segments or with the partner never reach a cloud firewall.
  const descriptions = new Set(
    Object.values(byRole)
      .flat()
      .map((r) => r.description),
  );
  for (const rule of policy.filter((r) => !["internet", "allowlist", "bgp-peer"].includes(r.from.kind)))
    assert.ok(!descriptions.has(rule.name), rule.name);
});

test("a forwarded outside rule lands on the firewall's public interface", () => {
  // With an own prefix, web traffic arrives at the firewall, which forwards it to the proxy VIP.
  const rule = zonePolicy(site("frankfurt"), sites).find((r) => r.name === "internet-to-proxy-web")!;
  assert.equal(rule.forwarded, true);
  assert.deepEqual(receivingRoles(rule), ["firewall"]);
  assert.deepEqual(
    cloudFirewallRules([rule], "firewall").map((r) => [r.protocol, r.port, r.sourceIps]),
    [
      ["tcp", "80", ["0.0.0.0/0"]],
      ["tcp", "443", ["0.0.0.0/0"]],
    ],
  );
  assert.deepEqual(cloudFirewallRules([rule], "proxy"), []);
  // Where a provider failover IP lands on the proxy itself, the proxies receive it.
  const direct = zonePolicy(site("helsinki"), sites).find((r) => r.name === "internet-to-proxy-web")!;
  assert.deepEqual(receivingRoles(direct), ["proxy"]);
});

test("BGP peers reach only the firewall, on 179, from their own address", () => {
  const rules = cloudFirewallRules(zonePolicy(site("frankfurt"), sites), "firewall").filter((r) => r.port === "179");
  assert.deepEqual(
    rules.map((r) => [r.description, r.sourceIps]),
    [
      ["bgp-edge-a", ["198.19.10.1/32"]],
      ["bgp-edge-b", ["198.19.10.2/32"]],
    ],
  );
});

test("hcloud fencing tries the peer's fence sshd over mgmt first, then powers the server off through the API", () => {
  const pair = pairOf(site("helsinki"), "firewall");
  const plan = hcloudFencing(pair, { "hel-fw-1": "101", "hel-fw-2": "102" });
  const [mgmt, api] = plan.fence["hel-fw-2"];
  assert.match(mgmt.run, new RegExp(`^ssh -p 2201 .* root@${pair.mgmt["hel-fw-2"].replace(/\./g, "\\.")} `));
  assert.equal(api.run, "POST https://api.hetzner.cloud/v1/servers/102/actions/poweroff (token from /etc/standort/provider.env)");
  assert.match(plan.fence["hel-fw-1"][1].verify!, /servers\/101: status "off"/);
  assert.doesNotMatch(JSON.stringify(plan), /Bearer/, "the plan never shows how the token is sent");
  assert.throws(() => hcloudFencing(pair, { "hel-fw-1": "101" }), /no server id for hel-fw-2/);
});

test("pre-provisioned fencing tries the fence sshd over mgmt, then the site's fence command where it names one", () => {
  const vienna = site("vienna");
  const pair = pairOf(vienna, "storage");
  const plan = commandFencing(pair, "ipmitool -H %h-bmc power off # %h");
  assert.deepEqual(Object.fromEntries(Object.entries(plan.fence).map(([m, actions]) => [m, actions.map((a) => a.run.split(" (")[0])])), {
    "vie-stor-1": [
      `ssh -p 2201 -i /etc/standort/fence/id_ed25519 root@${pair.mgmt["vie-stor-1"]}`,
      "ipmitool -H vie-stor-1-bmc power off # vie-stor-1",
    ],
    "vie-stor-2": [
      `ssh -p 2201 -i /etc/standort/fence/id_ed25519 root@${pair.mgmt["vie-stor-2"]}`,
      "ipmitool -H vie-stor-2-bmc power off # vie-stor-2",
    ],
  });
  assert.equal(commandFencing(pair, undefined).fence["vie-stor-1"].length, 1);
  const dissolved = { ...pair, dissolved: true };
  assert.deepEqual(commandFencing(dissolved, "x %h").fence, {});
});

test("VRRP runs unicast on the heartbeat segment and mgmt; a dissolved pair keeps one member serving", () => {
  const vienna = site("vienna");
  const pair = pairOf(vienna, "proxy");
  assert.deepEqual(vrrpPlan(pair, vienna), {
    vrid: 11,
    priorities: { "vie-proxy-1": 150, "vie-proxy-2": 100 },
    segment: "hb-proxy",
    unicastPeers: { "vie-proxy-1": ["10.30.3.10"], "vie-proxy-2": ["10.30.3.9"] },
    mgmtUnicastPeers: { "vie-proxy-1": ["10.30.2.11"], "vie-proxy-2": ["10.30.2.10"] },
    advertIntervalSeconds: 0.2,
    preemptDelaySeconds: 0,
  });
  // Netcup moves the firewall pair's next hop at most every 5 minutes: the plan shows the failback delay.
  assert.equal(vrrpPlan(pairOf(vienna, "firewall"), vienna).preemptDelaySeconds, 330);
  const dissolved = modelWith("vienna", (d) => (d.pairs = { proxy: { active: 2, dissolved: true } }));
  const dp = pairOf(dissolved, "proxy");
  assert.deepEqual(servingMembers(dp), ["vie-proxy-2"]);
  assert.deepEqual(vrrpPlan(dp, dissolved).unicastPeers, { "vie-proxy-2": [] });
  assert.deepEqual(vrrpPlan(dp, dissolved).priorities, { "vie-proxy-2": 150 });
  assert.match(takeoverSteps(dp, "f", [], "v")[0], /dissolved: vie-proxy-2 serves alone, vie-proxy-1 is released/);
});

test("takeover fences before it moves addresses and takes the VIPs", () => {
  const steps = takeoverSteps(
    pairOf(site("helsinki"), "proxy"),
    "power off",
    [{ purpose: "proxy", how: "assign floating IP" }],
    "alias IPs",
  );
  assert.deepEqual(steps, [
    // RFC 5798 Master_Down_Interval for the passive priority 100 at 0.2 s adverts.
    "the surviving member misses VRRP advertisements on hb-proxy and mgmt for 0.722 s",
    "fence the failed member: power off",
    "move failover address proxy: assign floating IP",
    "become master and take the pair's VIPs (10.40.1.4): alias IPs",
  ]);
});

test("proxy sizing covers the mission's peak with headroom, as the HAProxy renderer configures it", () => {
  const sizing = proxySizing(MISSION_LOAD, 3);
  assert.deepEqual([MISSION_LOAD.peakConcurrent, MISSION_LOAD.requestsPerDay, MISSION_LOAD.headroom], [800, 3_000_000, 4]);
  assert.equal(sizing.averageRequestsPerSecond, 35); // 3,000,000 / 86,400 = 34.7
  assert.equal(sizing.peakRequestsPerSecond, 139);
  assert.equal(sizing.globalMaxconn, 4096); // 800 x 4 = 3200, next power of two
  assert.equal(sizing.globalMaxconn, haproxyMaxconn(), "the same figure the rendered haproxy.cfg carries");
  assert.ok(sizing.globalMaxconn >= MISSION_LOAD.peakConcurrent * MISSION_LOAD.headroom);
  assert.equal(sizing.fileDescriptors, 8192);
  assert.equal(sizing.perBackendAtPeakOneDown, 400);
  assert.equal(proxySizing(MISSION_LOAD, 1).perBackendAtPeakOneDown, 800);
  assert.equal(proxySizing({ ...MISSION_LOAD, peakConcurrent: 700, headroom: 2 }, 4).globalMaxconn, 2048);
  assert.throws(() => proxySizing(MISSION_LOAD, 0), /at least one backend/);
});

test("the proxy binds to any address and health-checks every backend of every service", () => {
  const vienna = site("vienna");
  const plan = proxyPlan(
    vienna.hosts.filter((h) => h.role === "proxy"),
    vienna.hosts.filter((h) => h.role === "virtualization"),
    [
      { name: "web", hostnames: ["www.example.org"], port: 8443 },
      { name: "platform", hostnames: [], port: 8080 },
    ],
  );
  assert.deepEqual(plan.binds, [
    { address: ANY_ADDRESS, port: 80 },
    { address: ANY_ADDRESS, port: 443 },
  ]);
  assert.equal(ANY_ADDRESS, "0.0.0.0");
  for (const service of plan.services) {
    assert.deepEqual(
      service.servers.map((s) => [s.name, s.address, s.port]),
      [
        ["vie-virt-1", "10.30.4.32", service.port],
        ["vie-virt-2", "10.30.4.33", service.port],
        ["vie-virt-3", "10.30.4.34", service.port],
      ],
    );
    for (const server of service.servers) assert.deepEqual(server.check, HEALTH_CHECK);
  }
  assert.deepEqual(HEALTH_CHECK, { kind: "tcp-connect", intervalMs: 2000, rise: 2, fall: 3, directive: SERVER_CHECK });
  assert.equal(SERVER_CHECK, "check inter 2s fall 3 rise 2");
  assert.deepEqual(plan.stats, { port: 8404, addresses: { "vie-proxy-1": "10.30.2.10", "vie-proxy-2": "10.30.2.11" } });
});

test("own-prefix failover addresses lie in their blocks of the /23", () => {
  for (const name of ["vienna", "frankfurt"]) {
    const m = site(name);
    const plan = prefixPlan(m, { routable: true, how: "by arrangement" }, pairOf(m, "firewall"));
    assert.ok(plan.blocks);
    const proxy = plan.addresses.find((a) => a.purpose === "proxy")!;
    const nat = plan.addresses.find((a) => a.purpose === "nat")!;
    assert.equal(proxy.block, "failover");
    assert.ok(inBlock(proxy.address!, plan.blocks.failover), `${name} proxy ${proxy.address}`);
    assert.equal(nat.block, "nat");
    assert.ok(inBlock(nat.address!, plan.blocks.nat), `${name} nat ${nat.address}`);
    for (const a of [proxy, nat]) assert.ok(!inBlock(a.address!, plan.blocks.services) && !inBlock(a.address!, plan.blocks.reserve));
    assert.deepEqual(
      plan.addresses.map((a) => a.holder),
      plan.mode === "static" ? ["firewall", "firewall", "firewall"] : ["firewall", "firewall"],
    );
  }
});

test("the prefix is announced by BGP, routed statically, or replaced by provider failover IPs — said plainly", () => {
  const fra = site("frankfurt");
  const bgp = prefixPlan(fra, { routable: true, how: "x" }, pairOf(fra, "firewall"));
  assert.equal(bgp.mode, "bgp");
  assert.deepEqual(bgp.bgp, {
    localAsn: 4200000101,
    peers: [
      { name: "edge-a", address: "198.19.10.1", asn: 8560 },
      { name: "edge-b", address: "198.19.10.2", asn: 8560 },
    ],
    exports: ["198.18.2.0/23"],
    imports: "none",
    announcedBy: "fra-fw-1",
    standby: "fra-fw-2",
  });
  const vie = site("vienna");
  const stat = prefixPlan(vie, { routable: true, how: "x" }, pairOf(vie, "firewall"));
  assert.equal(stat.mode, "static");
  assert.equal(stat.nextHop, "198.19.40.10");
  assert.deepEqual(stat.addresses.find((a) => a.purpose === "prefix-next-hop")?.address, "198.19.40.10");
  // An own prefix at a provider that cannot route it is replaced, and the note says so.
  const replaced = prefixPlan(vie, { routable: false, how: "no BYOIP" }, pairOf(vie, "firewall"));
  assert.equal(replaced.mode, "provider-failover-ips");
  assert.equal(
    replaced.note,
    "vienna: 198.18.4.0/23 cannot be routed here (no BYOIP); it is replaced by provider failover IPs (proxy, nat)",
  );
  assert.deepEqual(
    replaced.addresses.map((a) => [a.purpose, a.holder, a.address]),
    [
      ["proxy", "proxy", undefined],
      ["nat", "firewall", undefined],
    ],
  );
  const hel = site("helsinki");
  assert.match(
    prefixPlan(hel, { routable: false, how: "x" }, pairOf(hel, "firewall")).note,
    /^helsinki has no own prefix: it uses provider failover IPs \(proxy, nat\) because Hetzner Cloud/,
  );
});

test("storage keeps backups at least 30 days and replicates to the partner's storage VIP", () => {
  const plan = storagePlan(site("vienna"), [site("karlsruhe")]);
  assert.deepEqual(plan.backups, { daily: 30, weekly: 8, monthly: 12, keptDays: 360 });
  assert.ok(plan.backups.daily >= MIN_BACKUP_DAYS);
  assert.deepEqual(plan.export, {
    protocol: "nfs4",
    address: "10.30.1.5",
    path: "/srv/data",
    clients: ["10.30.4.0/22"],
    options: ["rw", "sync", "no_subtree_check", "root_squash"],
  });
  assert.deepEqual(plan.replication, {
    partnerSite: "karlsruhe",
    target: "10.20.1.5",
    partnerSupernet: "10.20.0.0/16",
    intervalMinutes: 15,
    path: "/srv/data/vienna",
  });
  assert.equal(plan.standbyFor, undefined, "vienna stands by only for its own partner");
  assert.deepEqual(plan.localSync, { from: "vie-stor-1", to: "vie-stor-2", intervalMinutes: 60 });
  assert.deepEqual(plan.snapshots, { intervalMinutes: 60, keep: 48, coversHours: 48 });
  assert.throws(() => storagePlan(site("vienna"), [site("helsinki")]), /helsinki is not the partner of vienna/);
  const short = { ...site("vienna"), storage: { ...site("vienna").storage, backups: { daily: 7, weekly: 0, monthly: 0 } } };
  assert.throws(
    () => storagePlan(short, [site("karlsruhe")]),
    (e: unknown) => e instanceof InputError && /less than 30 days/.test(e.problems[0]),
  );
});

test("every bootstrap has time sync, packet filter and node monitoring; virtualization adds its runtime", () => {
  const compose = bootstrapFor("virtualization", site("vienna"));
  const kube = bootstrapFor("virtualization", site("helsinki"));
  for (const b of [compose, kube, bootstrapFor("proxy", site("vienna")), bootstrapFor("storage", site("helsinki"))]) {
    for (const p of ["chrony", "nftables", "prometheus-node-exporter"]) assert.ok(b.packages.includes(p), p);
    assert.deepEqual(b.monitoring, { exporter: "prometheus-node-exporter", port: 9100 });
  }
  assert.equal(compose.runtime, "compose");
  assert.ok(compose.packages.includes("docker.io") && compose.services.includes("docker"));
  assert.equal(kube.runtime, "kubernetes");
  assert.ok(kube.packages.includes("containerd") && kube.services.includes("kubelet"));
  assert.deepEqual(Object.values(kube.extraPackages), [["kubeadm", "kubelet", "kubectl"]]);
  assert.deepEqual(compose.timeServers, ["ptbtime1.ptb.de", "ptbtime2.ptb.de", "ptbtime3.ptb.de"]);
  assert.ok(bootstrapFor("firewall", site("frankfurt")).packages.includes("bird2"), "BGP sites run BIRD");
  assert.ok(!bootstrapFor("firewall", site("vienna")).packages.includes("bird2"), "static sites do not");
});

test("the default user data is a cloud-config naming the host and installing its bootstrap", () => {
  const host = site("helsinki").hosts.find((h) => h.name === "hel-stor-2")!;
  const text = defaultUserData(host, bootstrapFor("storage", site("helsinki")));
  assert.ok(text.startsWith("#cloud-config\n"));
  const doc = parseDocument(text);
  assert.deepEqual(doc.errors, []);
  const data = doc.toJS();
  assert.equal(data.hostname, "hel-stor-2");
  assert.equal(data.ssh_pwauth, false);
  assert.deepEqual(data.packages, bootstrapFor("storage", site("helsinki")).packages);
});

test("each role joins exactly its segments", () => {
  const vienna = site("vienna");
  assert.deepEqual(roleSegments(vienna, "virtualization"), ["app", "mgmt"]);
  assert.deepEqual(roleSegments(vienna, "proxy"), ["dmz", "mgmt", "hb-proxy"]);
  assert.deepEqual(roleSegments(vienna, "storage"), ["data", "mgmt", "hb-storage"]);
  assert.deepEqual(roleSegments(vienna, "firewall"), ["dmz", "app", "data", "mgmt", "hb-firewall"]);
});
