// The storage pair's one consistent copy, file by file: every site's DRBD resource passes `drbdadm dump` and a
// broken one does not; every site's ganesha.conf passes the checker (ganesha itself, in throwaway namespaces)
// and a broken one does not; the exports admit the app segment only (nfs-ls against ganesha in namespaces);
// the split-brain and first-boot programs run against stand-ins of drbdadm, blkid and mkfs that record calls.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { siteExportTrees } from "../lib/footprint/nfs-exports";
import { siteJobs } from "../lib/footprint/jobs";
import { planHostFiles } from "../lib/preview/files";
import { FILE_PLACEHOLDER, RenderedFile, packagesFor, zonePolicy } from "../lib/render";
import { GANESHA_CONF, exportId } from "../lib/render/ganesha";
import { renderFailoverScript } from "../lib/render/keepalived";
import { DRBD_PORT, NFS_PORT } from "../lib/render/policy";
import {
  DATA_VOLUME_SCRIPT,
  DRBD_DEVICE,
  DRBD_RESOURCE,
  DRBD_RESOURCE_FILE,
  SPLIT_BRAIN_SCRIPT,
  renderDataVolumeScript,
  renderSplitBrainScript,
} from "../lib/render/storage";
import { fakeSecrets } from "./helpers/secrets";
import { adapterOf } from "../lib/providers/registry";
import { HCLOUD_VOLUME_LINK } from "../lib/providers/hcloud";
import { PREPROVISIONED_DATA_DISK } from "../lib/providers/handed-over";
import { requireNetns, requireTool, run } from "./helpers/tools";

