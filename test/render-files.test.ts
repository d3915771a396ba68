// What the renderers put into each file: the lines that carry the site's
// policy, addresses and pairs; determinism; file order and flags; the plan
// folder layout.
import test from "node:test";
import assert from "node:assert/strict";
import { validateSites } from "../lib/model/validate";
import { documentOf, siteDocuments } from "./helpers/sites";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { gunzipSync } from "node:zlib";
import { parse } from "yaml";
import fc from "fast-check";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import {
  CLOUD_INIT_PATH,
  REDACTED,
  haproxyMaxconn,
  interfaceName,
  renderBirdConfig,
  renderChronyConfig,
  renderHaproxyConfig,
  renderHostFiles,
  renderKeepalivedConfig,
  renderNetworkdFiles,
  renderNftablesRuleset,
  renderSiteFiles,
  vlanId,
  writeRenderedFiles,
  zonePolicy,
} from "../lib/render";
import { FAKE_KEY, fakeSecrets } from "./helpers/secrets";
import { loadFootprint } from "../lib/footprint/load";
import { knownEndpoint, planTunnels } from "../lib/footprint/wireguard";
import { failoverMove } from "../lib/render/failover-move";
import { planHostFiles } from "../lib/preview/files";
import { adapterOf } from "../lib/providers/registry";
import { hostRouting } from "../lib/render/routing";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const options = { sites, sshAuthorizedKeys: [FAKE_KEY] };

const lines = (text: string) => text.split("\n").map((l) => l.trim());
const has = (text: string, line: string) => assert.ok(lines(text).includes(line), `missing line: ${line}\n---\n${text}`);
const lacks = (text: string, pattern: RegExp) => assert.ok(!pattern.test(text), `unexpected ${pattern}\n---\n${text}`);

test("interface names are the segment names, shortened deterministically past 15 characters", () => {
  assert.equal(interfaceName("dmz"), "dmz");
  assert.equal(interfaceName("hb-firewall"), "hb-firewall");
  assert.equal(interfaceName("backup-replication"), interfaceName("backup-replication"));
  assert.match(interfaceName("backup-replication"), /^backup-rep-[0-9a-f]{4}$/);
  assert.notEqual(interfaceName("backup-replication"), interfaceName("backup-replicator"));
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/), (name) => {
      const ifname = interfaceName(name);
      return ifname.length <= 15 && /^[a-z0-9-]+$/.test(ifname) && (name.length > 15 || ifname === name);
    }),
  );
});

test("VLAN ids are fixed for the standard and heartbeat segments and 100+ for extras", () => {
  const vienna = site("vienna");
  assert.deepEqual(
    vienna.segments.map((s) => [s.name, vlanId(vienna, s.name)]),
    [
      ["dmz", 10],
      ["app", 20],
      ["data", 30],
      ["mgmt", 40],
      ["hb-firewall", 51],
      ["hb-proxy", 52],
      ["hb-storage", 53],
    ],
  );
  const withExtras = {
    ...vienna,
    segments: [
      ...vienna.segments,
      { ...vienna.segments[0], name: "backup", kind: "extra" as const },
      { ...vienna.segments[0], name: "lab", kind: "extra" as const },
    ],
  };
  assert.equal(vlanId(withExtras, "backup"), 100);
  assert.equal(vlanId(withExtras, "lab"), 101);
  assert.equal(vlanId(vienna, "nope"), undefined);
});

