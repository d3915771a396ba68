// The Hetzner Cloud site as `pulumi preview` would see it: exact types, names and inputs.
import test from "node:test";
import assert from "node:assert/strict";
import { loadSites } from "../lib/model/load";
import { PLACEHOLDER_SSH_KEY } from "../lib/render";
import { hcloudAliasIps } from "../lib/providers/hcloud";
import { cidr, containsAddress, parseAddress } from "../lib/net/ipv4";
import { MockRunResult, RecordedResource, mockId } from "../lib/preview/harness";
import { countByType } from "../lib/preview/plan";
import { planStack } from "../lib/preview/run-stack";
import { roleSegments } from "../components/virtualization-hosts";
import { sitesWith } from "./helpers/sites";

const helsinki = loadSites().find((s) => s.name === "helsinki")!;
const plan = planStack("helsinki");
const T = {
  server: "hcloud:index/server:Server",
  serverNetwork: "hcloud:index/serverNetwork:ServerNetwork",
  placementGroup: "hcloud:index/placementGroup:PlacementGroup",
  floatingIp: "hcloud:index/floatingIp:FloatingIp",
  assignment: "hcloud:index/floatingIpAssignment:FloatingIpAssignment",
  firewall: "hcloud:index/firewall:Firewall",
  volume: "hcloud:index/volume:Volume",
  volumeAttachment: "hcloud:index/volumeAttachment:VolumeAttachment",
  subnet: "hcloud:index/networkSubnet:NetworkSubnet",
  route: "hcloud:index/networkRoute:NetworkRoute",
};
const of = (run: MockRunResult, type: string) => run.resources.filter((r) => r.type === type);
const id = (r: RecordedResource) => Number(mockId(`${r.type}::${r.name}`));
const serverOf = (run: MockRunResult, host: string) => of(run, T.server).find((s) => s.inputs.name === host)!;

