// The rendered failover script, run for real in a network namespace of its
// own, with the real ssh and ping: the fence over mgmt and the reachability
// check find no peer there (or find its heartbeat address on lo, where a test
// says the peer still answers). Stand-ins record what the provider and the
// host would do (curl, ip, nft, sleep, logger, systemctl, chronyc). The passive
// member fences before it moves anything, steps back when it cannot fence a
// peer that answers, and the active member never fences. The fence itself,
// against a real sshd, runs in the twin (test/twin-*.test.ts).
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import { RenderSecrets, renderFailoverScript, renderProviderEnv } from "../lib/render";
import { requireTool, run } from "./helpers/tools";
import { fakeFenceKeys } from "./helpers/secrets";
import { STORAGE_ACTIVE_FLAG } from "../lib/footprint/jobs";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const secrets = (model: SiteModel): RenderSecrets => ({
  fence: fakeFenceKeys(model),
  providerApiToken: "fake-token-for-tests",
});

const root = mkdtempSync(join(tmpdir(), "standort-failover-"));
after(() => rmSync(root, { recursive: true, force: true }));

const STUBS = join(root, "bin");
mkdirSync(STUBS);
const stub = (name: string, body: string) => {
  writeFileSync(join(STUBS, name), `#!/bin/sh\n${body}\n`);
  chmodSync(join(STUBS, name), 0o755);
};
// drbdadm, mount and umount: the storage pair's role hooks promote, mount and release the data volume.
for (const name of ["ip", "logger", "nft", "systemctl", "drbdadm", "mount", "umount"]) {
  const variable = `STUB_${name.toUpperCase()}_EXIT`;
  stub(name, `echo "${name} $*" >> "$CALLS"\nexit "\${${variable}:-0}"`);
}
// sleep returns at once; with STUB_SLEEP_FLIP it plays the peer coming back during the grace period.
stub(
  "sleep",
  [
    'echo "sleep $*" >> "$CALLS"',
    '[ -n "${STUB_SLEEP_FLIP:-}" ] && echo backup > "$STUB_SLEEP_FLIP"',
    // With STUB_SLEEP_RERUN, a second takeover runs to its end while the first one waits (once, not nested).
    'if [ -n "${STUB_SLEEP_RERUN:-}" ] && [ -z "${STUB_NESTED:-}" ]; then STUB_NESTED=1 sh "$STUB_SLEEP_RERUN" master; fi',
    "exit 0",
  ].join("\n"),
);
stub(
  "curl",
  [
    'method=GET; url=""; data=""',
    "while [ $# -gt 0 ]; do",
    '  case "$1" in',
    "    -X) method=$2; shift 2 ;;",
    "    -d) data=$2; shift 2 ;;",
    // The token arrives as a config line on standard input; recorded apart from the command line.
    '    -K) [ "$2" = - ] && sed "s/^/stdin /" >> "$CALLS.stdin"; shift 2 ;;',
    '    -H) echo "header $2" >> "$CALLS.stdin.argv"; shift 2 ;;',
    "    --max-time) shift 2 ;;",
    "    -*) shift ;;",
    "    *) url=$1; shift ;;",
    "  esac",
    "done",
    'echo "curl $method $url${data:+ $data}" >> "$CALLS"',
    'case "$url" in',
    "  *'/servers?name=hel-proxy-1') echo '{\"servers\":[{\"id\":101}]}' ;;",
    "  *'/servers?name=hel-proxy-2') echo '{\"servers\":[{\"id\":102}]}' ;;",
    '  */actions/poweroff) exit "${STUB_POWEROFF_EXIT:-0}" ;;',
    '  *\'/floating_ips?name=\'*) echo \'{"floating_ips":[{"id":7,"ip":"198.19.251.10"}]}\' ;;',
    "  *'/networks?name=helsinki-net') echo '{\"networks\":[{\"id\":55}]}' ;;",
    "esac",
    "exit 0",
  ].join("\n"),
);

