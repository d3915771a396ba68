// Every rendered file of every host of every site, checked by the real daemon
// that will read it (nft, haproxy, keepalived, bird, chronyd, cloud-init, sh),
// and proof that each check rejects a broken file. networkd has no offline
// checker: its files are validated structurally against the keys we use.
import test, { TestContext, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { adapterOf } from "../lib/providers/registry";
import { planHostFiles } from "../lib/preview/files";
import { interfaceName } from "../lib/render/interfaces";
import { NetworkdReadError, readNetworkd } from "../lib/twin/networkd";
import { FILE_PLACEHOLDER, HostFiles, RenderedFile, writeRenderedFiles } from "../lib/render";
import { createNetnsWithLinks, describeFailures, requireNetns, requireTool, runAll, toolPath } from "./helpers/tools";

// Exactly what the stacks install: the rendered host files with the footprint's services, jobs and tunnels.
const { footprint, sites } = loadFootprint();
const rendered: HostFiles[] = sites.flatMap((m) => planHostFiles(m, sites, footprint));
const dir = mkdtempSync(join(tmpdir(), "standort-render-daemons-"));
writeRenderedFiles(dir, rendered);
after(() => rmSync(dir, { recursive: true, force: true }));

interface Located {
  readonly host: string;
  readonly file: RenderedFile;
  readonly local: string;
}

/** Every rendered file whose target path matches, with its copy on disk. */
function located(match: (path: string) => boolean): Located[] {
  return rendered.flatMap(({ host, files }) =>
    files.filter((f) => match(f.path)).map((file) => ({ host, file, local: join(dir, host, file.path.replace(/^\//, "")) })),
  );
}

/** The file's own check command (the one delivery runs on the host), pointed at `local`. */
function checkArgv(file: RenderedFile, local: string): string[] {
  assert.ok(file.check, `${file.path} has no check command`);
  return file.check.command.map((w) => (w === FILE_PLACEHOLDER ? local : w));
}

async function assertAllAccepted(files: ReadonlyArray<Located>, wrap: (argv: string[]) => string[] = (a) => a): Promise<void> {
  const results = await runAll(files.map((f) => wrap(checkArgv(f.file, f.local))));
  const failed = results.map((r, i) => ({ ...r, label: `${files[i].host}: ${files[i].file.path}` })).filter((r) => r.code !== 0);
  assert.equal(failed.length, 0, describeFailures(failed));
}

/** Writes a broken copy of a file and returns its check's exit code (with the original's for contrast). */
async function codesFor(
  original: Located,
  broken: string,
  wrap: (argv: string[]) => string[] = (a) => a,
): Promise<{ good: number; bad: number }> {
  const badPath = `${original.local}.broken`;
  writeFileSync(badPath, broken);
  const [good, bad] = await runAll([wrap(checkArgv(original.file, original.local)), wrap(checkArgv(original.file, badPath))]);
  return { good: good.code, bad: bad.code };
}

function corrupt(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `the file contains ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

const byPath = (path: string) => located((p) => p === path);
const unshare = (argv: string[]) => ["unshare", "-n", ...argv];

test("a missing tool skips the test with its name, except in CI where it fails", () => {
  assert.equal(toolPath("standort-no-such-tool"), undefined);
  assert.match(toolPath("sh") ?? "", /\/sh$/);
  const skipped: string[] = [];
  const context = { skip: (message: string) => skipped.push(message) } as unknown as TestContext;
  const ci = process.env.CI;
  try {
    delete process.env.CI;
    assert.equal(requireTool(context, "sh", "standort-no-such-tool"), false);
    assert.deepEqual(skipped, ["missing tool: standort-no-such-tool"]);
    assert.equal(requireTool(context, "sh"), true);
    process.env.CI = "true";
    assert.throws(
      () => requireTool(context, "standort-no-such-tool"),
      /missing tool: standort-no-such-tool \(CI=true: every tool must be installed\)/,
    );
  } finally {
    if (ci === undefined) delete process.env.CI;
    else process.env.CI = ci;
  }
});

/** Every host of every site, with its site and its pair where it has one. */
const hosts = sites.flatMap((site) => site.hosts.map((h) => ({ site, host: h, pair: site.pairs.find((p) => p.members.includes(h.name)) })));
/** Members of a pair that run keepalived: both members, or only the active one of a dissolved pair. */
const keepalivedHosts = hosts.filter(({ host, pair }) => pair && (!pair.dissolved || pair.active === host.name));
const hostsOf = (list: ReadonlyArray<{ host: { name: string } }>) => list.map((h) => h.host.name).sort();
/** Hosts of the four committed sites (frankfurt, karlsruhe, vienna, helsinki), by their site codes: the by-hand checks. */
const COMMITTED_HOST = /^(fra|fkb|vie|hel|fsn)-/;
const renderedOn = (path: string) =>
  byPath(path)
    .map((f) => f.host)
    .sort();

test("every site renders every host with the files each role needs", () => {
  assert.deepEqual(rendered.map((h) => h.host).sort(), hostsOf(hosts));
  assert.deepEqual(renderedOn("/etc/nftables.conf"), hostsOf(hosts));
  assert.deepEqual(renderedOn("/etc/chrony/chrony.conf"), hostsOf(hosts));
  // HAProxy: the proxy pairs, and the ingress of every virtualization host where Compose runs the workloads.
  const haproxyHosts = hosts.filter(
    ({ site, host }) => host.role === "proxy" || (host.role === "virtualization" && site.virtualization.runtime === "compose"),
  );
  assert.deepEqual(renderedOn("/etc/haproxy/haproxy.cfg"), hostsOf(haproxyHosts), "every proxy and every compose ingress");
  assert.deepEqual(renderedOn("/etc/keepalived/keepalived.conf"), hostsOf(keepalivedHosts), "both members of every pair");
  assert.deepEqual(renderedOn("/etc/keepalived/standort-failover.sh"), hostsOf(keepalivedHosts));
  for (const path of ["/etc/standort/fence/sshd_config", "/etc/standort/fence/id_ed25519", "/usr/local/sbin/standort-fenced"])
    assert.deepEqual(
      renderedOn(path),
      hostsOf(hosts.filter((h) => h.pair && !h.pair.dissolved)),
      `${path}: every member of a pair that is not dissolved`,
    );
  // BIRD on the firewalls of every site that announces its own prefix by BGP.
  const bgp = hosts.filter(
    ({ site, host }) => host.role === "firewall" && site.public.mode === "own-prefix" && site.public.routing.kind === "bgp",
  );
  assert.deepEqual(renderedOn("/etc/bird/bird.conf"), hostsOf(bgp));
  // User data for every Hetzner Cloud host and no other, delivered at creation.
  const hcloud = hosts.filter(({ site }) => site.provider.kind === "hcloud");
  assert.deepEqual(renderedOn("/etc/standort/cloud-init.yaml"), hostsOf(hcloud), "every Hetzner Cloud host");
  assert.ok(byPath("/etc/standort/cloud-init.yaml").every((f) => f.file.delivery === "provision"));
  // The committed sites, by hand: 45 hosts, 10 proxies, three pairs at each of the five sites, BGP at frankfurt,
  // Hetzner Cloud at helsinki (10 hosts).
  const committed = (path: string) => renderedOn(path).filter((h) => COMMITTED_HOST.test(h));
  assert.equal(rendered.filter((h) => COMMITTED_HOST.test(h.host)).length, 45);
  assert.equal(committed("/etc/nftables.conf").length, 45);
  assert.equal(committed("/etc/chrony/chrony.conf").length, 45);
  assert.equal(
    committed("/etc/haproxy/haproxy.cfg").length,
    17,
    "every proxy (10) and the ingress of vienna's 3, karlsruhe's 2 and falkenstein's 2 virtualization hosts",
  );
  assert.equal(committed("/etc/keepalived/keepalived.conf").length, 30, "both members of three pairs at five sites");
  assert.equal(committed("/etc/keepalived/standort-failover.sh").length, 30);
  for (const path of ["/etc/standort/fence/sshd_config", "/etc/standort/fence/id_ed25519", "/usr/local/sbin/standort-fenced"])
    assert.equal(committed(path).length, 30, `${path}: every member of a pair that is not dissolved`);
  assert.deepEqual(committed("/etc/bird/bird.conf"), ["fra-fw-1", "fra-fw-2"]);
  assert.equal(committed("/etc/standort/cloud-init.yaml").length, 10, "every Helsinki (hcloud) host");
  assert.ok(committed("/etc/standort/cloud-init.yaml").every((h) => h.startsWith("hel-")));
});

test("nft -c accepts every host's ruleset, each in a fresh network namespace", async (t) => {
  if (!requireTool(t, "nft", "unshare")) return;
  await assertAllAccepted(byPath("/etc/nftables.conf"), unshare);
});

test("haproxy -c accepts every proxy's configuration", async (t) => {
  if (!requireTool(t, "haproxy")) return;
  await assertAllAccepted(byPath("/etc/haproxy/haproxy.cfg"));
});

test("keepalived -t accepts every pair member's configuration, in a namespace with the segment interfaces", async (t) => {
  if (!requireTool(t, "keepalived") || !requireNetns(t)) return;
  const links = [...new Set(sites.flatMap((s) => s.segments.map((seg) => interfaceName(seg.name))))].sort();
  const ns = `standort-ka-${process.pid}`;
  const remove = createNetnsWithLinks(ns, links);
  try {
    await assertAllAccepted(byPath("/etc/keepalived/keepalived.conf"), (argv) => ["ip", "netns", "exec", ns, ...argv]);
  } finally {
    remove();
  }
});

test("sshd -t accepts every fence sshd's configuration, and a broken one is refused", async (t) => {
  if (!requireTool(t, "sshd", "ssh-keygen")) return;
  const files = byPath("/etc/standort/fence/sshd_config");
  await assertAllAccepted(files);
  const codes = await codesFor(files[0], corrupt(readFileSync(files[0].local, "utf8"), "PermitTTY no", "PermitTTY nope"));
  assert.deepEqual(codes, { good: 0, bad: 255 });
});

test("bird -p accepts the BGP firewalls' configuration", async (t) => {
  if (!requireTool(t, "bird")) return;
  await assertAllAccepted(byPath("/etc/bird/bird.conf"));
});

test("chronyd -p accepts every host's configuration", async (t) => {
  if (!requireTool(t, "chronyd")) return;
  await assertAllAccepted(byPath("/etc/chrony/chrony.conf"));
});

test("cloud-init schema accepts every Hetzner Cloud host's user-data", async (t) => {
  if (!requireTool(t, "cloud-init")) return;
  await assertAllAccepted(byPath("/etc/standort/cloud-init.yaml"));
});

test("sh -n accepts every failover script and provider environment file", async (t) => {
  if (!requireTool(t, "sh")) return;
  const files = located((p) => p === "/etc/keepalived/standort-failover.sh" || p === "/etc/standort/provider.env");
  // A failover script on every pair member running keepalived; the provider token only where the script calls the
  // provider: every member at a provider whose API fences (Hetzner Cloud, Robot), the firewall and proxy pairs of a site behind provider
  // failover IPs (they move them) and the firewalls of a site whose own prefix is routed statically (they move the
  // next hop). A site that announces by BGP and fences by command (frankfurt) has none.
  assert.deepEqual(
    files
      .filter((f) => f.file.path.endsWith("standort-failover.sh"))
      .map((f) => f.host)
      .sort(),
    hostsOf(keepalivedHosts),
  );
  const envHosts = files
    .filter((f) => f.file.path === "/etc/standort/provider.env")
    .map((f) => f.host)
    .sort();
  const callsProvider = ({ site, host }: (typeof hosts)[number]) =>
    adapterOf(site).failover.apiFence ||
    (site.public.mode === "provider-failover-ips" && (host.role === "firewall" || host.role === "proxy")) ||
    (site.public.mode === "own-prefix" && site.public.routing.kind === "static" && host.role === "firewall");
  assert.deepEqual(envHosts, hostsOf(keepalivedHosts.filter(callsProvider)));
  // The committed sites, by hand: karlsruhe's firewall and proxy pairs, every Falkenstein and Helsinki pair member,
  // vienna's firewalls.
  assert.deepEqual(
    envHosts.filter((h) => COMMITTED_HOST.test(h)),
    [
      "fkb-fw-1",
      "fkb-fw-2",
      "fkb-proxy-1",
      "fkb-proxy-2",
      "fsn-fw-1",
      "fsn-fw-2",
      "fsn-proxy-1",
      "fsn-proxy-2",
      "fsn-stor-1",
      "fsn-stor-2",
      "hel-fw-1",
      "hel-fw-2",
      "hel-proxy-1",
      "hel-proxy-2",
      "hel-stor-1",
      "hel-stor-2",
      "vie-fw-1",
      "vie-fw-2",
    ],
  );
  await assertAllAccepted(files);
});

const networkdOf = (host: string) =>
  rendered
    .find((h) => h.host === host)!
    .files.filter((f) => f.path.startsWith("/etc/systemd/network/"))
    .map((f) => ({ name: f.path.split("/").pop()!, content: f.content }));

const networkdFiles = (files: ReadonlyArray<{ name: string; content: string }>) =>
  Object.fromEntries(files.map((f) => [f.name, f.content]));

// No daemon checks networkd files offline; the twin's strict reader (which refuses every section, key and value
// it does not implement, and every VLAN=/IPVLAN= without its netdev) is the check, and the twin applies what it reads.
test("every host's networkd files pass the strict reader: known sections and keys, VLAN ids, names, parents, routes", () => {
  for (const { host } of rendered) {
    const files = networkdOf(host);
    assert.ok(files.length >= 5, `${host} has networkd files`);
    const config = readNetworkd(networkdFiles(files));
    assert.equal(config.netdevs.length, (files.length - 1) >> 1, `${host}: one netdev per segment`);
  }
});

test("the strict networkd reader rejects a VLAN id out of range, a long name, an unknown key and an unknown section", () => {
  const files = networkdOf("vie-proxy-1");
  const broken = (file: string, from: string, to: string) =>
    networkdFiles(files.map((f) => (f.name === file ? { ...f, content: f.content.replace(from, to) } : f)));
  const refused = (files: Record<string, string>) => {
    try {
      readNetworkd(files);
      return "accepted";
    } catch (error) {
      assert.ok(error instanceof NetworkdReadError, String(error));
      return error.message;
    }
  };
  assert.equal(
    refused(broken("20-standort-dmz.netdev", "Id=10", "Id=5000")),
    "20-standort-dmz.netdev:8: [VLAN] Id: 5000 must be an integer from 1 to 4094",
  );
  assert.equal(
    refused(broken("20-standort-dmz.netdev", "Name=dmz", "Name=dmz-segment-too-long")),
    "20-standort-dmz.netdev:3: [NetDev] Name: dmz-segment-too-long is not a valid interface name",
  );
  assert.match(
    refused(broken("20-standort-mgmt.network", "IPv6AcceptRA=no", "IPv6AcceptRa=no")),
    /^20-standort-mgmt\.network:\d+: \[Network\] IPv6AcceptRa: is not implemented by the twin/,
  );
  assert.match(
    refused(broken("20-standort-dmz.network", "[Route]", "[NextHop]")),
    /^20-standort-dmz\.network:\d+: \[NextHop\]: is a section the twin does not implement/,
  );
  assert.match(
    refused(broken("20-standort-dmz.network", "Gateway=10.30.0.1", "Gateway=10.30.0.300")),
    /\[Route\] Gateway: 10\.30\.0\.300 is not an IPv4 address/,
  );
  assert.match(
    refused(broken("10-standort-internal.network", "VLAN=dmz", "VLAN=dmx")),
    /\[Network\] VLAN: dmx has no \.netdev of Kind=vlan/,
  );
});

test("each daemon's check rejects a deliberately broken file (the checks are real)", async (t) => {
  if (!requireTool(t, "nft", "unshare", "haproxy", "keepalived", "bird", "chronyd", "cloud-init", "sh") || !requireNetns(t)) return;
  const one = (path: string, host: string) => byPath(path).find((f) => f.host === host)!;
  const text = (f: Located) => readFileSync(f.local, "utf8");

  const nft = one("/etc/nftables.conf", "fra-fw-1");
  assert.deepEqual(await codesFor(nft, corrupt(text(nft), "policy drop;", "policy dorp;"), unshare), { good: 0, bad: 1 });

  const haproxy = one("/etc/haproxy/haproxy.cfg", "vie-proxy-1");
  const haproxyCodes = await codesFor(haproxy, corrupt(text(haproxy), "balance leastconn", "balance mostconn"));
  assert.equal(haproxyCodes.good, 0);
  assert.notEqual(haproxyCodes.bad, 0);

  const ns = `standort-kb-${process.pid}`;
  const remove = createNetnsWithLinks(ns, ["dmz", "app", "data", "mgmt", "hb-firewall"]);
  try {
    const keepalived = one("/etc/keepalived/keepalived.conf", "fra-fw-1");
    const codes = await codesFor(keepalived, corrupt(text(keepalived), "virtual_router_id 10", "virtual_router_id 300"), (a) => [
      "ip",
      "netns",
      "exec",
      ns,
      ...a,
    ]);
    assert.equal(codes.good, 0);
    assert.notEqual(codes.bad, 0);
    // A VRRP version keepalived does not speak is refused, not ignored.
    const version = await codesFor(keepalived, corrupt(text(keepalived), "vrrp_version 3", "vrrp_version 4"), (a) => [
      "ip",
      "netns",
      "exec",
      ns,
      ...a,
    ]);
    assert.notEqual(version.bad, 0);
  } finally {
    remove();
  }

  const bird = one("/etc/bird/bird.conf", "fra-fw-1");
  const birdCodes = await codesFor(bird, corrupt(text(bird), "import where net = 198.18.2.0/23;", "import where net = 198.18.2.0/23"));
  assert.equal(birdCodes.good, 0);
  assert.notEqual(birdCodes.bad, 0);

  const chrony = one("/etc/chrony/chrony.conf", "hel-virt-1");
  const chronyCodes = await codesFor(chrony, corrupt(text(chrony), "makestep 1.0 -1", "makesteps 1.0 -1"));
  assert.equal(chronyCodes.good, 0);
  assert.notEqual(chronyCodes.bad, 0);

  const cloudInit = one("/etc/standort/cloud-init.yaml", "hel-proxy-1");
  const cloudCodes = await codesFor(cloudInit, corrupt(text(cloudInit), "package_update: true", 'package_update: "sometimes"'));
  assert.equal(cloudCodes.good, 0);
  assert.notEqual(cloudCodes.bad, 0);

  const script = one("/etc/keepalived/standort-failover.sh", "fkb-proxy-2");
  const scriptCodes = await codesFor(script, corrupt(text(script), "\tdone\n", "\n"));
  assert.equal(scriptCodes.good, 0);
  assert.notEqual(scriptCodes.bad, 0);
});