test("the zone policy is data: named rules in a fixed order, partner rules from the partner's model", () => {
  const vienna = site("vienna");
  const policy = zonePolicy(vienna, sites);
  assert.deepEqual(
    policy.map((r) => r.name),
    [
      "internet-to-proxy-web",
      "internet-to-proxy-dns-udp",
      "internet-to-proxy-dns-tcp",
      "allowlist-to-ssh",
      "mgmt-to-ssh",
      "monitoring-to-node-exporter",
      "monitoring-to-haproxy-exporter",
      "monitoring-cluster",
      "monitoring-cluster-gossip",
      "mgmt-to-proxy-stats",
      "dmz-to-app-services",
      "app-cluster",
      "app-to-data-nfs",
      "data-to-storage-backup-ssh",
      "data-to-app-database-dumps",
      "site-to-hosts-ping",
      "allowlist-to-hosts-ping",
      "dmz-to-internet-tcp",
      "dmz-to-internet-udp",
      "app-to-internet-tcp",
      "app-to-internet-udp",
      "data-to-internet-tcp",
      "data-to-internet-udp",
      "mgmt-to-internet-tcp",
      "mgmt-to-internet-udp",
      "partner-karlsruhe-to-app-databases",
      "app-to-partner-karlsruhe-databases",
      "partner-karlsruhe-to-data-replication",
      "data-to-partner-karlsruhe-replication",
      "hb-firewall-vrrp",
      "hb-firewall-ping",
      "hb-firewall-conntrack-sync",
      "mgmt-vrrp-firewall",
      "mgmt-fence-firewall",
      "hb-proxy-vrrp",
      "hb-proxy-ping",
      "mgmt-vrrp-proxy",
      "mgmt-fence-proxy",
      "hb-storage-vrrp",
      "hb-storage-ping",
      "hb-storage-drbd",
      "mgmt-vrrp-storage",
      "mgmt-fence-storage",
    ],
  );
  const web = policy[0];
  assert.deepEqual(
    [web.protocol, web.ports, web.destinations, web.targets, web.forwarded],
    ["tcp", [80, 443], ["10.30.0.4/32"], ["proxy"], true],
  );
  // DNS reaches the name server on the proxies from the internet, like the web, over UDP and TCP.
  assert.deepEqual(
    policy
      .filter((r) => r.name.startsWith("internet-to-proxy-dns-"))
      .map((r) => [r.name, r.from.kind, r.protocol, r.ports, r.destinations, r.targets, r.forwarded, r.provedBy]),
    [
      ["internet-to-proxy-dns-udp", "internet", "udp", [53], ["10.30.0.4/32"], ["proxy"], true, "dns"],
      ["internet-to-proxy-dns-tcp", "internet", "tcp", [53], ["10.30.0.4/32"], ["proxy"], true, "dns"],
    ],
  );
  // Monitoring: Prometheus on the storage hosts (their mgmt /32s) scrapes every host and the proxies' HAProxy
  // exporter; the two monitoring servers reach each other.
  const monitors = ["10.30.2.20/32", "10.30.2.21/32"];
  assert.deepEqual(
    policy
      .filter((r) => r.name.startsWith("monitoring-"))
      .map((r) => [r.name, r.protocol, r.ports, r.sources, r.destinations, r.targets, r.forwarded]),
    [
      ["monitoring-to-node-exporter", "tcp", [9100], monitors, [], ["firewall", "proxy", "virtualization", "storage"], false],
      ["monitoring-to-haproxy-exporter", "tcp", [8405], monitors, ["10.30.2.10/32", "10.30.2.11/32"], ["proxy"], false],
      ["monitoring-cluster", "tcp", [9090, 9093, 9094], monitors, monitors, ["storage"], false],
      ["monitoring-cluster-gossip", "udp", [9094], monitors, monitors, ["storage"], false],
    ],
  );
  const databases = policy.find((r) => r.name === "partner-karlsruhe-to-app-databases")!;
  assert.deepEqual(
    [databases.ports, databases.sources, databases.destinations, databases.targets, databases.forwarded],
    [[3306, 5432], ["10.20.0.0/16"], ["10.30.4.0/22"], ["virtualization"], true],
  );
  // A tunnel to a site that is not the partner (a migration) makes that site a partner too, and opens its UDP port
  // to the peer's endpoint only.
  const withMigration = zonePolicy(vienna, sites, undefined, [
    { site: "helsinki", tunnel: "wg-hel-vie", listenPort: 48352, endpoint: "198.19.251.10" },
  ]);
  const udp = withMigration.find((r) => r.name === "internet-to-wg-hel-vie")!;
  assert.deepEqual([udp.protocol, udp.ports, udp.sources, udp.targets], ["udp", [48352], ["198.19.251.10/32"], ["firewall"]]);
  assert.ok(withMigration.some((r) => r.name === "partner-helsinki-to-data-replication" && r.sources[0] === "10.40.0.0/16"));
  const partner = policy.find((r) => r.name === "partner-karlsruhe-to-data-replication")!;
  assert.deepEqual([partner.sources, partner.destinations, partner.targets], [["10.20.0.0/16"], ["10.30.1.0/24"], ["storage"]]);
  // BGP rules exist only where BGP is configured, one per peer.
  assert.deepEqual(
    zonePolicy(site("frankfurt"), sites)
      .filter((r) => r.from.kind === "bgp-peer")
      .map((r) => [r.name, r.sources]),
    [
      ["bgp-edge-a", ["198.19.10.1/32"]],
      ["bgp-edge-b", ["198.19.10.2/32"]],
    ],
  );
  // So does the scrape of the BGP exporter on the firewalls.
  assert.ok(!policy.some((r) => r.name === "monitoring-to-bird-exporter"));
  const bird = zonePolicy(site("frankfurt"), sites).find((r) => r.name === "monitoring-to-bird-exporter")!;
  assert.deepEqual(
    [bird.protocol, bird.ports, bird.sources, bird.destinations, bird.targets],
    ["tcp", [9324], ["10.10.2.20/32", "10.10.2.21/32"], ["10.10.2.2/32", "10.10.2.3/32"], ["firewall"]],
  );
  // Services' ports enter the policy.
  const withShop = zonePolicy(vienna, sites, [
    { name: "platform", hostnames: [], port: 8080 },
    { name: "shop", hostnames: ["shop.example.org"], port: 8443 },
  ]);
  assert.deepEqual(withShop.find((r) => r.name === "dmz-to-app-services")!.ports, [8080, 8443]);
});