// arping is the real one; with STUB_ARPING_FLIP it first plays the peer taking the role back (keepalived
// writes backup) while the new master asks who holds the VIPs.
stub("arping", '[ -n "${STUB_ARPING_FLIP:-}" ] && echo backup > "$STUB_ARPING_FLIP"\nexec /usr/sbin/arping "$@"');

// chronyc answers what STUB_TRACKING holds (a file), or fails like a chronyd that does not run.
stub("chronyc", '[ -n "${STUB_TRACKING:-}" ] || { echo "506 Cannot talk to daemon" >&2; exit 1; }\ncat "$STUB_TRACKING"');

let counter = 0; // one folder per run

/** Runs a host's rendered failover script with one state argument; returns its exit code and the recorded calls. */
async function runScript(
  model: SiteModel,
  host: string,
  state: string,
  options: {
    env?: Record<string, string> | ((runDir: string) => Record<string, string>);
    providerEnv?: Record<string, string>;
    before?: (runDir: string) => void;
    /** The peer's heartbeat address answers echo requests (it is put on lo in the script's namespace). */
    peerAnswers?: boolean;
  } = {},
): Promise<{ code: number; calls: string[]; logs: string[]; runDir: string; stdin: string }> {
  const dir = join(root, `run-${++counter}`);
  const runDir = join(dir, "run");
  mkdirSync(runDir, { recursive: true });
  const script = join(dir, "failover.sh");
  writeFileSync(script, renderFailoverScript(model, host, secrets(model)));
  const envFile = join(dir, "provider.env");
  writeFileSync(envFile, renderProviderEnv(model, host, secrets(model), { providerEnv: options.providerEnv }) ?? "");
  const calls = join(dir, "calls");
  writeFileSync(calls, "");
  options.before?.(runDir);
  const extra = typeof options.env === "function" ? options.env(runDir) : options.env;
  const env = { PATH: `${STUBS}:/usr/bin:/bin`, CALLS: calls, STANDORT_RUN_DIR: runDir, STANDORT_PROVIDER_ENV: envFile, ...extra };
  const pair = model.pairs.find((p) => p.members.includes(host))!;
  const peer = pair.members.find((m) => m !== host)!;
  // A namespace of its own: ssh and ping reach nothing but what this test puts on lo.
  const setup = [
    "/usr/sbin/ip link set lo up",
    ...(options.peerAnswers ? [`/usr/sbin/ip addr add ${pair.heartbeat[peer]}/32 dev lo`] : []),
  ];
  const result = await run([
    "unshare",
    "-n",
    "sh",
    "-c",
    `${setup.join(" && ")} && exec "$@"`,
    "failover-test",
    "env",
    "-i",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    "sh",
    script,
    state,
  ]);
  const recorded = readFileSync(calls, "utf8").split("\n").filter(Boolean);
  const stdin = existsSync(`${calls}.stdin`) ? readFileSync(`${calls}.stdin`, "utf8") : "";
  return {
    code: result.code,
    stdin,
    // The fence's polling (sleep 0.1 while ssh runs) depends on how fast ssh fails here: not part of the record.
    calls: recorded.filter((c) => !c.startsWith("logger ") && c !== "sleep 0.1"),
    logs: recorded.filter((c) => c.startsWith("logger ")).map((c) => c.replace(/^logger -t standort-failover -p daemon.notice -- /, "")),
    runDir,
  };
}

const API = "https://api.hetzner.cloud/v1";