test("helsinki registers exactly the standard layout on Hetzner Cloud", async () => {
  const run = await plan;
  assert.deepEqual(countByType(run.resources), [
    // 10 hosts, each a transaction and its packet filter's confirmation.
    ["command:remote:Command", 20],
    ["hcloud:index/firewall:Firewall", 4],
    ["hcloud:index/floatingIp:FloatingIp", 2],
    ["hcloud:index/floatingIpAssignment:FloatingIpAssignment", 2],
    // The Kubernetes API address: Hetzner's network answers ARP itself, so a load balancer in the app subnet holds it,
    // in front of the three control-plane nodes.
    ["hcloud:index/loadBalancer:LoadBalancer", 1],
    ["hcloud:index/loadBalancerNetwork:LoadBalancerNetwork", 1],
    ["hcloud:index/loadBalancerService:LoadBalancerService", 1],
    ["hcloud:index/loadBalancerTarget:LoadBalancerTarget", 3],
    ["hcloud:index/network:Network", 1],
    ["hcloud:index/networkRoute:NetworkRoute", 1],
    ["hcloud:index/networkSubnet:NetworkSubnet", 7],
    ["hcloud:index/placementGroup:PlacementGroup", 4],
    ["hcloud:index/server:Server", 10],
    ["hcloud:index/serverNetwork:ServerNetwork", 10],
    ["hcloud:index/sshKey:SshKey", 1],
    ["hcloud:index/volume:Volume", 2],
    ["hcloud:index/volumeAttachment:VolumeAttachment", 2],
    // Helsinki's services run on Kubernetes: its backups are CronJobs. Per service it writes (git, webhosting): a
    // backup into each of its two stores and one off-site into frankfurt's (6). Its file copies (git's repositories
    // to frankfurt and to vienna, webhosting's htdocs and uploads to frankfurt) run on its storage hosts, as timers
    // and lsyncd delivered with their host files, not as CronJobs.
    // The cluster's own pieces: flannel and the two ingress controllers (read-write 8443, read-only 8444) as
    // DaemonSets, flannel's ConfigMap, their ServiceAccounts, ClusterRoles and bindings, the two IngressClasses.
    ["kubernetes:apps/v1:DaemonSet", 3],
    // Helsinki's instances: webhosting and git read-write, groupware read-only; a Service and an Ingress each.
    ["kubernetes:apps/v1:Deployment", 3],
    ["kubernetes:batch/v1:CronJob", 6],
    ["kubernetes:core/v1:ConfigMap", 1],
    // The backups' namespace, a namespace per service (3), flannel's and the ingress controllers'.
    ["kubernetes:core/v1:Namespace", 6],
    // The Secrets the CronJobs mount (each service's backup credentials; the replication SSH key is a storage host
    // file), and each service's secrets for its containers (3).
    ["kubernetes:core/v1:Secret", 5],
    ["kubernetes:core/v1:Service", 3],
    ["kubernetes:core/v1:ServiceAccount", 2],
    ["kubernetes:networking.k8s.io/v1:Ingress", 3],
    ["kubernetes:networking.k8s.io/v1:IngressClass", 2],
    ["kubernetes:rbac.authorization.k8s.io/v1:ClusterRole", 2],
    ["kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", 2],
    ["pulumi:providers:hcloud", 1],
    // The backups' provider and the workloads' provider, both from the kubeconfig secret.
    ["pulumi:providers:kubernetes", 2],
    // The tunnel peers' stacks (frankfurt, vienna), read for their keys and endpoints.
    ["pulumi:pulumi:StackReference", 2],
    // Two tunnel private keys, the preshared key of wg-hel-vie (helsinki is its first end), the cluster's certificate key.
    ["random:index/randomBytes:RandomBytes", 4],
    // Job credentials: a restic password per repository (2 services x 3 stores: 6), a replication password per
    // database and target (git's forge to frankfurt and vienna, webhosting's panel and sites to frankfurt: 4), a
    // backup dump password per database (forge, panel, sites: 3).
    ["random:index/randomPassword:RandomPassword", 13],
    // The cluster's bootstrap token (its id and its secret part).
    ["random:index/randomString:RandomString", 2],
    ["standort:firewall:Firewall", 1],
    ["standort:footprint:Replication", 1],
    ["standort:footprint:ReplicationCredentials", 1],
    ["standort:footprint:SiteTunnels", 1],
    ["standort:host:Host", 10],
    ["standort:hosts:HostConfig", 10],
    ["standort:kubernetes:ClusterCredentials", 1],
    ["standort:kubernetes:Workloads", 1],
    ["standort:network:NetworkSegments", 1],
    ["standort:pair:FailoverPair", 3],
    ["standort:prefix:RoutedPrefix", 1],
    ["standort:proxy:ProxyTier", 1],
    ["standort:site:Site", 1],
    ["standort:storage:Storage", 1],
    ["standort:virtualization:VirtualizationHosts", 1],
    // The database TLS of the site: one server certificate per virtualization host (4), each from its request,
    // signed by the site's own CA.
    ["tls:index/certRequest:CertRequest", 4],
    ["tls:index/locallySignedCert:LocallySignedCert", 4],
    // Each pair member's two fence keys (its fence sshd's host key, its client key): 12. Job credentials: the backup
    // SSH key, a replication SSH key per target site (frankfurt, vienna), the storage pair's shared host key, the
    // database CA's key and the four server keys: 9. The cluster CA's key: 1.
    ["tls:index/privateKey:PrivateKey", 22],
    // The database CA and the cluster CA.
    ["tls:index/selfSignedCert:SelfSignedCert", 2],
  ]);
  // The API address: the load balancer takes the address apiVip gives, only inside the network, on 6443.
  const lbNetwork = of(run, "hcloud:index/loadBalancerNetwork:LoadBalancerNetwork")[0];
  assert.deepEqual([lbNetwork.inputs.ip, lbNetwork.inputs.enablePublicInterface], ["10.40.4.6", false]);
  const lbService = of(run, "hcloud:index/loadBalancerService:LoadBalancerService")[0];
  assert.deepEqual([lbService.inputs.listenPort, lbService.inputs.destinationPort, lbService.inputs.protocol], [6443, 6443, "tcp"]);
  assert.deepEqual(
    of(run, "hcloud:index/loadBalancerTarget:LoadBalancerTarget").map((t) => [t.name, t.inputs.usePrivateIp]),
    ["hel-virt-1", "hel-virt-2", "hel-virt-3"].map((h) => [`helsinki-virt-kubernetes-api-${h}`, true]),
  );
  assert.deepEqual(
    of(run, T.placementGroup).map((r) => [r.name, r.inputs.name, r.inputs.type]),
    [
      ["helsinki-fw-spread-fw-1", "helsinki-spread-fw-1", "spread"],
      ["helsinki-proxy-spread-proxy-1", "helsinki-spread-proxy-1", "spread"],
      ["helsinki-stor-spread-stor-1", "helsinki-spread-stor-1", "spread"],
      ["helsinki-virt-spread-virt-1", "helsinki-spread-virt-1", "spread"],
    ],
  );
});