test("the edge firewall: default deny, state, anti-spoofing, DNAT and SNAT of the own prefix", () => {
  const nft = renderNftablesRuleset(site("frankfurt"), "fra-fw-1", options);
  has(nft, "type filter hook input priority filter; policy drop;");
  has(nft, "type filter hook forward priority filter; policy drop;");
  assert.equal(nft.match(/ct state established,related accept/g)?.length, 2, "input and forward");
  assert.equal(nft.match(/ct state invalid counter drop/g)?.length, 2);
  has(
    nft,
    'iifname != @internal_ifs ip saddr { 10.10.0.0/16, 127.0.0.0/8, 198.18.2.0/23 } counter drop comment "anti-spoofing: internal or own-prefix source from outside"',
  );
  has(nft, 'fib saddr . iif oif missing counter drop comment "anti-spoofing: reverse path check"');
  has(
    nft,
    'iifname != @internal_ifs ip daddr 198.18.2.1 tcp dport { 80, 443 } dnat to 10.10.0.4 comment "public proxy address to the proxy VIP"',
  );
  has(
    nft,
    'oifname != @internal_ifs ip saddr 10.10.0.0/16 ip daddr != @partner_supernets snat to 198.18.2.65 comment "outbound NAT to the own prefix\'s NAT address"',
  );
  has(nft, 'iifname != @internal_ifs oifname "dmz" ip daddr 10.10.0.4 tcp dport { 80, 443 } accept comment "internet-to-proxy-web"');
  has(nft, "elements = { 198.19.255.0/24 }");
  has(nft, "elements = { 10.40.0.0/16 }");
  // Management only from the allowlist and the mgmt segment.
  assert.deepEqual(
    lines(nft).filter((l) => /tcp dport 22 accept/.test(l) && /comment "(allowlist|mgmt)-to-ssh"/.test(l)),
    [
      'ip saddr @mgmt_allowlist tcp dport 22 accept comment "allowlist-to-ssh"',
      'iifname "mgmt" ip saddr 10.10.2.0/24 tcp dport 22 accept comment "mgmt-to-ssh"',
    ],
  );
  // VRRP only on the heartbeat segment between the two members; BGP only with the peers.
  assert.deepEqual(
    lines(nft).filter((l) => l.includes("ip protocol 112")),
    [
      'iifname "hb-firewall" ip saddr { 10.10.3.1, 10.10.3.2 } ip daddr 10.10.3.1 ip protocol 112 accept comment "hb-firewall-vrrp"',
      'iifname "mgmt" ip saddr { 10.10.2.2, 10.10.2.3 } ip daddr 10.10.2.2 ip protocol 112 accept comment "mgmt-vrrp-firewall"',
    ],
  );
  assert.deepEqual(
    lines(nft).filter((l) => l.includes("dport 179")),
    [
      'iifname != @internal_ifs ip saddr 198.19.10.1 tcp dport 179 accept comment "bgp-edge-a"',
      'iifname != @internal_ifs ip saddr 198.19.10.2 tcp dport 179 accept comment "bgp-edge-b"',
    ],
  );
  // Only the standort tables are replaced; other tables (container runtimes) survive.
  lacks(nft, /flush ruleset/);
  has(nft, "delete table inet standort");
});

/** The failover IPs a pre-provisioned provider-failover-ips site declares. */
function declared(model: SiteModel): { proxy: string; nat: string } {
  assert.ok(model.public.mode === "provider-failover-ips" && model.public.declared, `${model.name} declares its failover IPs`);
  return model.public.declared;
}

test("a provider-failover-ips firewall NATs to its failover IP (or masquerades without one) and forwards nothing from the internet", () => {
  const nft = renderNftablesRuleset(site("karlsruhe"), "fkb-fw-2", options);
  has(
    nft,
    `oifname != @internal_ifs ip saddr 10.20.0.0/16 ip daddr != @partner_supernets snat to ${declared(site("karlsruhe")).nat} comment "outbound NAT to the NAT failover IP"`,
  );
  lacks(nft, /dnat/);
  lacks(nft, /comment "internet-to-proxy-web"/);
  lacks(nft, /dport 179/);
  has(
    renderNftablesRuleset(site("helsinki"), "hel-fw-1", options),
    'oifname != @internal_ifs ip saddr 10.40.0.0/16 ip daddr != @partner_supernets masquerade comment "outbound NAT to the provider address"',
  );
});

