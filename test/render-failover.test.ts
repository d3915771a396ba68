// The rendered failover script, run for real with stub commands (curl, ip,
// ping, ssh, sleep, logger) that record their calls: the passive member fences
// before it moves the failover address, never moves it when fencing fails,
// and the active member never fences.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import { RenderSecrets, renderFailoverScript, renderProviderEnv } from "../lib/render";
import { requireTool, run } from "./helpers/tools";
import { STORAGE_ACTIVE_FLAG } from "../lib/footprint/jobs";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const secrets = (model: SiteModel): RenderSecrets => ({
  vrrp: Object.fromEntries(model.pairs.map((p) => [p.name, "fake-vr"])),
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
for (const name of ["ip", "ping", "ssh", "logger", "systemctl"]) {
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
    "    -H | --max-time) shift 2 ;;",
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
  } = {},
): Promise<{ code: number; calls: string[]; logs: string[]; runDir: string }> {
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
  const result = await run(["env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), "sh", script, state]);
  const recorded = readFileSync(calls, "utf8").split("\n").filter(Boolean);
  return {
    code: result.code,
    calls: recorded.filter((c) => !c.startsWith("logger ")),
    logs: recorded.filter((c) => c.startsWith("logger ")).map((c) => c.replace(/^logger -t standort-failover -p daemon.notice -- /, "")),
    runDir,
  };
}

const API = "https://api.hetzner.cloud/v1";

test("Hetzner Cloud: the passive member waits, powers the peer off, then takes the floating IP", async (t) => {
  if (!requireTool(t, "jq")) return;
  const { code, calls, logs } = await runScript(site("helsinki"), "hel-proxy-2", "master");
  assert.equal(code, 0, logs.join("\n"));
  assert.deepEqual(calls, [
    "sleep 10",
    `curl GET ${API}/servers?name=hel-proxy-1`,
    `curl POST ${API}/servers/101/actions/poweroff`,
    // The proxy VIP moves as an alias IP: off the fenced peer first, then onto this server.
    `curl GET ${API}/networks?name=helsinki-net`,
    `curl GET ${API}/servers?name=hel-proxy-1`,
    `curl POST ${API}/servers/101/actions/change_alias_ips {"network":55,"alias_ips":["10.40.3.10","10.40.0.17"]}`,
    `curl GET ${API}/servers?name=hel-proxy-2`,
    `curl POST ${API}/servers/102/actions/change_alias_ips {"network":55,"alias_ips":["10.40.3.11","10.40.0.18","10.40.1.4"]}`,
    `curl GET ${API}/floating_ips?name=helsinki-proxy`,
    `curl GET ${API}/servers?name=hel-proxy-2`,
    `curl POST ${API}/floating_ips/7/actions/assign {"server":102}`,
    "ip addr replace 198.19.251.10/32 dev eth0",
  ]);
  assert.deepEqual(logs.slice(-2), ["hel-proxy: fenced hel-proxy-1", "hel-proxy: hel-proxy-2 is master"]);
});

test("Hetzner Cloud: when the power-off fails three times, the floating IP stays where it is", async (t) => {
  if (!requireTool(t, "jq")) return;
  const { code, calls, logs } = await runScript(site("helsinki"), "hel-proxy-2", "master", { env: { STUB_POWEROFF_EXIT: "22" } });
  assert.equal(code, 1);
  assert.equal(calls.filter((c) => c.endsWith("/actions/poweroff")).length, 3);
  assert.ok(!calls.some((c) => c.includes("floating_ips") || c.startsWith("ip ")), calls.join("\n"));
  assert.equal(logs.at(-1), "hel-proxy: fencing hel-proxy-1 failed 3 times: not taking the failover address (split-brain risk)");
});

test("the passive member does not fence a peer that came back during the grace period", async (t) => {
  if (!requireTool(t, "jq")) return;
  const stateFile = (runDir: string) => join(runDir, "failover-hel-proxy.state");
  const result = await runScript(site("helsinki"), "hel-proxy-2", "master", { env: (runDir) => ({ STUB_SLEEP_FLIP: stateFile(runDir) }) });
  assert.equal(result.code, 0);
  assert.deepEqual(result.calls, ["sleep 10"]);
  assert.equal(result.logs.at(-1), "hel-proxy: no longer master: hel-proxy-1 is back; not fencing");
  assert.equal(readFileSync(stateFile(result.runDir), "utf8").trim(), "backup");
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
  assert.deepEqual(backup.calls, ["ip addr del 198.19.251.10/32 dev eth0"]);
  assert.ok(!existsSync(join(backup.runDir, "failover-hel-proxy.address")));
});

const IONOS_ENV = { IONOS_DATACENTER_ID: "dc-fake", IONOS_LAN_ID: "2", IONOS_NIC_ID: "nic-fake" };
/** The proxy failover IP Karlsruhe's site file declares. */
const karlsruheProxyIp = (() => {
  const pub = site("karlsruhe").public;
  assert.ok(pub.mode === "provider-failover-ips" && pub.declared, "karlsruhe declares its failover IPs");
  return pub.declared.proxy;
})();

test("pre-provisioned: a fence command that fails against an unreachable peer counts, then the IONOS failover IP moves", async () => {
  const { code, calls, logs } = await runScript(site("karlsruhe"), "fkb-proxy-2", "master", {
    env: { STUB_SSH_EXIT: "255", STUB_PING_EXIT: "1" },
    providerEnv: IONOS_ENV,
  });
  assert.equal(code, 0, logs.join("\n"));
  assert.equal(calls.filter((c) => c === "ssh -o ConnectTimeout=5 root@fkb-proxy-1 systemctl poweroff --force --force").length, 3);
  assert.deepEqual(calls.slice(-2), [
    `curl PATCH https://api.ionos.com/cloudapi/v6/datacenters/dc-fake/lans/2 {"ipFailover":[{"ip":"${karlsruheProxyIp}","nicUuid":"nic-fake"}]}`,
    `ip addr replace ${karlsruheProxyIp}/32 dev eth0`,
  ]);
  assert.ok(logs.includes("fkb-proxy: fence command failed but fkb-proxy-1 answers on neither address: treating it as down"));
});

test("pre-provisioned: a fence command that fails against a peer that still answers stops the takeover", async () => {
  const { code, calls, logs } = await runScript(site("karlsruhe"), "fkb-proxy-2", "master", {
    env: { STUB_SSH_EXIT: "255", STUB_PING_EXIT: "0" },
    providerEnv: IONOS_ENV,
  });
  assert.equal(code, 1);
  assert.ok(!calls.some((c) => c.startsWith("curl") || c.startsWith("ip ")), calls.join("\n"));
  assert.equal(logs.at(-1), "fkb-proxy: fencing fkb-proxy-1 failed 3 times: not taking the failover address (split-brain risk)");
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
