// The delivery component under the Pulumi mock runtime: one remote command per
// file with stable names, triggers that change when and only when a file's
// content changes, secrets kept secret, files applied in order.
import test from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { HostConfig, deliverableFiles } from "../components/host-config";
import { APPLY_SCRIPT, APPLY_SCRIPT_PATH, contentHash } from "../lib/deliver";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import { RenderedFile, renderHostFiles } from "../lib/render";
import { MockRunResult, RecordedResource, runUnderMocks } from "../lib/preview/harness";
import { FAKE_KEY, fakeSecrets } from "./helpers/secrets";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const FAKE_PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake-private-key-for-tests\n-----END OPENSSH PRIVATE KEY-----\n";

async function deliver(files: ReadonlyArray<RenderedFile>, host = "vie-fw-1"): Promise<MockRunResult> {
  return runUnderMocks({
    stack: "vienna",
    program: () => {
      new HostConfig(`${host}-config`, { hostName: host, connection: { host: "198.19.40.11", privateKey: FAKE_PRIVATE_KEY }, files });
      return {};
    },
  });
}

const commands = (run: MockRunResult) => run.resources.filter((r) => r.type === "command:remote:Command");
const byName = (run: MockRunResult) => new Map(run.resources.map((r) => [r.name, r]));

