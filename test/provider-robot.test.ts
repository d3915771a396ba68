/**
 * The Hetzner dedicated server (Robot) adapter: its limits refuse their cases
 * before planning, the segments ride as vSwitch VLANs 4000+ with MTU 1400 on
 * the uplink NIC, and the failover script's switch and fence call the Robot
 * web service with the credentials on curl's standard input only: the
 * rendered functions run in sh, unchanged, against a stand-in of the web
 * service on 127.0.0.1 (TLS with a test CA; a curl wrapper on PATH adds
 * `--connect-to` and `--cacert` and records its command line).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validateSites } from "../lib/model/validate";
import { loadSites } from "../lib/model/load";
import type { SiteModel } from "../lib/model/model";
import { renderFailoverScript, renderNetworkdFiles, renderProviderEnv } from "../lib/render";
import { readNetworkd } from "../lib/twin/networkd";
import { adapterOf } from "../lib/providers/registry";
import { ROBOT_API, ROBOT_RETRY_SPACING_SECONDS, robotVlanId } from "../lib/providers/hetzner-robot";
import { makeTls } from "../scripts/twin/tls";
import { documentOf, siteDocuments } from "./helpers/sites";
import { fakeSecrets } from "./helpers/secrets";
import { requireTool, run, toolPath } from "./helpers/tools";

const FILE = "sites/falkenstein.yaml";
const sites = loadSites();
const falkenstein = sites.find((s) => s.name === "falkenstein")!;

/** Validation problems of the committed sites with falkenstein's document changed. */
function problemsWith(change: (doc: Record<string, any>) => void): string[] {
  const documents = siteDocuments();
  change(documentOf(documents, "falkenstein"));
  return validateSites(documents).problems;
}

test("falkenstein is a Robot site: its adapter, operator hetzner (one company with Hetzner Cloud), no own prefix", () => {
  const adapter = adapterOf(falkenstein);
  assert.equal(adapter.id, "hetzner-robot");
  assert.equal(adapter.operator, adapterOf(sites.find((s) => s.name === "helsinki")!).operator);
  assert.equal(adapter.describe(falkenstein.provider), "Hetzner dedicated (Robot) fsn1");
  assert.equal(adapter.ownPrefix.routable, false);
  assert.equal(adapter.failoverIps, "declared");
  assert.deepEqual(validateSites(siteDocuments()).problems, []);
});

test("a server in more than 5 vSwitches is refused: any extra segment, since the firewalls join 5 already", () => {
  const problems = problemsWith((d) => {
    d.network.extraSegments = [{ name: "backup", prefixLength: 26, members: ["storage"] }];
  });
  assert.deepEqual(problems, [
    `${FILE}: network.extraSegments: a firewall host would join 6 vSwitches (dmz, app, data, mgmt, hb-firewall, backup), one per segment, but a Hetzner dedicated server can be in at most 5 vSwitches (Hetzner Docs, vSwitch): remove 1 extra segment(s) the firewall hosts join`,
  ]);
});

test("more than 100 servers on one vSwitch are refused, naming the segment and the limit", () => {
  const problems = problemsWith((d) => {
    const virt = Array.from({ length: 95 }, (_, i) => ({
      name: `fsn-virt-${i + 1}`,
      role: "virtualization",
      physical: `fsn-px-${i + 1}`,
      address: `198.19.71.${i + 10}`,
    }));
    d.provider.hosts = [...d.provider.hosts.filter((h: { role: string }) => h.role !== "virtualization"), ...virt];
    d.roles.virtualization.count = 95;
  });
  assert.deepEqual(problems, [
    `${FILE}: provider.hosts: 101 servers would join the vSwitch of segment mgmt, but a vSwitch joins at most 100 servers (Hetzner Docs, vSwitch): list fewer hosts of the roles firewall, proxy, virtualization, storage`,
  ]);
});