test("every server is created from the model, never with inline networks", async () => {
  const run = await plan;
  const types = { firewall: "cx32", proxy: "cx32", virtualization: "cx52", storage: "cx42" } as const;
  const sshKey = of(run, "hcloud:index/sshKey:SshKey")[0];
  assert.equal(sshKey.inputs.publicKey, PLACEHOLDER_SSH_KEY);
  for (const host of helsinki.hosts) {
    const server = serverOf(run, host.name);
    assert.ok(server, host.name);
    assert.equal(server.inputs.networks, undefined, `${host.name}: inline networks replace servers on update`);
    assert.equal(server.inputs.serverType, types[host.role]);
    assert.equal(server.inputs.image, "debian-12");
    assert.equal(server.inputs.location, "hel1");
    assert.deepEqual(server.inputs.labels, { "managed-by": "standort", role: host.role, site: "helsinki" });
    assert.deepEqual(server.inputs.publicNets, [{ ipv4Enabled: true, ipv6Enabled: false }]);
    assert.deepEqual(server.inputs.sshKeys, [String(id(sshKey))]);
    // First boot comes from the cloud-init renderer: the host's name and the operator key, never a secret file.
    const userData = String(server.inputs.userData);
    assert.ok(userData.startsWith(`#cloud-config\n# standort: ${host.name} (helsinki).`), userData.slice(0, 80));
    assert.match(userData, new RegExp(`^hostname: ${host.name}$`, "m"));
    assert.ok(userData.includes(PLACEHOLDER_SSH_KEY));
    assert.ok(!userData.includes("keepalived.conf") && !userData.includes("provider.env"));
    assert.deepEqual(server.ignoreChanges, ["userData"]);
    const group = of(run, T.placementGroup).find((g) => g.inputs.name === `helsinki-${host.physical}`)!;
    assert.equal(server.inputs.placementGroupId, id(group), `${host.name} sits in ${host.physical}`);
  }
});

test("every host is in the segments its role needs and in no other", async () => {
  const run = await plan;
  const subnets = of(run, T.subnet);
  const segmentOf = (address: string) => {
    const hits = helsinki.segments.filter((s) => containsAddress(cidr(s.cidr), parseAddress(address)!));
    assert.equal(hits.length, 1, address);
    return hits[0].name;
  };
  for (const host of helsinki.hosts) {
    const server = serverOf(run, host.name);
    const attachments = of(run, T.serverNetwork).filter((n) => n.inputs.serverId === id(server));
    assert.equal(attachments.length, 1, `${host.name} has one attachment`);
    const [attachment] = attachments;
    // The active member of a pair also holds the pair's VIPs as alias IPs; the passive one none of them.
    const pair = helsinki.pairs.find((p) => p.members.includes(host.name));
    const vips = pair?.vips.map((v) => v.address) ?? [];
    const all = [attachment.inputs.ip as string, ...(attachment.inputs.aliasIps as string[])];
    const addresses = all.filter((a) => !vips.includes(a));
    assert.deepEqual(
      all.filter((a) => vips.includes(a)),
      pair?.active === host.name ? vips : [],
      `${host.name}: VIPs`,
    );
    assert.deepEqual(addresses.map(segmentOf).sort(), roleSegments(helsinki, host.role).sort(), host.name);
    assert.deepEqual(
      addresses,
      host.interfaces.map((i) => i.address),
      `${host.name} uses the model's addresses`,
    );
    const primary = subnets.find((s) => s.inputs.ipRange === helsinki.segments.find((x) => x.name === segmentOf(addresses[0]))!.cidr)!;
    assert.equal(attachment.inputs.subnetId, String(id(primary)));
  }
});

test("the two members of every pair sit in one spread placement group", async () => {
  const run = await plan;
  for (const pair of helsinki.pairs) {
    const groups = pair.members.map((m) => serverOf(run, m).inputs.placementGroupId);
    assert.equal(groups[0], groups[1], pair.name);
    const group = of(run, T.placementGroup).find((g) => id(g) === groups[0])!;
    assert.equal(group.inputs.type, "spread");
  }
  // A spread group holds at most 10 servers.
  const perGroup = new Map<unknown, number>();
  for (const s of of(run, T.server)) perGroup.set(s.inputs.placementGroupId, (perGroup.get(s.inputs.placementGroupId) ?? 0) + 1);
  for (const count of perGroup.values()) assert.ok(count <= 10);
});