test("Hetzner Cloud: the passive member waits, finds the peer silent, powers it off through the API, then takes the VIPs and the floating IP", async (t) => {
  if (!requireTool(t, "jq", "ssh", "ping", "unshare")) return;
  const { code, calls, logs, stdin } = await runScript(site("helsinki"), "hel-proxy-2", "master");
  assert.equal(code, 0, logs.join("\n"));
  assert.deepEqual(calls, [
    "sleep 2",
    `curl GET ${API}/servers?name=hel-proxy-1`,
    `curl POST ${API}/servers/101/actions/poweroff`,
    // The proxy VIP moves as an alias IP: off the fenced peer first, then onto this server, then onto its link.
    `curl GET ${API}/networks?name=helsinki-net`,
    `curl GET ${API}/servers?name=hel-proxy-1`,
    `curl POST ${API}/servers/101/actions/change_alias_ips {"network":55,"alias_ips":["10.40.3.10","10.40.0.17"]}`,
    `curl GET ${API}/servers?name=hel-proxy-2`,
    `curl POST ${API}/servers/102/actions/change_alias_ips {"network":55,"alias_ips":["10.40.3.11","10.40.0.18","10.40.1.4"]}`,
    "ip addr replace 10.40.1.4/32 dev dmz",
    `curl GET ${API}/floating_ips?name=helsinki-proxy`,
    `curl GET ${API}/servers?name=hel-proxy-2`,
    `curl POST ${API}/floating_ips/7/actions/assign {"server":102}`,
    "ip addr replace 198.19.251.10/32 dev eth0",
  ]);
  // Silent on heartbeat and mgmt: the mgmt fence could not reach it either, so the API is asked at once.
  assert.ok(!logs.some((l) => l.includes("fence over mgmt")), logs.join("\n"));
  assert.deepEqual(logs.slice(-2), ["hel-proxy: fenced hel-proxy-1", "hel-proxy: hel-proxy-2 is master"]);
  // The token reached curl only on its standard input, once per call, never on a command line.
  const curls = calls.filter((c) => c.startsWith("curl ")).length;
  assert.equal(stdin.split("\n").filter((l) => l === 'stdin header = "Authorization: Bearer fake-token-for-tests"').length, curls);
  assert.ok(!calls.some((c) => c.includes("fake-token")), calls.join("\n"));
});

test("Hetzner Cloud: a peer that still answers on its private addresses stepped down: no fence, the VIPs and the floating IP move", async (t) => {
  if (!requireTool(t, "jq", "ssh", "ping", "unshare")) return;
  const { code, calls, logs } = await runScript(site("helsinki"), "hel-proxy-2", "master", { peerAnswers: true });
  assert.equal(code, 0, logs.join("\n"));
  assert.ok(!calls.some((c) => c.endsWith("/actions/poweroff")), calls.join("\n"));
  assert.ok(calls.includes(`curl POST ${API}/floating_ips/7/actions/assign {"server":102}`), calls.join("\n"));
  assert.ok(logs.includes("hel-proxy: hel-proxy-1 stepped down and holds none of the addresses: no fence needed"), logs.join("\n"));
});

test("a member that cannot fence a peer that still answers steps back: nothing moves, and keepalived's check faults it for a while", async (t) => {
  if (!requireTool(t, "ssh", "ping", "arping", "unshare")) return;
  const karlsruhe = site("karlsruhe");
  // The peer answers, and whether it still holds the VIPs cannot be told (no VIP link here): it must be fenced.
  const { code, calls, logs, runDir } = await runScript(karlsruhe, "fkb-proxy-2", "master", { providerEnv: IONOS_ENV, peerAnswers: true });
  assert.equal(code, 1);
  assert.ok(!calls.some((c) => c.startsWith("curl") || c.startsWith("ip ")), calls.join("\n"));
  assert.equal(logs.at(-1), "fkb-proxy: could not fence fkb-proxy-1, which still answers: stepping back for 30s (split-brain risk)");
  // It answers, so the real ssh tried its fence sshd over mgmt first (nothing listens there in this namespace).
  assert.match(
    logs.find((l) => l.includes("fence over mgmt"))!,
    /^fkb-proxy: fence over mgmt: fkb-proxy-1 did not confirm: .*(unreachable|refused)/i,
  );
  // keepalived's fence_not_failed check fails while the mark is fresh, and passes once it is older than the step-back time.
  const check = (before?: (dir: string) => void) =>
    runScript(karlsruhe, "fkb-proxy-2", "fence-check", {
      before: (dir) => (writeFileSync(join(dir, "fence-failed-fkb-proxy"), ""), before?.(dir)),
    });
  assert.equal((await check()).code, 1);
  const old = await check((dir) =>
    utimesSync(join(dir, "fence-failed-fkb-proxy"), new Date(Date.now() - 31_000), new Date(Date.now() - 31_000)),
  );
  assert.equal(old.code, 0);
  assert.ok(existsSync(join(runDir, "fence-failed-fkb-proxy")));
});