test("a VLAN id base whose last segment passes 4091 is refused, and the base itself must lie in 4000–4091", () => {
  assert.deepEqual(
    problemsWith((d) => (d.provider.vswitchVlanBase = 4090)),
    [
      `${FILE}: provider.vswitchVlanBase: 4090 gives the site's 7 segments the VLAN ids 4090–4096, but a vSwitch's VLAN id is at most 4091 (4000–4091, Hetzner Docs, vSwitch): use a base of at most 4085`,
    ],
  );
  assert.deepEqual(
    problemsWith((d) => (d.provider.vswitchVlanBase = 4085)),
    [],
  );
  for (const base of [3999, 4092]) {
    const problems = problemsWith((d) => (d.provider.vswitchVlanBase = base));
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0], new RegExp(`^${FILE}: provider\\.vswitchVlanBase: `));
  }
});

test("a fence command and a missing data disk are refused: Robot fences itself, and bare metal has no /dev/vdb", () => {
  assert.deepEqual(
    problemsWith((d) => (d.provider.fenceCommand = "/usr/local/sbin/power-off %h")),
    [
      `${FILE}: provider.fenceCommand: a Hetzner dedicated server is fenced through the Robot web service's reset (power_long), which the failover script calls itself: remove the field`,
    ],
  );
  assert.deepEqual(
    problemsWith((d) => delete d.roles.storage.dataDisk),
    [
      `${FILE}: roles.storage.dataDisk: is required on Hetzner dedicated servers, which have no virtio disk (/dev/vdb): name each store's data disk, for example /dev/sdb or its /dev/disk/by-id link`,
    ],
  );
});

test("own-prefix is refused on Robot (no BYOIP)", () => {
  const problems = problemsWith((d) => {
    d.public = { mode: "own-prefix", prefix: "198.18.8.0/23", routing: { kind: "static", nextHop: "198.19.70.10" } };
  });
  assert.ok(
    problems.includes(
      `${FILE}: public.mode: own-prefix is not possible here: Hetzner has no documented way to bring an own prefix (BYOIP) to dedicated servers: the site uses failover IPs: use mode: provider-failover-ips`,
    ),
    problems.join("\n"),
  );
});

test("the networkd files put the segments on the uplink NIC as VLANs 4000+ with MTU 1400, and keep the image's address", () => {
  const ids: Record<string, number | undefined> = Object.fromEntries(
    falkenstein.segments.map((s) => [s.name, robotVlanId(falkenstein, s.name)]),
  );
  assert.deepEqual(ids, { dmz: 4000, app: 4001, data: 4002, mgmt: 4003, "hb-firewall": 4004, "hb-proxy": 4005, "hb-storage": 4006 });
  for (const host of falkenstein.hosts) {
    const files = renderNetworkdFiles(falkenstein, host.name, { sites, uplinkNic: "enp0s31f6" });
    const names = files.map((f) => f.name);
    assert.equal(names[0], "10-standort-uplink.network", host.name);
    assert.ok(!names.includes("10-standort-internal.network"), `${host.name}: no internal NIC on a dedicated server`);
    const config = readNetworkd(Object.fromEntries(files.map((f) => [f.name, f.content])));
    const uplink = config.networks.find((n) => n.file === "10-standort-uplink.network")!;
    assert.deepEqual(uplink.match, ["enp0s31f6"]);
    assert.equal(uplink.keepStatic, true);
    assert.deepEqual(uplink.addresses, [], "the main IP stays the image's");
    assert.equal(uplink.mtu, undefined, "the main NIC keeps its own MTU");
    assert.deepEqual(
      uplink.vlans,
      host.interfaces.map((i) => i.segment),
    );
    for (const iface of host.interfaces) {
      const netdev = config.netdevs.find((d) => d.name === iface.segment)!;
      assert.deepEqual(netdev.kind === "vlan" && { id: netdev.vlanId, mtu: netdev.mtu }, {
        id: robotVlanId(falkenstein, iface.segment),
        mtu: 1400,
      });
    }
  }
  // Another base shifts every id.
  const shifted = { ...falkenstein, provider: { ...falkenstein.provider, vswitchVlanBase: 4010 } } as SiteModel;
  assert.equal(robotVlanId(shifted, "dmz"), 4010);
  assert.equal(robotVlanId(shifted, "hb-storage"), 4016);
});

