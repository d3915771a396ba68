// The delivery component under the Pulumi mock runtime: one transaction per
// host (its whole bundle on stdin) and a confirmation where the packet filter
// is in it, stable names, a file listing in the triggers that changes with a
// file's content (the plan's diff names the file), secrets kept secret.
import test from "node:test";
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { HostConfig, deliverableFiles } from "../components/host-config";
import { APPLY_SCRIPT_PATH, bundleText, contentHash } from "../lib/deliver";
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

test("one transaction per host and its confirmation, children of the component; the bundle holds every shipped file in order", async () => {
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
    ["vie-fw-1-config-confirm", "vie-fw-1-config-tx"],
  );
  assert.ok(commands(run).every((c) => c.parent === component[0].urn));
  const tx = byName(run).get("vie-fw-1-config-tx")!;
  // The listing names every shipped file in reload order.
  const listing = (tx.inputs.triggers as Array<Record<string, string>>)[1];
  assert.deepEqual(
    Object.keys(listing).sort(),
    files
      .filter((f) => f.delivery === "ssh")
      .map((f) => f.path)
      .sort(),
  );
  const confirm = byName(run).get("vie-fw-1-config-confirm")!;
  assert.equal(confirm.inputs.create, `sh ${APPLY_SCRIPT_PATH} --confirm\n`);
  assert.deepEqual(confirm.dependsOn, ["vie-fw-1-config-tx"]);
});

test("the bundle goes in on stdin; the command installs apply.sh and runs it; no content in the command line", async () => {
  const model = site("vienna");
  // A host without secret files: the bundle is known at preview.
  const files = renderHostFiles(model, "vie-fw-1", fakeSecrets(model), { sites }).filter((f) => !f.secret);
  const run = await deliver(files);
  const tx = byName(run).get("vie-fw-1-config-tx")!;
  assert.equal(tx.inputs.stdin, bundleText(files));
  assert.equal((tx.inputs.triggers as unknown[])[0], contentHash(bundleText(files)));
  const create = tx.inputs.create as string;
  assert.ok(create.includes(`mv -f ${APPLY_SCRIPT_PATH}.new.$$ ${APPLY_SCRIPT_PATH}`), create);
  assert.ok(create.endsWith(`exec sh ${APPLY_SCRIPT_PATH}\n`), create);
  assert.ok(!create.includes("policy drop"), "the content is not in the command line");
  assert.equal(tx.inputs.delete, undefined, "a replaced transaction has nothing to undo");
  // The private key makes the whole connection secret (host and user included).
  assert.equal(tx.inputs.connection, "[secret]");
  let connection: Promise<unknown> = Promise.resolve(undefined);
  await runUnderMocks({
    stack: "vienna",
    program: () => {
      const hc = new HostConfig("probe", {
        hostName: "vie-fw-1",
        connection: { host: "198.19.40.11", privateKey: FAKE_PRIVATE_KEY },
        files,
      });
      connection = new Promise((resolve) => hc.transaction.connection.apply(resolve));
      return {};
    },
  });
  assert.deepEqual(await connection, { host: "198.19.40.11", port: 22, privateKey: FAKE_PRIVATE_KEY, user: "root" });
});

test("a bundle with a secret file is secret as a whole; the listing shows secret files only by a secret hash; no secret value appears anywhere", async () => {
  const files = renderHostFiles(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna")), { sites });
  const run = await deliver(files);
  const tx = byName(run).get("vie-fw-1-config-tx")!;
  assert.equal(tx.inputs.stdin, "[secret]");
  const [hash, listing] = tx.inputs.triggers as [string, Record<string, string>];
  assert.equal(hash, "[secret]");
  for (const file of files.filter((f) => f.delivery === "ssh")) {
    assert.equal(listing[file.path], file.secret ? "[secret]" : file.content, file.path);
  }
  const text = JSON.stringify(run);
  for (const secret of ["OPENSSH PRIVATE KEY", "fake-token-for-tests", "fake-private-key-for-tests"])
    assert.ok(!text.includes(secret), `${secret} leaked`);
});

test("a content change changes the bundle and that file's listing entry only", async () => {
  const before = await deliver(renderHostFiles(site("vienna"), "vie-fw-1", fakeSecrets(site("vienna")), { sites }));
  const changed = structuredClone(site("vienna")) as any;
  changed.time.servers = ["ptbtime1.ptb.de", "ptbtime2.ptb.de"];
  const afterRun = await deliver(renderHostFiles(changed, "vie-fw-1", fakeSecrets(changed), { sites }));
  const entries = (run: MockRunResult) => (byName(run).get("vie-fw-1-config-tx")!.inputs.triggers as Array<Record<string, string>>)[1];
  const a = entries(before);
  const b = entries(afterRun);
  assert.deepEqual(
    Object.keys(a).filter((path) => a[path] !== b[path]),
    ["/etc/chrony/chrony.conf"],
  );
  assert.notEqual(
    JSON.stringify(byName(before).get("vie-fw-1-config-tx")!.secretDigests),
    JSON.stringify(byName(afterRun).get("vie-fw-1-config-tx")!.secretDigests),
    "the bundle changed",
  );
});

test("a host whose bundle needs no confirmation has only its transaction; `after` orders a pair's members", async () => {
  const files: RenderedFile[] = [{ path: "/etc/x.conf", content: "x\n", mode: "0644", secret: false, delivery: "ssh" }];
  const run = await runUnderMocks({
    stack: "vienna",
    program: () => {
      const passive = new HostConfig("b", { hostName: "b", connection: { host: "192.0.2.2", privateKey: FAKE_PRIVATE_KEY }, files });
      new HostConfig("a", { hostName: "a", connection: { host: "192.0.2.1", privateKey: FAKE_PRIVATE_KEY }, files, after: [passive.done] });
      return {};
    },
  });
  assert.deepEqual(
    commands(run)
      .map((c) => c.name)
      .sort(),
    ["a-tx", "b-tx"],
  );
  assert.deepEqual(byName(run).get("a-tx")!.dependsOn, ["b-tx"]);
  assert.deepEqual(byName(run).get("b-tx")!.dependsOn, []);
});

test("cloud-init user-data is for provisioning, never shipped over SSH", async () => {
  const model = site("helsinki");
  const files = renderHostFiles(model, "hel-virt-1", fakeSecrets(model), { sites, sshAuthorizedKeys: [FAKE_KEY] });
  assert.ok(files.some((f) => f.delivery === "provision"));
  const run = await deliver(files, "hel-virt-1");
  const listing = Object.keys((byName(run).get("hel-virt-1-config-tx")!.inputs.triggers as Array<Record<string, string>>)[1]);
  assert.ok(!listing.some((path) => path.includes("cloud")));
  assert.equal(listing.length, files.length - 1);
  assert.ok(!commands(run).some((c: RecordedResource) => c.name.includes("cloud-init")));
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
  const listing = new Map(Object.entries((byName(run).get("vie-stor-1-config-tx")!.inputs.triggers as Array<Record<string, string>>)[1]));
  assert.equal(listing.get("/etc/standort/fence/id_ed25519"), "[secret]");
  assert.ok(String(listing.get("/etc/chrony/chrony.conf")).includes("server ptbtime1.ptb.de iburst"));
  // keepalived.conf carries no secret (VRRPv3 has none): it is known at preview.
  assert.ok(String(listing.get("/etc/keepalived/keepalived.conf")).includes("vrrp_version 3"));
  assert.ok(!JSON.stringify(run).includes("OPENSSH PRIVATE KEY"));
});