test("the passive member does not fence a peer that took the role back while it was being asked", async (t) => {
  if (!requireTool(t, "ssh", "ping", "arping", "unshare")) return;
  // The firewall pair: no drain, so the first arping is the duplicate address detection after the grace wait.
  const stateFile = (runDir: string) => join(runDir, "failover-vie-firewall.state");
  const result = await runScript(site("vienna"), "vie-fw-2", "master", {
    peerAnswers: true,
    env: (runDir) => ({ STUB_ARPING_FLIP: stateFile(runDir) }),
  });
  assert.equal(result.code, 0, result.logs.join("\n"));
  assert.equal(result.logs.at(-1), "vie-firewall: no longer master: vie-fw-1 took over again; not fencing");
  assert.ok(!result.logs.some((l) => l.includes("fence")), result.logs.join("\n"));
});

test("the passive member does not fence a peer that came back during the grace period", async (t) => {
  if (!requireTool(t, "jq", "unshare")) return;
  const stateFile = (runDir: string) => join(runDir, "failover-hel-proxy.state");
  const result = await runScript(site("helsinki"), "hel-proxy-2", "master", { env: (runDir) => ({ STUB_SLEEP_FLIP: stateFile(runDir) }) });
  assert.equal(result.code, 0);
  assert.deepEqual(result.calls, ["sleep 2"]);
  assert.equal(result.logs.at(-1), "hel-proxy: no longer master: hel-proxy-1 is back; not fencing");
  assert.equal(readFileSync(stateFile(result.runDir), "utf8").trim(), "backup");
});

test("keepalived's clock check passes only while chronyd vouches for an offset within the bound", async (t) => {
  if (!requireTool(t, "unshare")) return;
  const tracking = (offset: string, leap = "Normal") =>
    [
      "Reference ID    : C0A80001 (time.example)",
      `System time     : ${offset} seconds fast of NTP time`,
      `Leap status     : ${leap}`,
      "",
    ].join("\n");
  const check = async (text: string | undefined) => {
    const file = join(root, `tracking-${++counter}`);
    if (text !== undefined) writeFileSync(file, text);
    return (await runScript(site("vienna"), "vie-proxy-2", "clock", { env: text === undefined ? {} : { STUB_TRACKING: file } })).code;
  };
  assert.equal(await check(tracking("0.000123456")), 0);
  assert.equal(await check(tracking("0.499000000")), 0);
  assert.equal(await check(tracking("0.612345678")), 1, "off by more than 0.5 s");
  assert.equal(await check(tracking("0.000100000", "Not synchronised")), 1, "chronyd has no source");
  assert.equal(await check(undefined), 1, "chronyd does not answer");
});

test("the active member takes the address without fencing, and gives it up on backup", async (t) => {
  if (!requireTool(t, "jq")) return;
  const master = await runScript(site("helsinki"), "hel-proxy-1", "master");
  assert.equal(master.code, 0);
  assert.ok(!master.calls.some((c) => c.includes("poweroff") || c.startsWith("sleep")), master.calls.join("\n"));
  assert.ok(master.calls.includes(`curl POST ${API}/floating_ips/7/actions/assign {"server":101}`));
  const backup = await runScript(site("helsinki"), "hel-proxy-1", "backup", {
    before: (runDir) => writeFileSync(join(runDir, "failover-hel-proxy.address"), "198.19.251.10\n"),
  });
  assert.equal(backup.code, 0);
  assert.deepEqual(backup.calls, ["ip addr del 10.40.1.4/32 dev dmz", "ip addr del 198.19.251.10/32 dev eth0"]);
  assert.ok(!existsSync(join(backup.runDir, "failover-hel-proxy.address")));
});