test("the plan prints the vSwitches to order with their VLAN ids, and the switch rate limit", () => {
  const notes = adapterOf(falkenstein).notes(falkenstein);
  assert.match(notes[0], /dmz 4000, app 4001, data 4002, mgmt 4003, hb-firewall 4004, hb-proxy 4005, hb-storage 4006$/);
  assert.match(notes[1], /about 50 switches an hour/);
});

// The web service stand-in and the sh runs of the rendered functions.

const USER = "#ws+fsn";
/** A password with what curl's config quoting must escape, and a colon. */
const PASSWORD = 'pa"ss\\wo:rd';
const FAILOVER_IPS = ["198.19.70.100", "198.19.70.101"];
const SERVERS = falkenstein.hosts.map((h) => h.publicAddress!);

interface Request {
  readonly method: string;
  readonly path: string;
  readonly body: string;
  readonly user: string;
}

const root = mkdtempSync(join(tmpdir(), "standort-robot-"));
after(() => rmSync(root, { recursive: true, force: true }));
let server: Server | undefined;
let port = 0;
const requests: Request[] = [];
/** Where each failover IP is routed now. */
const routed = new Map<string, string>();

function answer(res: import("node:http").ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}
const error = (status: number, code: string) => ({ error: { status, code, message: code.toLowerCase().replace(/_/g, " ") } });

before(() => {
  if (!toolPath("openssl") || !toolPath("curl")) return;
  const tls = makeTls(join(root, "tls"), ["robot-ws.your-server.de"]);
  server = createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, (req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? "")?.[1];
      const [user, ...rest] = auth ? Buffer.from(auth, "base64").toString().split(":") : [""];
      const path = req.url ?? "";
      requests.push({ method: req.method ?? "", path, body, user });
      // Like the real one: a wrong user or password is 401, an unknown failover IP or server 404.
      if (user !== USER || rest.join(":") !== PASSWORD) return answer(res, 401, error(401, "UNAUTHORIZED"));
      const form = new URLSearchParams(body);
      const failover = /^\/failover\/([0-9.]+)$/.exec(path);
      if (req.method === "POST" && failover) {
        const ip = failover[1];
        if (!FAILOVER_IPS.includes(ip)) return answer(res, 404, error(404, "NOT_FOUND"));
        const target = form.get("active_server_ip") ?? "";
        if (!SERVERS.includes(target)) return answer(res, 404, error(404, "FAILOVER_NEW_SERVER_NOT_FOUND"));
        if (routed.get(ip) === target) return answer(res, 409, error(409, "FAILOVER_ALREADY_ROUTED"));
        routed.set(ip, target);
        return answer(res, 200, { failover: { ip, netmask: "255.255.255.255", server_ip: SERVERS[0], active_server_ip: target } });
      }
      const reset = /^\/reset\/([0-9.]+)$/.exec(path);
      if (req.method === "POST" && reset) {
        if (!SERVERS.includes(reset[1])) return answer(res, 404, error(404, "SERVER_NOT_FOUND"));
        if (form.get("type") !== "power_long") return answer(res, 400, error(400, "INVALID_INPUT"));
        return answer(res, 200, { reset: { server_ip: reset[1], type: "power_long" } });
      }
      answer(res, 404, error(404, "NOT_FOUND"));
    });
  });
  return new Promise<void>((resolve) =>
    server!.listen(0, "127.0.0.1", () => {
      port = (server!.address() as AddressInfo).port;
      // The stubs: curl reaches the stand-in (recording its command line), the rest records or fails.
      const stubs = join(root, "stubs");
      mkdirSync(stubs, { recursive: true });
      const stub = (name: string, body: string) => {
        writeFileSync(join(stubs, name), `#!/bin/sh\n${body}\n`);
        chmodSync(join(stubs, name), 0o755);
      };
      stub(
        "curl",
        `printf '%s\\n' "$*" >> "$CALLS.curl"\nexec ${toolPath("curl")} --connect-to robot-ws.your-server.de:443:127.0.0.1:${port} --cacert ${tls.ca} "$@"`,
      );
      stub("ip", `printf 'ip %s\\n' "$*" >> "$CALLS"`);
      stub("logger", `shift 4; printf 'log %s\\n' "$*" >> "$CALLS"`);
      // The reset peer answers no more (and nothing else is asked here).
      stub("ping", "exit 1");
      resolve();
    }),
  );
});
after(() => server?.close());