test("one remote command per shipped file, named after the component and the file path, all children of the component", async () => {
  const files = renderHostFiles(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna")), { sites });
  const run = await deliver(files);
  const component = run.resources.filter((r) => r.type === "standort:hosts:HostConfig");
  assert.deepEqual(
    component.map((c) => c.name),
    ["vie-fw-1-config"],
  );
  assert.deepEqual(
    commands(run)
      .map((c) => c.name)
      .sort(),
    [
      "vie-fw-1-config-apply-script",
      "vie-fw-1-config-etc-chrony-chrony-conf",
      "vie-fw-1-config-etc-conntrackd-conntrackd-conf",
      "vie-fw-1-config-etc-keepalived-keepalived-conf",
      "vie-fw-1-config-etc-keepalived-standort-failover-sh",
      "vie-fw-1-config-etc-nftables-conf",
      "vie-fw-1-config-etc-nftables-conf-confirm",
      "vie-fw-1-config-etc-standort-fence-authorized-keys",
      "vie-fw-1-config-etc-standort-fence-id-ed25519",
      "vie-fw-1-config-etc-standort-fence-known-hosts",
      "vie-fw-1-config-etc-standort-fence-ssh-host-ed25519-key",
      "vie-fw-1-config-etc-standort-fence-sshd-config",
      "vie-fw-1-config-etc-standort-provider-env",
      "vie-fw-1-config-etc-sysctl-d-90-standort-conf",
      "vie-fw-1-config-etc-systemd-network-10-standort-internal-network",
      "vie-fw-1-config-etc-systemd-network-20-standort-app-netdev",
      "vie-fw-1-config-etc-systemd-network-20-standort-app-network",
      "vie-fw-1-config-etc-systemd-network-20-standort-data-netdev",
      "vie-fw-1-config-etc-systemd-network-20-standort-data-network",
      "vie-fw-1-config-etc-systemd-network-20-standort-dmz-netdev",
      "vie-fw-1-config-etc-systemd-network-20-standort-dmz-network",
      "vie-fw-1-config-etc-systemd-network-20-standort-hb-firewall-netdev",
      "vie-fw-1-config-etc-systemd-network-20-standort-hb-firewall-network",
      "vie-fw-1-config-etc-systemd-network-20-standort-mgmt-netdev",
      "vie-fw-1-config-etc-systemd-network-20-standort-mgmt-network",
      "vie-fw-1-config-etc-systemd-system-standort-fence-service",
      "vie-fw-1-config-usr-local-sbin-standort-fenced",
    ],
  );
  assert.ok(commands(run).every((c) => c.parent === component[0].urn));
});

test("content goes in on stdin; the command stages it and runs the apply script with the file's check, reload and health check", async () => {
  const files = renderHostFiles(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna")), { sites });
  const run = await deliver(files);
  const nft = byName(run).get("vie-fw-1-config-etc-nftables-conf")!;
  const content = files.find((f) => f.path === "/etc/nftables.conf")!.content;
  assert.equal(nft.inputs.stdin, content);
  assert.deepEqual(nft.inputs.triggers, [contentHash(content)]);
  const create = nft.inputs.create as string;
  assert.ok(create.includes("cat > /var/lib/standort/staging/etc-nftables-conf\n"), create);
  assert.ok(
    create.includes(
      `exec sh ${APPLY_SCRIPT_PATH} --staged /var/lib/standort/staging/etc-nftables-conf --target /etc/nftables.conf --mode 0644 --owner root:root --check 'nft -c -f /var/lib/standort/staging/etc-nftables-conf' --reload 'sh -c '"'"'nft -f /etc/nftables.conf && systemctl enable --quiet nftables'"'"'' --health 'nft list table inet standort' --confirm-within 120`,
    ),
    create,
  );
  assert.ok(!create.includes("policy drop"), "the content is not in the command line");
  // The private key makes the whole connection secret (host and user included).
  assert.equal(nft.inputs.connection, "[secret]");
  let connection: Promise<unknown> = Promise.resolve(undefined);
  await runUnderMocks({
    stack: "vienna",
    program: () => {
      const hc = new HostConfig("probe", {
        hostName: "vie-fw-1",
        connection: { host: "198.19.40.11", privateKey: FAKE_PRIVATE_KEY },
        files,
      });
      connection = new Promise((resolve) => hc.commands["/etc/nftables.conf"].connection.apply(resolve));
      return {};
    },
  });
  assert.deepEqual(await connection, { host: "198.19.40.11", port: 22, privateKey: FAKE_PRIVATE_KEY, user: "root" });
  const confirm = byName(run).get("vie-fw-1-config-etc-nftables-conf-confirm")!;
  assert.equal(confirm.inputs.create, `sh ${APPLY_SCRIPT_PATH} --confirm --target /etc/nftables.conf\n`);
  assert.deepEqual(confirm.dependsOn, ["vie-fw-1-config-etc-nftables-conf"]);
});

test("files carrying secrets are delivered as secrets, and no secret value appears anywhere", async () => {
  const files = renderHostFiles(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna")), { sites });
  const run = await deliver(files);
  for (const name of [
    "vie-fw-1-config-etc-standort-fence-id-ed25519",
    "vie-fw-1-config-etc-standort-fence-ssh-host-ed25519-key",
    "vie-fw-1-config-etc-standort-provider-env",
  ]) {
    const r = byName(run).get(name)!;
    assert.equal(r.inputs.stdin, "[secret]", name);
    assert.deepEqual(r.inputs.triggers, ["[secret]"], name);
  }
  const text = JSON.stringify(run);
  for (const secret of ["OPENSSH PRIVATE KEY", "fake-token-for-tests", "fake-private-key-for-tests"])
    assert.ok(!text.includes(secret), `${secret} leaked`);
});

test("a content change changes only that file's command triggers", async () => {
  const before = await deliver(renderHostFiles(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna")), { sites }));
  const changed = structuredClone(site("vienna")) as any;
  changed.time.servers = ["ptbtime1.ptb.de", "ptbtime2.ptb.de"];
  const afterRun = await deliver(renderHostFiles(changed, "vie-fw-1", fakeSecrets(changed), { sites }));
  const triggers = (run: MockRunResult) => new Map(commands(run).map((c) => [c.name, JSON.stringify(c.inputs.triggers)]));
  const a = triggers(before);
  const b = triggers(afterRun);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), "the same resources");
  assert.deepEqual(
    [...a.keys()].filter((k) => a.get(k) !== b.get(k)),
    ["vie-fw-1-config-etc-chrony-chrony-conf"],
  );
  const unchanged = (run: MockRunResult) =>
    commands(run)
      .filter((c) => c.name !== "vie-fw-1-config-etc-chrony-chrony-conf")
      .map((c) => JSON.stringify(c.inputs));
  assert.deepEqual(unchanged(before), unchanged(afterRun), "nothing else about the other commands changes");
});

test("files are applied in order: each command waits for the one before", async () => {
  const files = renderHostFiles(site("vienna"), "vie-proxy-1", fakeSecrets(site("vienna")), { sites });
  const run = await deliver(files, "vie-proxy-1");
  const resources = byName(run);
  const order = ["etc-haproxy-haproxy-cfg", "etc-standort-fence-ssh-host-ed25519-key", "etc-standort-fence-id-ed25519"].map(
    (s) => `vie-proxy-1-config-${s}`,
  );
  for (let i = 1; i < order.length; i++) assert.deepEqual(resources.get(order[i])!.dependsOn, [order[i - 1]]);
  assert.deepEqual(resources.get("vie-proxy-1-config-etc-chrony-chrony-conf")!.dependsOn, ["vie-proxy-1-config-etc-nftables-conf-confirm"]);
  // The first file waits for the apply script, which is installed once per host.
  assert.deepEqual(resources.get("vie-proxy-1-config-etc-sysctl-d-90-standort-conf")!.dependsOn, ["vie-proxy-1-config-apply-script"]);
  const install = resources.get("vie-proxy-1-config-apply-script")!;
  assert.deepEqual(install.dependsOn, []);
  assert.deepEqual(install.inputs.triggers, [contentHash(APPLY_SCRIPT)]);
  assert.ok(String(install.inputs.create).includes(`mv -f ${APPLY_SCRIPT_PATH}.new.$$ ${APPLY_SCRIPT_PATH}`));
  // A file's own command carries no copy of the script.
  assert.ok(!String(resources.get("vie-proxy-1-config-etc-haproxy-haproxy-cfg")!.inputs.create).includes("STANDORT_APPLY_SH_END"));
});

test("cloud-init user-data is for provisioning, never shipped over SSH", async () => {
  const model = site("helsinki");
  const files = renderHostFiles(model, "hel-virt-1", fakeSecrets(model), { sites, sshAuthorizedKeys: [FAKE_KEY] });
  assert.ok(files.some((f) => f.delivery === "provision"));
  const run = await deliver(files, "hel-virt-1");
  assert.ok(!commands(run).some((c: RecordedResource) => c.name.includes("cloud-init")));
  assert.equal(commands(run).length, files.length - 1 + 1 + 1, "every other file, the packet filter's confirmation and the apply script");
});

test("deliverableFiles: secrets still unresolved stay secret; other files are known at preview", async () => {
  const model = site("vienna");
  const run = await runUnderMocks({
    stack: "vienna",
    program: () => {
      const files = deliverableFiles(model, "vie-stor-1", pulumi.secret(fakeSecrets(model)), { sites });
      new HostConfig("vie-stor-1-config", {
        hostName: "vie-stor-1",
        connection: { host: "198.19.40.31", privateKey: pulumi.secret(FAKE_PRIVATE_KEY) },
        files,
      });
      return {};
    },
  });
  const resources = byName(run);
  assert.equal(resources.get("vie-stor-1-config-etc-standort-fence-id-ed25519")!.inputs.stdin, "[secret]");
  const chrony = resources.get("vie-stor-1-config-etc-chrony-chrony-conf")!;
  assert.ok(String(chrony.inputs.stdin).includes("server ptbtime1.ptb.de iburst"));
  // keepalived.conf carries no secret (VRRPv3 has none): it is known at preview.
  assert.ok(String(resources.get("vie-stor-1-config-etc-keepalived-keepalived-conf")!.inputs.stdin).includes("vrrp_version 3"));
  assert.ok(!JSON.stringify(run).includes("OPENSSH PRIVATE KEY"));
});