const IONOS_ENV = { IONOS_DATACENTER_ID: "dc-fake", IONOS_LAN_ID: "2", IONOS_NIC_ID: "nic-fake" };
/** The proxy failover IP Karlsruhe's site file declares. */
const karlsruheProxyIp = (() => {
  const pub = site("karlsruhe").public;
  assert.ok(pub.mode === "provider-failover-ips" && pub.declared, "karlsruhe declares its failover IPs");
  return pub.declared.proxy;
})();

test("pre-provisioned: a peer that no fence reaches and that answers on no address counts as down, then the IONOS failover IP moves", async (t) => {
  if (!requireTool(t, "ssh", "ping", "unshare")) return;
  const { code, calls: all, logs, stdin } = await runScript(site("karlsruhe"), "fkb-proxy-2", "master", { providerEnv: IONOS_ENV });
  assert.equal(code, 0, logs.join("\n"));
  // The drain: no peer answers ARP on either link (the namespace has none), so nothing is passed back to it;
  // once the peer counts as down the drain stops for good.
  const nft = all.filter((c) => c.startsWith("nft "));
  const calls = all.filter((c) => !c.startsWith("nft "));
  assert.deepEqual(nft.filter((c) => c.startsWith("nft delete element")).sort(), [
    `nft delete element netdev standort_drain draining { 10.20.0.4 }`,
    `nft delete element netdev standort_drain draining { ${karlsruheProxyIp} }`,
  ]);
  assert.ok(nft.includes("nft -j list set netdev standort_drain mine"), "it forgets the connections that ended here");
  assert.equal(nft.at(-1), "nft flush set netdev standort_drain draining");
  assert.ok(all.indexOf(nft.at(-1)!) > all.indexOf("sleep 2"), "the drain stops after the grace wait, when the peer counts as down");
  assert.deepEqual(calls, [
    "sleep 2",
    `curl PATCH https://api.ionos.com/cloudapi/v6/datacenters/dc-fake/lans/2 {"ipFailover":[{"ip":"${karlsruheProxyIp}","nicUuid":"nic-fake"}]}`,
    `ip addr replace ${karlsruheProxyIp}/32 dev eth0`,
  ]);
  assert.ok(logs.includes("fkb-proxy: no fence took, but fkb-proxy-1 answers on none of its addresses: treating it as down"));
  assert.equal(stdin.trim(), 'stdin header = "Authorization: Bearer fake-token-for-tests"');
});

test("pre-provisioned: a peer that no fence reaches but that still answers stops the takeover", async (t) => {
  if (!requireTool(t, "ssh", "ping", "arping", "unshare")) return;
  const { code, calls, logs } = await runScript(site("karlsruhe"), "fkb-proxy-2", "master", { providerEnv: IONOS_ENV, peerAnswers: true });
  assert.equal(code, 1);
  assert.ok(!calls.some((c) => c.startsWith("curl") || c.startsWith("ip ")), calls.join("\n"));
  assert.equal(logs.at(-1), "fkb-proxy: could not fence fkb-proxy-1, which still answers: stepping back for 30s (split-brain risk)");
});

test("pre-provisioned: the site's fence command is the second method, with %h for the peer", async (t) => {
  if (!requireTool(t, "ssh", "ping", "arping", "unshare")) return;
  const karlsruhe = site("karlsruhe");
  const model = { ...karlsruhe, provider: { ...karlsruhe.provider, fenceCommand: 'echo "fence %h" >> "$CALLS"' } } as SiteModel;
  const { code, calls, logs } = await runScript(model, "fkb-proxy-2", "master", { providerEnv: IONOS_ENV, peerAnswers: true });
  assert.equal(code, 0, logs.join("\n"));
  const done = calls.filter((c) => !c.startsWith("nft "));
  assert.deepEqual(done.slice(0, 2), ["sleep 2", "fence fkb-proxy-1"]);
  assert.equal(calls.at(-3), "nft flush set netdev standort_drain draining", "a fenced peer gets nothing passed back");
  assert.ok(logs.includes("fkb-proxy: fenced fkb-proxy-1"));
});