test("host packet filters: proxies serve the web, storage serves NFS to app, virtualization serves the proxies", () => {
  const proxy = renderNftablesRuleset(site("karlsruhe"), "fkb-proxy-1", options);
  // Straight from outside, on the uplink only: a host inside reaches no proxy on 443 through a segment link.
  has(
    proxy,
    `iifname != @internal_ifs ip daddr ${declared(site("karlsruhe")).proxy} tcp dport { 80, 443 } accept comment "internet-to-proxy-web"`,
  );
  // A host filter names only its own addresses: the other member's are not its business.
  has(proxy, 'iifname "mgmt" ip saddr 10.20.2.0/24 ip daddr 10.20.2.10 tcp dport 8404 accept comment "mgmt-to-proxy-stats"');
  has(proxy, "# This host does not route.");
  lacks(proxy, /2049/);
  // Without a declared address (Hetzner Cloud assigns it), the proxies take the web on any public address.
  has(
    renderNftablesRuleset(site("helsinki"), "hel-proxy-1", options),
    'iifname != @internal_ifs tcp dport { 80, 443 } accept comment "internet-to-proxy-web"',
  );

  const storage = renderNftablesRuleset(site("vienna"), "vie-stor-1", options);
  // NFS to the storage VIP only: the export follows the member that serves.
  has(storage, 'iifname "data" ip saddr 10.30.4.0/22 ip daddr 10.30.1.5 tcp dport 2049 accept comment "app-to-data-nfs"');
  has(
    storage,
    'iifname "data" ip saddr 10.20.0.0/16 ip daddr 10.30.1.0/24 tcp dport 22 accept comment "partner-karlsruhe-to-data-replication"',
  );
  lacks(storage, /dport \{ 80, 443 \}/);

  // Helsinki's addresses come from its model (Hetzner Cloud keeps the network's first address for itself).
  const hel = site("helsinki");
  const cidrOf = (name: string) => hel.segments.find((x) => x.name === name)!.cidr;
  const virt2Mgmt = hel.hosts.find((h) => h.name === "hel-virt-2")!.interfaces.find((i) => i.segment === "mgmt")!.address;
  const virt = renderNftablesRuleset(hel, "hel-virt-2", options);
  has(virt, `iifname "app" ip saddr ${cidrOf("dmz")} ip daddr ${cidrOf("app")} tcp dport 8080 accept comment "dmz-to-app-services"`);
  has(virt, `iifname "mgmt" ip saddr ${cidrOf("mgmt")} ip daddr ${virt2Mgmt} tcp dport 6443 accept comment "mgmt-to-kubernetes-api"`);
  // Growing the pool leaves an existing host's filter as it was.
  const docs = siteDocuments();
  documentOf(docs, "helsinki").roles.virtualization.count = 9;
  const grown = validateSites(docs).sites.find((s) => s.name === "helsinki")!;
  assert.equal(grown.hosts.filter((h) => h.role === "virtualization").length, 9);
  assert.equal(renderNftablesRuleset(grown, "hel-virt-2", options), virt);
  // The container runtime forwards for its containers; the host's own forward chain only holds translated (published)
  // ports to the zone policy, and drops the rest.
  has(virt, "type filter hook forward priority filter; policy accept;");
  has(
    virt,
    `iifname @internal_ifs ct status dnat ip saddr ${cidrOf("dmz")} meta l4proto tcp ct original proto-dst 8080 accept comment "dmz-to-app-services"`,
  );
  has(virt, 'iifname @internal_ifs ct status dnat counter drop comment "published container port outside the zone policy"');
  has(virt, 'udp sport 67 udp dport 68 accept comment "dhcp-client"');
});

test("HAProxy: any-address binds, health-checked backends on the virtualization hosts, sized maxconn, stats on mgmt", () => {
  assert.equal(haproxyMaxconn(), 4096);
  assert.equal(haproxyMaxconn(700, 4), 4096);
  assert.equal(haproxyMaxconn(1100, 4), 8192);
  const cfg = renderHaproxyConfig(site("vienna"), "vie-proxy-2", {
    services: [
      { name: "platform", hostnames: [], port: 8080 },
      { name: "shop", hostnames: ["shop.example.org", "*.shop.example.org"], port: 8443 },
    ],
  });
  for (const line of [
    "bind :80",
    "bind :443",
    "maxconn 4096",
    "log /dev/log local0",
    "bind 10.30.2.11:8404",
    "default_backend svc_platform",
  ])
    has(cfg, line);
  has(cfg, "use_backend svc_shop if { req_ssl_sni -i shop.example.org }");
  has(cfg, "use_backend svc_shop if { req_ssl_sni -m end -i .shop.example.org }");
  assert.deepEqual(
    lines(cfg).filter((l) => l.startsWith("server ")),
    [
      "server vie-virt-1 10.30.4.32:8080 check inter 2s fall 3 rise 2",
      "server vie-virt-2 10.30.4.33:8080 check inter 2s fall 3 rise 2",
      "server vie-virt-3 10.30.4.34:8080 check inter 2s fall 3 rise 2",
      "server vie-virt-1 10.30.4.32:8443 check inter 2s fall 3 rise 2",
      "server vie-virt-2 10.30.4.33:8443 check inter 2s fall 3 rise 2",
      "server vie-virt-3 10.30.4.34:8443 check inter 2s fall 3 rise 2",
    ],
  );
  for (const t of ["timeout connect 5s", "timeout client 60s", "timeout server 60s"]) has(cfg, t);
});