const { footprint, sites } = loadFootprint();
const scratch = mkdtempSync(join(tmpdir(), "standort-storage-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Every storage host of every site with its rendered files (as the plan renders them). */
const stores = sites.flatMap((model) => {
  const byHost = new Map(planHostFiles(model, sites, footprint).map((h) => [h.host, h.files]));
  return model.hosts.filter((h) => h.role === "storage").map((h) => ({ model, host: h.name, files: byHost.get(h.name)! }));
});
const fileOf = (files: ReadonlyArray<RenderedFile>, path: string) => {
  const f = files.find((x) => x.path === path);
  assert.ok(f, `${path} is rendered`);
  return f;
};

/** Writes `content` and runs a file's check command on it. */
async function check(file: RenderedFile, content: string, name: string) {
  const path = join(scratch, name);
  writeFileSync(path, content);
  assert.ok(file.check, `${file.path} has a check`);
  return run(
    file.check.command.map((a) => (a === FILE_PLACEHOLDER ? path : a)),
    { timeoutMs: 30_000 },
  );
}

test("every storage host's DRBD resource passes drbdadm dump; one without a device or with an unknown keyword is rejected", async (t) => {
  if (!requireTool(t, "drbdadm")) return;
  assert.ok(stores.length >= 2 * sites.length);
  for (const { model, host, files } of stores) {
    const file = fileOf(files, DRBD_RESOURCE_FILE);
    assert.deepEqual(file.check?.command.slice(0, 3), ["drbdadm", "-c", FILE_PLACEHOLDER]);
    const pair = model.pairs.find((p) => p.role === "storage")!;
    const text = file.content;
    assert.match(text, new RegExp(`^resource ${DRBD_RESOURCE} \\{$`, "m"));
    assert.match(text, /^\t\tprotocol C;$/m);
    assert.match(text, /^\t\tfencing resource-and-stonith;$/m);
    assert.match(text, /^\t\tauto-promote no;$/m);
    assert.match(text, /^\t\tafter-sb-0pri discard-zero-changes;\n\t\tafter-sb-1pri discard-secondary;\n\t\tafter-sb-2pri disconnect;$/m);
    assert.match(text, /fence-peer "\/bin\/sh \/etc\/keepalived\/standort-failover\.sh drbd-fence-peer";/);
    const disk = adapterOf(model).segments.kind === "routed" ? HCLOUD_VOLUME_LINK : (model.storage.dataDisk ?? PREPROVISIONED_DATA_DISK);
    for (const member of pair.members) {
      assert.ok(
        text.includes(
          `\ton ${member} {\n\t\tnode-id ${pair.members.indexOf(member)};\n\t\tdevice ${DRBD_DEVICE};\n\t\tdisk ${disk};\n\t\tmeta-disk internal;\n\t\taddress ${pair.heartbeat[member]}:${DRBD_PORT};\n\t}`,
        ),
        `${host}: ${member}'s block`,
      );
    }
    const good = await check(file, text, `${host}.res`);
    assert.equal(good.code, 0, `${host}: ${good.stderr}`);
    assert.match(good.stdout, new RegExp(`address +ipv4 ${pair.heartbeat[pair.members[1]].replace(/\./g, "\\.")}:${DRBD_PORT};`));
  }
  const { host, files } = stores[0];
  const file = fileOf(files, DRBD_RESOURCE_FILE);
  const noDevice = await check(file, file.content.replace(/^\t\tdevice .*\n/gm, ""), `${host}-nodevice.res`);
  assert.equal(noDevice.code, 10);
  assert.match(noDevice.stderr, /'device' keyword missing/);
  const unknown = await check(
    file,
    file.content.replace("auto-promote no;", "auto-promote no;\n\t\tpromote-everything yes;"),
    `${host}-unknown.res`,
  );
  assert.equal(unknown.code, 10);
  assert.match(unknown.stderr, /Parse error: [\s\S]*but got 'promote-everything'/);
});

test("every storage host's ganesha.conf passes the checker and exports exactly the site's trees to the app segment only", async (t) => {
  if (!requireTool(t, "ganesha.nfsd", "unshare")) return;
  for (const { model, host, files } of stores) {
    const file = fileOf(files, GANESHA_CONF);
    const app = model.segments.find((s) => s.name === "app")!.cidr;
    const trees = siteExportTrees(model, siteJobs(footprint, sites, model.name));
    const exports = [...file.content.matchAll(/\nEXPORT \{\n([\s\S]*?)\n\}/g)].map((m) => m[1]);
    assert.equal(exports.length, trees.length, `${host}: one export per tree`);
    // A site that hosts no service of the footprint (falkenstein) exports nothing; every other holds trees.
    assert.ok(trees.length > 0 || siteJobs(footprint, sites, model.name).length === 0, `${model.name} holds trees`);
    exports.forEach((body, i) => {
      const path = trees[i].path;
      assert.match(
        body,
        new RegExp(`\\tExport_Id = ${exportId(path)};\\n\\tPath = "${path}";\\n\\tPseudo = "${path}";\\n\\tAccess_Type = None;`),
      );
      // The one client block: the app segment's prefix, read-write; nobody else.
      assert.deepEqual(
        [...body.matchAll(/Clients = ([^;]+);/g)].map((m) => m[1]),
        [app],
      );
      assert.match(body, /\tCLIENT \{\n\t\tClients = [^;]+;\n\t\tAccess_Type = RW;\n\t\}/);
      assert.match(body, /\tFSAL \{\n\t\tName = VFS;\n\t\}/);
    });
    assert.match(file.content, new RegExp(`\\tProtocols = 4;\\n\\tNFS_Port = ${NFS_PORT};`));
    const result = await check(file, file.content, `${host}-ganesha.conf`);
    assert.equal(result.code, 0, `${host}: ${result.stderr}`);
  }
  // Broken copies of the first store's file that exports anything.
  const { host, files } = stores.find((s) => fileOf(s.files, GANESHA_CONF).content.includes("\nEXPORT {"))!;
  const file = fileOf(files, GANESHA_CONF);
  const broken: Array<[string, string, RegExp]> = [
    [
      "unknown parameter",
      file.content.replace("Squash = No_Root_Squash;", "Squash = No_Root_Squash;\n\tShare_Everything = true;"),
      /Unknown parameter \(Share_Everything\)/,
    ],
    ["syntax error", file.content.replace("Access_Type = RW;", "Access_Type = RW"), /syntax error/i],
    ["an export without Path", file.content.replace(/^\tPath = .*\n/m, ""), /did not start|validation errors|Errors processing/],
    ["a bad value", file.content.replace("Name = VFS;", "Name = NOSUCHFSAL;"), /config_errs_to_log|Config File|did not start/],
  ];
  for (const [what, content, message] of broken) {
    const result = await check(file, content, `${host}-broken.conf`);
    assert.equal(result.code, 1, `${what}: accepted`);
    assert.match(result.stderr, message, what);
  }
});

test("the exports answer a client in the app segment and refuse one outside it (ganesha and nfs-ls in namespaces)", async (t) => {
  if (!requireNetns(t) || !requireTool(t, "ganesha.nfsd", "nfs-ls", "unshare")) return;
  const { model, files } = stores.find((s) => s.model.name === "vienna")!;
  const conf = join(scratch, "vienna-ganesha.conf");
  writeFileSync(conf, fileOf(files, GANESHA_CONF).content);
  const tree = [...readFileSync(conf, "utf8").matchAll(/Path = "([^"]+)";/g)].map((m) => m[1])[0];
  const app = model.segments.find((s) => s.name === "app")!;
  const mgmt = model.segments.find((s) => s.name === "mgmt")!;
  const vip = model.pairs.find((p) => p.role === "storage")!.vips.find((v) => v.segment === "data")!.address;
  const inside = app.cidr.replace(/\d+\/\d+$/, "40");
  const outside = mgmt.cidr.replace(/\d+\/\d+$/, "40");
  const ns = { server: `stg-srv-${process.pid}`, in: `stg-in-${process.pid}`, out: `stg-out-${process.pid}` };
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  const running: { server?: ChildProcess } = {};
  const teardown = () => {
    running.server?.kill("SIGKILL");
    for (const n of Object.values(ns)) {
      try {
        ip("netns", "del", n);
      } catch {
        // gone
      }
    }
  };
  t.after(teardown);
  for (const n of Object.values(ns)) ip("netns", "add", n);
  // Two links from the storage VIP's namespace: one to an app address, one to a mgmt address.
  for (const [side, address, link] of [
    [ns.in, inside, "sin"],
    [ns.out, outside, "sout"],
  ] as const) {
    ip("link", "add", `${link}${process.pid % 1000}`, "netns", ns.server, "type", "veth", "peer", "name", "c", "netns", side);
    ip("-n", ns.server, "link", "set", `${link}${process.pid % 1000}`, "up");
    ip("-n", ns.server, "route", "add", `${address}/32`, "dev", `${link}${process.pid % 1000}`);
    ip("-n", side, "addr", "add", `${address}/32`, "dev", "c");
    ip("-n", side, "link", "set", "c", "up");
    ip("-n", side, "route", "add", `${vip}/32`, "dev", "c");
  }
  ip("-n", ns.server, "addr", "add", `${vip}/32`, "dev", "lo");
  ip("-n", ns.server, "link", "set", "lo", "up");
  const log = join(scratch, "ganesha.log");
  const trees = [...readFileSync(conf, "utf8").matchAll(/Path = "([^"]+)";/g)].map((m) => m[1]);
  // The data root as an empty tmpfs with the trees in it, in a mount namespace of its own: nothing of this machine's.
  running.server = spawn(
    "ip",
    [
      "netns",
      "exec",
      ns.server,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      `mount -t tmpfs t /srv && mkdir -p ${trees.join(" ")} && exec ganesha.nfsd -F -f ${conf} -L ${log} -p ${join(scratch, "g.pid")} -N NIV_EVENT`,
    ],
    { stdio: "ignore" },
  );
  const started = Date.now();
  while (Date.now() - started < 10_000 && !(existsSync(log) && readFileSync(log, "utf8").includes("NFS SERVER INITIALIZED")))
    await new Promise((r) => setTimeout(r, 100));
  assert.ok(readFileSync(log, "utf8").includes("NFS SERVER INITIALIZED"), "ganesha started within 10 s");
  const url = `nfs://${vip}${tree}?version=4`;
  const fromInside = await run(["ip", "netns", "exec", ns.in, "nfs-ls", url], { timeoutMs: 15_000 });
  assert.equal(fromInside.code, 0, `from ${inside}: ${fromInside.stderr}`);
  const fromOutside = await run(["ip", "netns", "exec", ns.out, "nfs-ls", url], { timeoutMs: 15_000 });
  assert.notEqual(fromOutside.code, 0, `from ${outside}: listed ${fromOutside.stdout}`);
  assert.match(fromOutside.stderr + fromOutside.stdout, /NFS4ERR_NOENT|NFS4ERR_ACCESS|NFS4ERR_PERM|failed/);
  t.diagnostic(`${url}: ${inside} lists it, ${outside} is refused (${(fromOutside.stderr || fromOutside.stdout).trim()})`);
});

/** A folder of stand-ins on PATH that record each call (name and arguments) in `calls`, answering from the environment. */
function standins(dir: string, programs: Record<string, string>): { path: string; calls: () => string[] } {
  const bin = join(scratch, dir);
  execFileSync("mkdir", ["-p", bin]);
  const calls = join(bin, "calls.log");
  writeFileSync(calls, "");
  for (const [name, body] of Object.entries(programs)) {
    writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${calls}\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return { path: `${bin}:${process.env.PATH ?? "/usr/bin:/bin"}`, calls: () => readFileSync(calls, "utf8").split("\n").filter(Boolean) };
}

test("standort-split-brain refuses without a survivor, an unknown one, or a victim that serves; repairs in DRBD's order", async (t) => {
  if (!requireTool(t, "sh", "logger")) return;
  const vienna = sites.find((s) => s.name === "vienna")!;
  const pair = vienna.pairs.find((p) => p.role === "storage")!;
  const [a, b] = pair.members;
  const script = join(scratch, "split-brain");
  const runDir = mkdtempSync(join(scratch, "run-"));
  const stand = standins("sb-bin", {
    drbdadm:
      'case "$1" in role) echo "${ROLE:-Secondary}" ;; cstate) echo StandAlone ;; dstate) echo UpToDate/DUnknown ;; get-gi) echo 6F2A:0:0:0:1:1:0:0 ;; esac; exit 0',
    drbdsetup: 'echo "standort-data role:Secondary"; echo "  vie-stor-2 connection:StandAlone out-of-sync:${OOS:-0}"',
    ssh: 'printf "host %s\\nrole %s\\nout-of-sync-kib %s\\n" peer "${PEER_ROLE:-Secondary}" "${PEER_OOS:-0}"',
  });
  const sb = (host: string, args: string[], env: Record<string, string> = {}) => {
    writeFileSync(script, renderSplitBrainScript(vienna, host));
    return run([
      "env",
      `PATH=${stand.path}`,
      `STANDORT_RUN_DIR=${runDir}`,
      ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
      "sh",
      script,
      ...args,
    ]);
  };
  const drbdCalls = () => stand.calls().filter((c) => c.startsWith("drbdadm ") && !/^drbdadm (role|cstate|dstate|get-gi)/.test(c));

  const none = await sb(a, ["repair"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /repair needs --survivor <host>/);
  const empty = await sb(a, ["repair", "--survivor"]);
  assert.equal(empty.code, 2);
  const unknown = await sb(a, ["repair", "--survivor", "vie-stor-9"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, new RegExp(`vie-stor-9 is not a member of the storage pair \\(${a} ${b}\\)`));
  assert.deepEqual(drbdCalls(), [], "nothing was changed by a refused repair");

  // The victim serves (the failover script's flag): it must hand over first.
  writeFileSync(join(runDir, "storage-active"), "");
  const serving = await sb(b, ["repair", "--survivor", a]);
  assert.equal(serving.code, 1);
  assert.match(serving.stderr, /serves .*hand over first/);
  assert.deepEqual(drbdCalls(), []);
  rmSync(join(runDir, "storage-active"));

  const victim = await sb(b, ["repair", "--survivor", a]);
  assert.equal(victim.code, 0, victim.stderr);
  assert.deepEqual(drbdCalls(), [
    `drbdadm disconnect ${DRBD_RESOURCE}`,
    `drbdadm secondary ${DRBD_RESOURCE}`,
    `drbdadm connect --discard-my-data ${DRBD_RESOURCE}`,
  ]);
  const survivor = await sb(a, ["repair", "--survivor", a]);
  assert.equal(survivor.code, 0, survivor.stderr);
  assert.equal(drbdCalls().at(-1), `drbdadm connect ${DRBD_RESOURCE}`);
  assert.equal(drbdCalls().length, 4);

  // status: both sides' generations; the only primary looks newest, else the side with more changes while apart.
  const primary = await sb(a, ["status"], { ROLE: "Primary" });
  assert.equal(primary.code, 0, primary.stderr);
  assert.match(primary.stdout, /^generation 6F2A:0:0:0:1:1:0:0$/m);
  assert.match(
    primary.stdout,
    new RegExp(`^newest: ${a} \\(the only primary\\); to keep it: standort-split-brain repair --survivor ${a}`, "m"),
  );
  const changes = await sb(a, ["status"], { OOS: "10", PEER_OOS: "4096" });
  assert.match(changes.stdout, new RegExp(`^newest: ${b} \\(more changes while apart \\(4096 KiB against 10 KiB\\)\\)`, "m"));
});

test("standort-data-volume formats a fresh pair once, on its first member, and never a device or disk holding a filesystem", async (t) => {
  if (!requireTool(t, "sh", "logger", "mknod")) return;
  for (const model of [sites.find((s) => s.name === "vienna")!, sites.find((s) => s.provider.kind === "hcloud")!]) {
    const pair = model.pairs.find((p) => p.role === "storage")!;
    const disk = join(scratch, `disk-${model.name}`);
    // A block device node for the script's `-b` test; the stand-ins never open it.
    if (!existsSync(disk)) execFileSync("mknod", [disk, "b", "7", "200"]);
    const hcloudVolumes = mkdtempSync(join(scratch, "by-id-"));
    const stand = standins(`dv-bin-${model.name}`, {
      drbdadm: [
        'case "$1" in',
        'status) [ "${UP:-no}" = yes ] ;;',
        'dump-md) [ "${MD:-no}" = yes ] ;;',
        "cstate) echo Connected ;;",
        'dstate) echo "${DSTATE:-Inconsistent/Inconsistent}" ;;',
        'get-gi) echo "${GI:-0000000000000004}:0000000000000000:0000000000000000:0000000000000000:0:0:0:0:0:0:0" ;;',
        "*) exit 0 ;;",
        "esac",
      ].join("\n"),
      // blkid -p -o export: KEY=value lines; a partition table shows as PTTYPE.
      blkid: `case "$*" in *${DRBD_DEVICE}*) [ -n "\${DEVICE_FS:-}" ] && echo "TYPE=$DEVICE_FS" ;; *) [ -n "\${DISK_FS:-}" ] && echo "\${DISK_KEY:-TYPE}=$DISK_FS" ;; esac; exit 0`,
      "mkfs.ext4": "exit 0",
      udevadm: "exit 0",
    });
    const script = join(scratch, `data-volume-${model.name}`);
    const dv = async (host: string, env: Record<string, string>) => {
      writeFileSync(
        script,
        renderDataVolumeScript(model, host).replace("/dev/disk/by-id/scsi-0HC_Volume_*", `${hcloudVolumes}/scsi-0HC_Volume_*`),
      );
      writeFileSync(join(scratch, `dv-bin-${model.name}`, "calls.log"), "");
      const r = await run([
        "env",
        `PATH=${stand.path}`,
        `STANDORT_DATA_DISK=${disk}`,
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        "sh",
        script,
      ]);
      return { ...r, calls: stand.calls() };
    };
    if (model.provider.kind === "hcloud") {
      const noVolume = await dv(pair.members[0], {});
      assert.equal(noVolume.code, 1);
      assert.match(noVolume.stderr, /no Hetzner Cloud volume is attached/);
      writeFileSync(join(hcloudVolumes, "scsi-0HC_Volume_1"), "");
      writeFileSync(join(hcloudVolumes, "scsi-0HC_Volume_2"), "");
      const two = await dv(pair.members[0], {});
      assert.match(two.stderr, /2 Hetzner Cloud volumes are attached/);
      rmSync(join(hcloudVolumes, "scsi-0HC_Volume_2"));
    }
    const first = pair.members[0];
    const fresh = await dv(first, {});
    assert.equal(fresh.code, 0, fresh.stderr);
    const mkfs = (calls: string[]) => calls.filter((c) => c.startsWith("mkfs.ext4"));
    assert.deepEqual(mkfs(fresh.calls), [`mkfs.ext4 -q -L standort-data ${DRBD_DEVICE}`], `${model.name}: a fresh pair is formatted`);
    const order = fresh.calls.filter((c) => /^(drbdadm (create-md|up|primary|secondary)|mkfs)/.test(c));
    assert.deepEqual(order, [
      `drbdadm create-md --max-peers=1 ${DRBD_RESOURCE}`,
      `drbdadm up ${DRBD_RESOURCE}`,
      `drbdadm primary --force ${DRBD_RESOURCE}`,
      `mkfs.ext4 -q -L standort-data ${DRBD_DEVICE}`,
      `drbdadm secondary ${DRBD_RESOURCE}`,
    ]);
    // The second member never formats, fresh or not.
    const second = await dv(pair.members[1], {});
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(mkfs(second.calls), []);
    assert.ok(!second.calls.some((c) => c.startsWith("drbdadm primary")));
    // A filesystem on the DRBD device (the pair's generation lost, say): refused, and back to secondary.
    const holding = await dv(first, { DEVICE_FS: "ext4" });
    assert.equal(holding.code, 1);
    assert.match(holding.stderr, /holds ext4: not formatting/);
    assert.deepEqual(mkfs(holding.calls), []);
    assert.equal(holding.calls.filter((c) => c.startsWith("drbdadm")).at(-1), `drbdadm secondary ${DRBD_RESOURCE}`);
    // A disk without DRBD metadata that holds a filesystem: no metadata over it, nothing formatted.
    const foreign = await dv(first, { DISK_FS: "xfs" });
    assert.equal(foreign.code, 1);
    assert.match(foreign.stderr, /holds xfs: not creating DRBD metadata over it/);
    assert.ok(!foreign.calls.some((c) => c.startsWith("drbdadm create-md") || c.startsWith("mkfs")));
    const partitioned = await dv(first, { DISK_FS: "gpt", DISK_KEY: "PTTYPE" });
    assert.equal(partitioned.code, 1);
    assert.match(partitioned.stderr, /holds gpt: not creating DRBD metadata over it/);
    // A second run (up, a generation) and a pair that holds data change nothing.
    const later: Array<Record<string, string>> = [
      { UP: "yes", MD: "yes", GI: "7A3C1F0E22D4B001" },
      { MD: "yes", DSTATE: "UpToDate/UpToDate" },
    ];
    for (const env of later) {
      const again = await dv(first, env);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(!again.calls.some((c) => /^(mkfs|drbdadm (create-md|primary))/.test(c)), JSON.stringify(again.calls));
    }
  }
});

test("the storage pair promotes, mounts and serves only after the fence, and steps down in reverse", () => {
  for (const model of sites) {
    const pair = model.pairs.find((p) => p.role === "storage")!;
    const script = renderFailoverScript(model, pair.passive, fakeSecrets(model));
    const at = (needle: string) => {
      const i = script.lastIndexOf(needle);
      assert.ok(i >= 0, `${model.name}: ${needle}`);
      return i;
    };
    const fence = at("elif fence_peer; then");
    const promote = at(`until drbdadm primary ${DRBD_RESOURCE}; do`);
    const mount = at(`mount ${DRBD_DEVICE} /srv`);
    const nfs = at("systemctl restart nfs-ganesha");
    const flag = at('touch "$NFS_SERVING" "$ACTIVE_FLAG"');
    const lsyncd = at("systemctl restart standort-lsyncd.service");
    assert.ok(fence < promote && promote < mount && mount < nfs && nfs < flag && flag < lsyncd, `${model.name}: up order`);
    const down = script.slice(script.indexOf("\tbackup | fault | stop)"));
    const order = [
      "systemctl stop standort-lsyncd.service",
      "systemctl stop nfs-ganesha",
      `umount ${DRBD_DEVICE}`,
      `drbdadm secondary ${DRBD_RESOURCE}`,
    ].map((n) => down.indexOf(n));
    assert.ok(
      order.every((i, k) => i > 0 && (k === 0 || i > order[k - 1])),
      `${model.name}: down order ${order.join(",")}`,
    );
    // keepalived tracks the NFS server where this member serves.
    assert.match(
      script,
      /\tnfs-check\)\n\t\t\[ ! -e "\$STORAGE_FAILED" \] \|\| exit 1\n\t\t\[ ! -e "\$NFS_SERVING" \] \|\| systemctl is-active --quiet nfs-ganesha/,
    );
  }
});

test("DRBD is admitted between the two storage members' heartbeat addresses only; storage hosts install ganesha and drbd-utils", () => {
  for (const model of sites) {
    const pair = model.pairs.find((p) => p.role === "storage")!;
    const rules = zonePolicy(model).filter((r) => r.ports.includes(DRBD_PORT));
    const members = pair.members.map((m) => `${pair.heartbeat[m]}/32`);
    assert.deepEqual(
      rules.map((r) => ({
        name: r.name,
        protocol: r.protocol,
        sources: r.sources,
        destinations: r.destinations,
        targets: r.targets,
        forwarded: r.forwarded,
      })),
      [
        {
          name: `${pair.heartbeatSegment}-drbd`,
          protocol: "tcp",
          sources: members,
          destinations: members,
          targets: ["storage"],
          forwarded: false,
        },
      ],
    );
    const packages = packagesFor(model, "storage");
    for (const p of ["drbd-utils", "nfs-ganesha", "nfs-ganesha-vfs"]) assert.ok(packages.includes(p), `${model.name}: ${p}`);
    assert.ok(!packages.includes("nfs-kernel-server"));
    for (const host of model.hosts.filter((h) => h.role !== "storage")) {
      const files = planHostFiles(model, sites, footprint).find((f) => f.host === host.name)!.files;
      assert.ok(!files.some((f) => [DRBD_RESOURCE_FILE, GANESHA_CONF, DATA_VOLUME_SCRIPT, SPLIT_BRAIN_SCRIPT].includes(f.path)), host.name);
    }
  }
});