test("pre-provisioned: a missing provider setting is named, and nothing moves", async () => {
  const { code, calls, logs } = await runScript(site("karlsruhe"), "fkb-proxy-2", "master", {
    providerEnv: { IONOS_LAN_ID: "2" },
  });
  assert.equal(code, 1);
  assert.ok(!calls.some((c) => c.startsWith("curl")), calls.join("\n"));
  assert.ok(
    logs.some((l) => l.endsWith("lacks IONOS_DATACENTER_ID: cannot move the failover address")),
    logs.join("\n"),
  );
});

test("BGP sites move nothing on takeover; a static next hop is moved by the provider command", async () => {
  const fra = await runScript(site("frankfurt"), "fra-fw-1", "master");
  assert.equal(fra.code, 0);
  assert.deepEqual(fra.calls, []);
  const vie = await runScript(site("vienna"), "vie-fw-1", "master", {
    providerEnv: { FAILOVER_MOVE_COMMAND: 'echo "move $FAILOVER_ADDRESS to $SELF" >> "$CALLS"' },
  });
  assert.equal(vie.code, 0, vie.logs.join("\n"));
  assert.deepEqual(vie.calls, ["move 198.19.40.10 to vie-fw-1", "ip addr replace 198.19.40.10/32 dev eth0"]);
});

test("the serving member carries the active flag; the firewall's tunnels follow it", async (t) => {
  if (!requireTool(t, "jq")) return;
  const vienna = site("vienna");
  const providerEnv = { FAILOVER_MOVE_COMMAND: "true" };
  const master = await runScript(vienna, "vie-fw-1", "master", { providerEnv });
  assert.equal(master.code, 0, master.logs.join("\n"));
  assert.ok(existsSync(join(master.runDir, "firewall-active")), "flag on the master");
  const backup = await runScript(vienna, "vie-fw-1", "backup", { before: (runDir) => writeFileSync(join(runDir, "firewall-active"), "") });
  assert.equal(backup.code, 0);
  assert.ok(!existsSync(join(backup.runDir, "firewall-active")), "flag removed on backup");
  // Storage: the replication and backup timers check exactly this flag (lib/footprint/jobs.ts).
  const storage = await runScript(vienna, "vie-stor-1", "master");
  assert.equal(storage.code, 0, storage.logs.join("\n"));
  assert.ok(existsSync(join(storage.runDir, STORAGE_ACTIVE_FLAG.replace("/run/standort/", ""))));
  // The flag only once the data volume is promoted, mounted and exported.
  assert.deepEqual(
    storage.calls.filter((c) => /^(drbdadm|mount|systemctl)/.test(c)),
    ["drbdadm primary standort-data", "mount /dev/drbd0 /srv", "systemctl restart nfs-ganesha"],
  );
  const refused = await runScript(vienna, "vie-stor-1", "master", { env: { STUB_DRBDADM_EXIT: "11" } });
  assert.equal(refused.code, 1);
  assert.ok(!existsSync(join(refused.runDir, "storage-active")), "no flag where promotion was refused");
  assert.ok(existsSync(join(refused.runDir, "storage-failed")), "the nfs_running check fails: the peer takes over");
  // Tunnels start on the new master and stop on the member that steps down; other pairs have none.
  const firewallScript = renderFailoverScript(vienna, "vie-fw-1", secrets(vienna));
  const hook = (verb: string) =>
    `for conf in /etc/wireguard/wg-*.conf; do [ -e "$conf" ] || continue; systemctl ${verb} "wg-quick@$(basename "$conf" .conf)" || log "${verb} of $(basename "$conf" .conf) failed"; done`;
  assert.ok(firewallScript.includes(`\t\t${hook("stop")}\n`));
  assert.ok(firewallScript.includes(`touch "$ACTIVE_FLAG"\n${hook("restart")}\n`));
  assert.ok(!renderFailoverScript(vienna, "vie-proxy-1", secrets(vienna)).includes("wg-quick"));
});