test("keepalived: VRRPv3 on two paths (heartbeat and mgmt) in one sync group, priorities from the model, VIPs on their segments", () => {
  const model = site("vienna");
  const active = renderKeepalivedConfig(model, "vie-fw-1", fakeSecrets(model));
  const passive = renderKeepalivedConfig(model, "vie-fw-2", fakeSecrets(model));
  for (const line of [
    // Netcup moves the /23's next hop at most every 5 minutes: the firewall pair fails back only after that.
    "state BACKUP",
    "preempt_delay 330",
    "priority 150",
    "interface hb-firewall",
    "virtual_router_id 10",
    "unicast_src_ip 10.30.3.1",
    "10.30.3.2",
    "vrrp_version 3",
    "advert_int 0.2",
    "vrrp_sync_group vie_firewall {",
    "vie_firewall_hb",
    "vie_firewall_mgmt",
    "interface mgmt",
    "unicast_src_ip 10.30.2.2",
    "169.254.10.2/32 dev lo",
  ])
    has(active, line);
  // VRRPv3 has no authentication: a rendered one would be ignored by keepalived.
  lacks(active, /^\s*(authentication|auth_type|auth_pass)\b/m);
  // Both instances track the same scripts, so their priorities move together.
  const tracks =
    "\ttrack_script {\n" +
    [
      "ruleset_loaded",
      "link_dmz",
      "link_app",
      "link_data",
      "link_mgmt",
      "link_eth0",
      "clock_in_step",
      "not_handed_over",
      "fence_not_failed",
    ]
      .map((n) => `\t\t${n}\n`)
      .join("") +
    "\t}";
  assert.equal(active.split(tracks).length - 1, 2, active);
  // Each served segment is judged by whether other hosts there answer ARP; the uplink by its gateway.
  has(active, 'script "/bin/sh /etc/keepalived/standort-failover.sh link dmz 10.30.0.4 10.30.0.10 10.30.0.11"');
  has(active, 'script "/bin/sh /etc/keepalived/standort-failover.sh link eth0"');
  for (const line of ["state BACKUP", "priority 100", "unicast_src_ip 10.30.3.2", "10.30.3.1"]) has(passive, line);
  for (const line of ["10.30.0.1/24 dev dmz", "10.30.4.1/22 dev app", "10.30.1.1/24 dev data", "10.30.2.1/24 dev mgmt"]) has(active, line);
  has(active, 'notify_master "/etc/keepalived/standort-failover.sh master" root');
  has(active, "enable_script_security");
  lacks(active, /^\s*(nopreempt|script_user)\b/m);
  has(renderKeepalivedConfig(model, "vie-proxy-1", fakeSecrets(model)), 'script "/usr/bin/systemctl is-active --quiet haproxy"');
  // Pairs that move nothing rate-limited take the addresses back at once.
  has(renderKeepalivedConfig(model, "vie-proxy-1", fakeSecrets(model)), "state MASTER");
  lacks(renderKeepalivedConfig(model, "vie-proxy-1", fakeSecrets(model)), /preempt_delay/);
  // The operator's handover lowers the priority below the peer's.
  has(active, 'script "/bin/sh /etc/keepalived/standort-failover.sh handover-check"');
  has(active, "weight -100");
  const frankfurt = renderKeepalivedConfig(site("frankfurt"), "fra-fw-2", fakeSecrets(site("frankfurt")));
  has(frankfurt, 'script "/usr/bin/systemctl is-active --quiet bird"');
  // BGP: the announcement's origin exists on the master only, and a member nobody hears over BGP does not serve.
  has(frankfurt, "blackhole 198.18.2.0/23 no_track");
  assert.equal(frankfurt.match(/virtual_routes \{/g)?.length, 1, "on the heartbeat instance only");
  has(frankfurt, 'script "/bin/sh /etc/keepalived/standort-failover.sh bgp"');
  lacks(active, /virtual_routes|standort-failover\.sh bgp/);
});

test("a dissolved pair renders keepalived only for its active member, without a peer", () => {
  const model = structuredClone(site("vienna")) as any;
  model.pairs[1].dissolved = true;
  model.pairs[1].priorities = { "vie-proxy-1": 150 };
  const active = renderKeepalivedConfig(model, "vie-proxy-1", fakeSecrets(model));
  lacks(active, /unicast_peer|unicast_src_ip/);
  has(active, "10.30.0.4/24 dev dmz");
  const released = renderHostFiles(model, "vie-proxy-2", fakeSecrets(model), options).map((f) => f.path);
  assert.ok(!released.some((p) => p.startsWith("/etc/keepalived/")), released.join(", "));
  assert.ok(released.includes("/etc/haproxy/haproxy.cfg"));
});

test("BIRD announces only the own /23, learned from keepalived's route on the master; imports nothing else; the passive firewall prepends", () => {
  const model = site("frankfurt");
  const active = renderBirdConfig(model, "fra-fw-1", fakeSecrets(model));
  const passive = renderBirdConfig(model, "fra-fw-2", fakeSecrets(model));
  for (const line of [
    "router id 198.19.10.11;",
    "import where net = 198.18.2.0/23;",
    "learn;",
    "if net = 198.18.2.0/23 then {",
    "reject;",
    "local 198.19.10.11 as 4200000101;",
    "neighbor 198.19.10.1 as 8560;",
    "neighbor 198.19.10.2 as 8560;",
    'password "fake-bgp-secret";',
  ])
    has(active, line);
  // Nothing is imported from the peers, nothing reaches the kernel; from the kernel only the own prefix.
  assert.equal(active.match(/import none;/g)?.length, 2, "both sessions");
  has(active, "export none;");
  lacks(active, /protocol static/);
  lacks(active, /import all|export all|import filter/);
  lacks(active, /bgp_path\.prepend/);
  assert.equal(passive.match(/bgp_path\.prepend\(4200000101\);/g)?.length, 2);
});

test("chrony: every host of a site uses exactly the site's time sources", () => {
  for (const model of sites) {
    const sources = model.hosts.map((h) =>
      lines(renderChronyConfig(model, h.name))
        .filter((l) => l.startsWith("server "))
        .join("\n"),
    );
    assert.equal(new Set(sources).size, 1, model.name);
    assert.equal(sources[0], model.time.servers.map((s) => `server ${s} iburst maxpoll 6`).join("\n"));
  }
  const cfg = renderChronyConfig(site("helsinki"), "hel-fw-1");
  has(cfg, "makestep 1.0 -1");
  has(cfg, "rtcsync");
  lacks(cfg, /^pool |sourcedir/m);
});

test("networkd: one VLAN per segment on the internal NIC (pre-provisioned), IPVLAN on Hetzner Cloud", () => {
  const vie = renderNetworkdFiles(site("vienna"), "vie-proxy-1");
  assert.deepEqual(
    vie.map((f) => f.name),
    [
      "10-standort-internal.network",
      "20-standort-dmz.netdev",
      "20-standort-dmz.network",
      "20-standort-mgmt.netdev",
      "20-standort-mgmt.network",
      "20-standort-hb-proxy.netdev",
      "20-standort-hb-proxy.network",
    ],
  );
  has(vie[0].content, "Name=eth1");
  has(vie[0].content, "VLAN=hb-proxy");
  has(vie[1].content, "Kind=vlan");
  has(vie[1].content, "Id=10");
  has(vie[2].content, "Address=10.30.0.10/24");
  has(vie[5].content, "Id=52");
  const hel = renderNetworkdFiles(site("helsinki"), "hel-fw-1");
  has(hel[0].content, "Name=ens10 enp7s0");
  has(hel[0].content, "IPVLAN=dmz");
  has(hel[1].content, "Kind=ipvlan");
  assert.equal(renderNetworkdFiles(site("vienna"), "vie-proxy-1", { internalNic: "enp2s0" })[0].content.includes("Name=enp2s0"), true);
});

test("renderHostFiles: delivery order, checks, secrets flagged, cloud-init only for Hetzner Cloud without secrets", () => {
  const fw = renderHostFiles(site("frankfurt"), "fra-fw-1", fakeSecrets(site("frankfurt")), options);
  const paths = fw.map((f) => f.path);
  assert.deepEqual(paths.slice(0, 2), ["/etc/sysctl.d/90-standort.conf", "/etc/systemd/network/10-standort-internal.network"]);
  assert.deepEqual(paths.slice(-13), [
    "/etc/nftables.conf",
    "/etc/chrony/chrony.conf",
    "/etc/bird/bird.conf",
    "/etc/conntrackd/conntrackd.conf",
    "/etc/standort/fence/ssh_host_ed25519_key",
    "/etc/standort/fence/id_ed25519",
    "/etc/standort/fence/authorized_keys",
    "/etc/standort/fence/known_hosts",
    "/usr/local/sbin/standort-fenced",
    "/etc/systemd/system/standort-fence.service",
    "/etc/standort/fence/sshd_config",
    "/etc/keepalived/standort-failover.sh",
    "/etc/keepalived/keepalived.conf",
  ]);
  // Frankfurt's firewalls announce by BGP and move nothing: the provider token never reaches them.
  assert.deepEqual(
    fw.filter((f) => f.secret).map((f) => [f.path, f.mode]),
    [
      ["/etc/bird/bird.conf", "0640"],
      ["/etc/standort/fence/ssh_host_ed25519_key", "0600"],
      ["/etc/standort/fence/id_ed25519", "0600"],
    ],
  );
  // Karlsruhe's proxies move the IONOS failover IP: they get it.
  const fkbProxy = renderHostFiles(site("karlsruhe"), "fkb-proxy-1", fakeSecrets(site("karlsruhe")), options);
  assert.ok(fkbProxy.some((f) => f.path === "/etc/standort/provider.env" && f.secret));
  const nft = fw.find((f) => f.path === "/etc/nftables.conf")!;
  assert.deepEqual(nft.check?.command, ["nft", "-c", "-f", "{file}"]);
  assert.equal(nft.confirmWithinSeconds, 120);
  assert.deepEqual(fw.find((f) => f.path === "/etc/keepalived/keepalived.conf")!.mode, "0644");
  assert.ok(fw.every((f) => f.delivery === "ssh" && f.content.endsWith("\n")));

  const hel = renderHostFiles(site("helsinki"), "hel-proxy-1", fakeSecrets(site("helsinki")), options);
  const userData = hel.find((f) => f.path === CLOUD_INIT_PATH)!;
  assert.equal(userData.delivery, "provision");
  assert.ok(userData.content.startsWith("#cloud-config\n"));
  assert.ok(userData.content.includes(FAKE_KEY));
  // First boot carries what depends on the host alone, in one compressed archive a runcmd unpacks first; the
  // proxy's backends follow the pool and arrive by delivery.
  const cloud = parse(userData.content) as {
    write_files: Array<{ path: string; encoding: string; content: string; defer: boolean }>;
    runcmd: string[][];
  };
  assert.deepEqual(
    cloud.write_files.map((w) => [w.path, w.encoding, w.defer]),
    [["/var/lib/standort/first-boot.sh", "gz+b64", true]],
  );
  assert.deepEqual(cloud.runcmd[0], ["sh", "/var/lib/standort/first-boot.sh"]);
  const archive = gunzipSync(Buffer.from(cloud.write_files[0].content, "base64")).toString("utf8");
  const firstBoot = hel.filter((f) => /^\/etc\/(sysctl\.d\/|systemd\/network\/|chrony\/|nftables\.conf$)/.test(f.path));
  assert.ok(firstBoot.some((f) => f.path === "/etc/nftables.conf") && firstBoot.some((f) => f.path === "/etc/chrony/chrony.conf"));
  assert.ok(!archive.includes("/etc/haproxy/haproxy.cfg"));
  // Unpacked into a scratch root, the archive writes exactly the rendered bytes with their modes.
  const root = mkdtempSync(join(tmpdir(), "standort-first-boot-"));
  try {
    const script = archive.replaceAll(" '/", ` '${root}/`).replace(/ && chown \S+ '[^']*'$/gm, "");
    execFileSync("sh", ["-c", script]);
    for (const f of firstBoot) {
      assert.equal(readFileSync(join(root, f.path), "utf8"), f.content, f.path);
      assert.equal((statSync(join(root, f.path)).mode & 0o777).toString(8), f.mode.replace(/^0/, ""), f.path);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  for (const text of [userData.content, archive])
    assert.ok(!text.includes("PRIVATE KEY") && !text.includes("fake-token-for-tests"), "no secret in user-data");
  assert.ok(!userData.content.includes("/etc/keepalived/keepalived.conf"));
  assert.ok(
    /packages:\n {2}- chrony\n {2}- curl\n {2}- haproxy\n {2}- iputils-arping\n {2}- jq\n {2}- keepalived\n {2}- nftables\n {2}- openssh-client\n {2}- openssh-server\n/.test(
      userData.content,
    ),
    userData.content,
  );
});

test("rendering is deterministic, and writeRenderedFiles lays out <dir>/<host>/<path> the same way every time", () => {
  const renderAll = () => sites.flatMap((m) => renderSiteFiles(m, fakeSecrets(m), options));
  const first = renderAll();
  assert.deepEqual(renderAll(), first);
  const a = mkdtempSync(join(tmpdir(), "standort-write-a-"));
  const b = mkdtempSync(join(tmpdir(), "standort-write-b-"));
  try {
    const writtenA = writeRenderedFiles(a, first);
    const writtenB = writeRenderedFiles(b, renderAll(), { clean: true });
    assert.deepEqual(writtenA, writtenB);
    assert.equal(
      writtenA.length,
      first.reduce((n, h) => n + h.files.length, 0),
    );
    assert.ok(writtenA.includes("vie-fw-1/etc/nftables.conf"));
    assert.deepEqual(readdirSync(a).sort(), first.map((h) => h.host).sort());
    for (const path of writtenA) assert.equal(readFileSync(join(a, path), "utf8"), readFileSync(join(b, path), "utf8"), path);
    assert.equal(statSync(join(a, "vie-fw-1/etc/standort/fence/id_ed25519")).mode & 0o777, 0o600);
    writeRenderedFiles(b, first, { clean: true, redactSecrets: true });
    assert.equal(readFileSync(join(b, "vie-fw-1/etc/standort/fence/id_ed25519"), "utf8"), REDACTED);
    assert.equal(readFileSync(join(b, "vie-fw-1/etc/nftables.conf"), "utf8"), readFileSync(join(a, "vie-fw-1/etc/nftables.conf"), "utf8"));
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test("partner traffic crosses the edge only through the partner's tunnel, both ways (never the uplink in clear)", () => {
  const { sites: all, footprint } = loadFootprint();
  for (const model of all) {
    const hosts = planHostFiles(model, all, footprint);
    const tunnels = new Map(
      planTunnels(footprint, all)
        .filter((t) => t.ends.some((e) => e.site === model.name))
        .flatMap((t) => t.ends.filter((e) => e.site !== model.name).map((e) => [e.site, t.name] as const)),
    );
    for (const host of hosts.filter((h) => model.hosts.find((m) => m.name === h.host)!.role === "firewall")) {
      const nft = host.files.find((f) => f.path === "/etc/nftables.conf")!.content;
      const partnerRules = nft.split("\n").filter((l) => / comment "(partner-[a-z]+-to-|[a-z]+-to-partner-)/.test(l));
      assert.ok(partnerRules.length > 0, `${host.host} has partner rules`);
      for (const line of partnerRules) {
        const site = /partner-([a-z]+)/.exec(line)![1];
        const tunnel = tunnels.get(site);
        assert.ok(tunnel, `${model.name} has a tunnel to ${site}`);
        const inbound = /comment "partner-/.test(line);
        assert.ok(line.includes(`${inbound ? "iifname" : "oifname"} "${tunnel}"`), `${host.host}: ${line.trim()}`);
      }
    }
  }
});

test("every tunnel endpoint a partner is given is an address the site's firewall master holds", () => {
  const { sites: all, footprint } = loadFootprint();
  for (const model of all) {
    const endpoint = knownEndpoint(model);
    if (endpoint === undefined) continue; // assigned by the provider's API, reported by the stack
    const move = failoverMove(model, "firewall");
    if (move.kind === "failover-ip") {
      assert.equal(move.address, endpoint, `${model.name}: the firewall pair moves the NAT failover IP its partners dial`);
      continue;
    }
    for (const host of planHostFiles(model, all, footprint).filter(
      (h) => model.hosts.find((m) => m.name === h.host)!.role === "firewall",
    )) {
      const conf = host.files.find((f) => f.path === "/etc/keepalived/keepalived.conf")!.content;
      const instance = conf.split(/^vrrp_instance /m).find((block) => block.includes(`${endpoint}/32 dev lo`));
      assert.ok(instance, `${host.host}: keepalived puts ${endpoint} (the tunnels' end) on the master`);
    }
  }
});

test("on a routed network every host reaches each of its segments over that segment's link, from its address there", () => {
  // Alertmanager's gossip and Prometheus' scrapes go to mgmt peers without binding a source: by the host's own
  // segment they would leave from its data (or app) address, which the zone policy drops in mgmt.
  const { sites } = loadFootprint();
  const routed = sites.filter((s) => adapterOf(s).segments.kind === "routed");
  assert.ok(routed.length > 0, "a committed site on a routed network");
  for (const model of routed) {
    for (const host of model.hosts) {
      const routes = hostRouting(model, host.name, []).routes;
      for (const iface of host.interfaces) {
        const segment = model.segments.find((s) => s.name === iface.segment)!;
        const own = routes.filter((r) => r.destination === segment.cidr && r.table === undefined);
        assert.deepEqual(
          own.map((r) => r.segment),
          [iface.segment],
          `${host.name}: ${segment.cidr} only over ${iface.segment}`,
        );
      }
    }
  }
});