test("more than 10 virtualization hosts are spread over several placement groups of at most 10", async () => {
  const run = await planStack("helsinki", { sitesDir: sitesWith("helsinki.yaml", (d) => (d.roles.virtualization.count = 12)) });
  const groups = of(run, T.placementGroup).filter((g) => g.name.startsWith("helsinki-virt-"));
  assert.deepEqual(
    groups.map((g) => g.inputs.name),
    ["helsinki-spread-virt-1", "helsinki-spread-virt-2"],
  );
  const members = (g: RecordedResource) =>
    of(run, T.server)
      .filter((s) => s.inputs.placementGroupId === id(g))
      .map((s) => s.inputs.name);
  assert.equal(members(groups[0]).length, 10);
  assert.deepEqual(members(groups[1]).sort(), ["hel-virt-11", "hel-virt-12"]);
});

test("floating IPs are homed in hel1 and assigned to the active member", async () => {
  const run = await plan;
  assert.deepEqual(
    of(run, T.floatingIp).map((r) => [r.name, r.inputs.name, r.inputs.type, r.inputs.homeLocation]),
    [
      ["helsinki-fw-pair-nat", "helsinki-nat", "ipv4", "hel1"],
      ["helsinki-proxy-pair-proxy", "helsinki-proxy", "ipv4", "hel1"],
    ],
  );
  const expected: Record<string, string> = {
    "helsinki-fw-pair-nat-assignment": "hel-fw-1",
    "helsinki-proxy-pair-proxy-assignment": "hel-proxy-1",
  };
  for (const a of of(run, T.assignment)) {
    const ip = of(run, T.floatingIp).find((f) => `${f.name}-assignment` === a.name)!;
    assert.equal(a.inputs.floatingIpId, id(ip));
    assert.equal(a.inputs.serverId, id(serverOf(run, expected[a.name])), a.name);
    // Keepalived moves it at run time; Pulumi must not move it back.
    assert.deepEqual(a.ignoreChanges, ["serverId"]);
  }
});

test("cloud firewalls deny by default and let management in only from the allowlist", async () => {
  const run = await plan;
  const firewalls = of(run, T.firewall);
  const servers = of(run, T.server);
  for (const server of servers) {
    const labels = server.inputs.labels as Record<string, string>;
    const matching = firewalls.filter((f) =>
      (f.inputs.applyTos as Array<{ labelSelector: string }>).some((a) =>
        a.labelSelector.split(",").every((kv) => labels[kv.split("=")[0]] === kv.split("=")[1]),
      ),
    );
    assert.equal(matching.length, 1, `${String(server.inputs.name)} is covered by exactly one firewall (limit 5)`);
    assert.equal(matching[0].inputs.name, `helsinki-${labels.role}`);
  }
  for (const f of firewalls) {
    const rules = f.inputs.rules as Array<{ direction: string; protocol: string; port?: string; sourceIps: string[]; description: string }>;
    assert.ok(rules.length <= 500);
    assert.ok(
      rules.every((r) => r.direction === "in"),
      "only inbound rules: everything else inbound is denied",
    );
    const ssh = rules.filter((r) => r.port === "22" || r.port === "any");
    assert.deepEqual(
      ssh.map((r) => r.sourceIps),
      [helsinki.management.allowlist],
      f.name,
    );
    const open = rules.filter((r) => r.sourceIps.includes("0.0.0.0/0")).map((r) => `${r.protocol}/${r.port}`);
    assert.deepEqual(open, f.inputs.name === "helsinki-proxy" ? ["tcp/80", "tcp/443", "udp/53", "tcp/53"] : [], f.name);
  }
});

test("storage hosts get one volume each, attached to their own server", async () => {
  const run = await plan;
  assert.deepEqual(
    of(run, T.volume).map((v) => [v.name, v.inputs.name, v.inputs.size, v.inputs.location, v.inputs.format]),
    [
      ["helsinki-stor-1-data", "hel-stor-1-data", 4000, "hel1", undefined],
      ["helsinki-stor-2-data", "hel-stor-2-data", 4000, "hel1", undefined],
    ],
  );
  for (const [n, host] of [
    ["1", "hel-stor-1"],
    ["2", "hel-stor-2"],
  ]) {
    const attachment = of(run, T.volumeAttachment).find((a) => a.name === `helsinki-stor-${n}-data-attachment`)!;
    assert.equal(attachment.inputs.serverId, id(serverOf(run, host)));
    assert.equal(attachment.inputs.volumeId, id(of(run, T.volume).find((v) => v.name === `helsinki-stor-${n}-data`)!));
  }
});