test("a takeover that is superseded while it waits does not fence: the newer takeover decides", async (t) => {
  if (!requireTool(t, "jq")) return;
  // Seen with the real keepalived in namespaces: the active member came back, took over and crashed again
  // within the grace period. The first takeover's script woke up, saw "master" and fenced a second time.
  const result = await runScript(site("helsinki"), "hel-proxy-2", "master", {
    env: (runDir) => ({ STUB_SLEEP_RERUN: join(runDir, "..", "failover.sh") }),
  });
  assert.equal(result.code, 0);
  // The newer takeover fences once and moves the address; the older one steps aside.
  assert.equal(result.calls.filter((c) => c.endsWith("/actions/poweroff")).length, 1, result.calls.join("\n"));
  assert.equal(result.calls.filter((c) => c.includes("/floating_ips/7/actions/assign")).length, 1);
  assert.equal(result.logs.at(-1), "hel-proxy: no longer master: hel-proxy-1 is back; not fencing");
});

test("a proxy member that stands by keeps its addresses on lo and is ready to pass connections back", async (t) => {
  if (!requireTool(t, "unshare")) return;
  const { code, calls } = await runScript(site("karlsruhe"), "fkb-proxy-1", "backup");
  assert.equal(code, 0);
  assert.deepEqual(calls, [
    "ip addr replace 10.20.0.4/32 dev lo",
    `ip addr replace ${karlsruheProxyIp}/32 dev lo`,
    "nft list table netdev standort_drain",
    `nft add element netdev standort_drain draining { 10.20.0.4, ${karlsruheProxyIp} }`,
  ]);
});

test("handover: only a master whose peer answers hands over; it waits for the peer, and the flag lowers its priority until cleared", async (t) => {
  if (!requireTool(t, "ping", "unshare")) return;
  const vienna = site("vienna");
  const stateOf = (runDir: string) => join(runDir, "failover-vie-proxy.state");
  const flag = (runDir: string) => join(runDir, "handover-vie-proxy");
  const notMaster = await runScript(vienna, "vie-proxy-1", "handover", { before: (d) => writeFileSync(stateOf(d), "backup\n") });
  assert.equal(notMaster.code, 1);
  assert.deepEqual(notMaster.logs, ["vie-proxy: handover: this member is not master"]);
  assert.ok(!existsSync(flag(notMaster.runDir)));
  const silent = await runScript(vienna, "vie-proxy-1", "handover", { before: (d) => writeFileSync(stateOf(d), "master 1\n") });
  assert.equal(silent.code, 1);
  assert.deepEqual(silent.logs, ["vie-proxy: handover: vie-proxy-2 does not answer, so it cannot take over"]);
  assert.ok(!existsSync(flag(silent.runDir)));
  // The peer answers and takes over while the command waits (the sleep stand-in plays keepalived's backup transition).
  const handed = await runScript(vienna, "vie-proxy-1", "handover", {
    peerAnswers: true,
    before: (d) => writeFileSync(stateOf(d), "master 1\n"),
    env: (d) => ({ STUB_SLEEP_FLIP: stateOf(d) }),
  });
  assert.equal(handed.code, 0, handed.logs.join("\n"));
  assert.deepEqual(handed.logs, [
    "vie-proxy: handing over to vie-proxy-2",
    "vie-proxy: handed over to vie-proxy-2; until handover-clear this member stands by",
  ]);
  assert.ok(existsSync(flag(handed.runDir)));
  // keepalived's not_handed_over check fails while the flag is there, and passes once it is cleared.
  const keep = { before: (d: string) => writeFileSync(flag(d), "") };
  assert.equal((await runScript(vienna, "vie-proxy-1", "handover-check", keep)).code, 1);
  const cleared = await runScript(vienna, "vie-proxy-1", "handover-clear", keep);
  assert.equal(cleared.code, 0);
  assert.ok(!existsSync(flag(cleared.runDir)));
  assert.equal((await runScript(vienna, "vie-proxy-1", "handover-check")).code, 0);
});