/**
 * Runs `commands` in sh after the definitions of a host's rendered failover script (everything before its main
 * part), with the stack's provider.env holding `credentials`; returns the exit code, the log and the curl lines.
 */
async function runFunctions(
  host: string,
  commands: string,
  credentials: string | undefined,
): Promise<{ code: number; stderr: string; calls: string[]; curl: string[] }> {
  const dir = mkdtempSync(join(root, "run-"));
  const runDir = join(dir, "run");
  mkdirSync(runDir);
  const script = renderFailoverScript(falkenstein, host, fakeSecrets(falkenstein));
  const definitions = script.slice(0, script.indexOf('mkdir -p "$RUN_DIR"'));
  assert.ok(definitions.length > 0 && definitions.length < script.length);
  const env = join(dir, "provider.env");
  writeFileSync(
    env,
    renderProviderEnv(falkenstein, host, credentials === undefined ? { fence: {} } : { fence: {}, providerApiToken: credentials }) ?? "",
  );
  const calls = join(dir, "calls");
  writeFileSync(calls, "");
  const result = await run([
    "env",
    "-i",
    `PATH=${join(root, "stubs")}:/usr/bin:/bin`,
    `CALLS=${calls}`,
    `STANDORT_RUN_DIR=${runDir}`,
    `STANDORT_PROVIDER_ENV=${env}`,
    "sh",
    "-c",
    `${definitions}\nmkdir -p "$RUN_DIR"\n${commands}`,
  ]);
  const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
  return { code: result.code, stderr: result.stderr, calls: lines(calls), curl: lines(`${calls}.curl`) };
}

const CREDENTIALS = `${USER}:${PASSWORD}`;
const proxy2 = falkenstein.hosts.find((h) => h.name === "fsn-proxy-2")!.publicAddress!;
const fw1 = falkenstein.hosts.find((h) => h.name === "fsn-fw-1")!.publicAddress!;

test("the switch routes the failover IP to this server's main IP through the web service, credentials on stdin only", async (t) => {
  if (!requireTool(t, "sh", "curl", "openssl", "jq") || !server) return;
  requests.length = 0;
  routed.clear();
  const first = await runFunctions("fsn-proxy-2", "move_failover_address", CREDENTIALS);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(requests, [{ method: "POST", path: "/failover/198.19.70.100", body: `active_server_ip=${proxy2}`, user: USER }]);
  assert.deepEqual(routed.get("198.19.70.100"), proxy2);
  // Then it holds the address on the uplink.
  assert.deepEqual(first.calls, ["ip addr replace 198.19.70.100/32 dev eth0"]);
  // The URL is Robot's own; neither the user nor the password is on curl's command line.
  assert.equal(first.curl.length, 1);
  assert.match(first.curl[0], new RegExp(`${ROBOT_API.replace(/\./g, "\\.")}/failover/198\\.19\\.70\\.100$`));
  assert.ok(!first.curl[0].includes(PASSWORD) && !first.curl[0].includes(USER), first.curl[0]);
  assert.match(first.curl[0], /-K -/);

  // A second switch to the same server: Robot answers FAILOVER_ALREADY_ROUTED (409), which counts as done.
  const again = await runFunctions("fsn-proxy-2", "move_failover_address", CREDENTIALS);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(requests.length, 2);
  assert.deepEqual(again.calls, ["ip addr replace 198.19.70.100/32 dev eth0"]);

  // The firewall's NAT address moves the same way, to the firewall's main IP.
  const nat = await runFunctions("fsn-fw-1", "move_failover_address", CREDENTIALS);
  assert.equal(nat.code, 0, nat.stderr);
  assert.deepEqual(requests.at(-1), { method: "POST", path: "/failover/198.19.70.101", body: `active_server_ip=${fw1}`, user: USER });
});