test("traffic leaving the network is routed to a firewall VIP Hetzner accepts as gateway", async () => {
  const run = await plan;
  const [route] = of(run, T.route);
  assert.deepEqual(
    { destination: route.inputs.destination, gateway: route.inputs.gateway },
    { destination: "0.0.0.0/0", gateway: "10.40.1.1" },
  );
  assert.notEqual(route.inputs.gateway, "10.40.0.1");
  assert.notEqual(route.inputs.gateway, "172.31.1.1");
  assert.ok(helsinki.pairs.find((p) => p.role === "firewall")!.vips.some((v) => v.address === route.inputs.gateway));
});

test("helsinki's outputs: provider failover IPs said plainly, partner-facing endpoints, no secrets", async () => {
  const run = await plan;
  const o = run.outputs as Record<string, any>;
  assert.equal(o.publicRouting.mode, "provider-failover-ips");
  assert.match(o.publicRouting.note, /^helsinki has no own prefix: it uses provider failover IPs \(proxy, nat\)/);
  assert.deepEqual(o.failoverAddresses, {
    nat: { address: "198.19.251.10", heldBy: "firewall pair", source: "provider failover IP" },
    proxy: { address: "198.19.251.10", heldBy: "proxy pair", source: "provider failover IP" },
  });
  assert.deepEqual(o.partnerFacing.prefixes, []);
  assert.deepEqual(
    o.partnerFacing.firewallEndpoints.map((e: { host: string }) => e.host),
    ["hel-fw-1", "hel-fw-2"],
  );
  assert.equal(o.partnerFacing.tunnel.endpoint, "198.19.251.10");
  assert.equal(o.partnerFacing.supernet, "10.40.0.0/16");
  assert.ok(!JSON.stringify(run).includes("mock-password"));
});

/**
 * What `pulumi up --refresh` would change on a resource: the properties whose program input differs from the
 * refreshed state, less those under `ignoreChanges` (for which the engine keeps the state's value).
 */
function plannedChanges(
  inputs: Record<string, unknown>,
  refreshed: Record<string, unknown>,
  ignoreChanges: ReadonlyArray<string>,
): string[] {
  return Object.keys(refreshed)
    .filter((k) => JSON.stringify(inputs[k]) !== JSON.stringify(refreshed[k]))
    .filter((k) => !ignoreChanges.some((path) => path === k || path.startsWith(`${k}.`) || path.startsWith(`${k}[`)));
}

test("Hetzner Cloud: after a takeover, a refresh plans no change to the addresses the failover script moved", async () => {
  const run = await plan;
  const model = loadSites().find((s) => s.name === "helsinki")!;
  const pair = model.pairs.find((p) => p.role === "proxy")!;
  const attachment = (host: string) => of(run, T.serverNetwork).find((r) => r.name === `helsinki-${host.replace(/^hel-/, "")}-private`)!;
  // The state after hel-proxy-2 took over, as its failover script leaves it (change_alias_ips, floating IP assign):
  // the VIP is an alias of the new active member's attachment, no longer of the fenced one's.
  const after: Record<string, string[]> = Object.fromEntries(pair.members.map((m) => [m, hcloudAliasIps(model, m, m === pair.passive)]));
  for (const member of pair.members) {
    const r = attachment(member);
    assert.notDeepEqual(r.inputs.aliasIps, after[member], `${member}: the takeover changed its alias IPs`);
    assert.deepEqual(plannedChanges(r.inputs, { aliasIps: after[member] }, r.ignoreChanges), [], `${member}: no change planned`);
  }
  // The floating IP's assignment follows the script too.
  const assignment = of(run, "hcloud:index/floatingIpAssignment:FloatingIpAssignment").find((r) => r.name.includes("proxy"))!;
  const passiveServer = serverOf(run, pair.passive);
  assert.deepEqual(plannedChanges(assignment.inputs, { serverId: id(passiveServer) }, assignment.ignoreChanges), []);
  // A host outside the pairs keeps its declared aliases: drift there is corrected, not ignored.
  const virt = attachment("hel-virt-1");
  assert.deepEqual(virt.ignoreChanges, []);
  assert.deepEqual(plannedChanges(virt.inputs, { aliasIps: [] }, virt.ignoreChanges), ["aliasIps"]);
});