test("a refused switch (wrong password: 401) fails, holds nothing, and is not tried again within the spacing", async (t) => {
  if (!requireTool(t, "sh", "curl", "openssl", "jq") || !server) return;
  requests.length = 0;
  routed.clear();
  const wrong = await runFunctions("fsn-proxy-1", "move_failover_address; echo rc=$?; move_failover_address; echo rc=$?", `${USER}:wrong`);
  assert.equal(wrong.code, 0);
  assert.equal(requests.length, 1, "the second try waits for the spacing");
  assert.equal(requests[0].user, USER);
  assert.ok(
    wrong.calls.some((l) => l.includes("HTTP 401 UNAUTHORIZED")),
    wrong.calls.join("\n"),
  );
  assert.ok(!wrong.calls.some((l) => l.startsWith("ip ")), "nothing held");
  assert.equal(routed.size, 0);
  assert.match(
    renderFailoverScript(falkenstein, "fsn-proxy-1", fakeSecrets(falkenstein)),
    new RegExp(`ROBOT_RETRY_SPACING=${ROBOT_RETRY_SPACING_SECONDS}\\n`),
  );
  // Missing credentials: no call at all.
  const none = await runFunctions("fsn-proxy-1", "move_failover_address", undefined);
  assert.notEqual(none.code, 0);
  assert.equal(requests.length, 1);
  assert.match(none.stderr, /lacks ROBOT_CREDENTIALS/);
});

test("an unknown failover IP (404) fails the switch", async (t) => {
  if (!requireTool(t, "sh", "curl", "openssl", "jq") || !server) return;
  requests.length = 0;
  const unknown = await runFunctions("fsn-proxy-2", "FAILOVER_ADDRESS=198.19.70.199\nmove_failover_address", CREDENTIALS);
  assert.notEqual(unknown.code, 0);
  assert.deepEqual(
    requests.map((r) => r.path),
    ["/failover/198.19.70.199"],
  );
  assert.ok(
    unknown.calls.some((l) => l.includes("HTTP 404 NOT_FOUND")),
    unknown.calls.join("\n"),
  );
});

test("the second fence resets the peer's server (power_long) through the web service, credentials on stdin only", async (t) => {
  if (!requireTool(t, "sh", "curl", "openssl", "jq") || !server) return;
  requests.length = 0;
  const peer = falkenstein.hosts.find((h) => h.name === "fsn-stor-1")!.publicAddress!;
  const fenced = await runFunctions("fsn-stor-2", "fence_second", CREDENTIALS);
  assert.equal(fenced.code, 0, fenced.stderr);
  assert.deepEqual(requests, [{ method: "POST", path: `/reset/${peer}`, body: "type=power_long", user: USER }]);
  assert.ok(!fenced.curl[0].includes(PASSWORD) && !fenced.curl[0].includes(USER), fenced.curl[0]);
  // A wrong password: the fence fails.
  const refused = await runFunctions("fsn-stor-2", "fence_second", `${USER}:wrong`);
  assert.notEqual(refused.code, 0);
  assert.ok(
    refused.calls.some((l) => l.includes("HTTP 401")),
    refused.calls.join("\n"),
  );
  // An unknown server (404): the fence fails.
  const unknown = await runFunctions("fsn-stor-2", "PEER_PUBLIC=198.19.70.250\nfence_second", CREDENTIALS);
  assert.notEqual(unknown.code, 0);
  assert.ok(
    unknown.calls.some((l) => l.includes("HTTP 404 SERVER_NOT_FOUND")),
    unknown.calls.join("\n"),
  );
});

test("every pair member's provider.env holds the credentials (the API fence), and the stack's secret is required", () => {
  for (const pair of falkenstein.pairs)
    for (const member of pair.members)
      assert.equal(
        renderProviderEnv(falkenstein, member, { fence: {}, providerApiToken: CREDENTIALS })?.split("\n")[1],
        `ROBOT_CREDENTIALS='${CREDENTIALS}'`,
      );
  assert.throws(
    () => renderFailoverScript(falkenstein, "fsn-stor-1", { ...fakeSecrets(falkenstein), providerApiToken: undefined }),
    /providerApiToken: is required/,
  );
});
