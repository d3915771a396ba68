// The storage pair in the twin (vienna): the real nfs-ganesha from the rendered ganesha.conf, started by the
// rendered failover script on the active member only, on the twin's DRBD stand-in (no DRBD kernel module here:
// see scripts/twin/storage.ts). The stand-in refuses what DRBD refuses; a file written over NFS through the
// storage VIP before the active store crashes is read back through the VIP after the takeover.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { SiteTwin } from "../scripts/twin/site";
import { settle } from "../scripts/twin/reachability";
import { currentHolder } from "../scripts/twin/holders";
import { drbdFolders, storageCalls, storageTakeover } from "../scripts/twin/storage";
import { DRBD_DEVICE, DRBD_RESOURCE } from "../lib/render/storage";
import { NFS_PORT } from "../lib/render/policy";
import { requireTool } from "./helpers/tools";
import { ingressRequest } from "../scripts/twin/workloads";
import { workloadInstances } from "../lib/footprint/workloads";
import { siteServices } from "../lib/footprint/services";
import { INGRESS_PORTS } from "../lib/render/policy";
import { assertNothingLeft, requireTwin } from "./helpers/twin";

let twin: SiteTwin | undefined;
after(() => twin?.destroy());

test("vienna's storage pair keeps one copy through a crash of the active store", { timeout: 300_000 }, async (t) => {
  if (!requireTwin(t) || !requireTool(t, "ganesha.nfsd", "nfs-cp", "nfs-cat", "nfs-ls", "ss", "bash", "timeout")) return;
  twin = await SiteTwin.boot({ location: "vienna" });
  const tw = twin;
  const pair = tw.model.pairs.find((p) => p.role === "storage")!;
  assert.deepEqual(await settle(tw), []);
  const active = (await currentHolder(tw, pair))!;
  const passive = pair.members.find((m) => m !== active)!;
  const listening = async (host: string) => (await tw.machine(host).run(["ss", "-Hltn", `sport = :${NFS_PORT}`])).trim() !== "";

  await t.test("ganesha serves on the active member only; the stand-in refuses what DRBD refuses", async () => {
    // The failover script promoted and mounted before it started the server (it may still be doing so).
    for (let i = 0; i < 100 && !(await listening(active)); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(await listening(active), `${active} serves NFS`);
    assert.ok(!(await listening(passive)), `${passive} stands by without an NFS server`);
    const calls = storageCalls(tw);
    const up = calls
      .filter((c) => c.includes(` ${active} `) && /drbdadm primary|mount /.test(c))
      .map((c) => c.split(" ").slice(2).join(" "));
    assert.deepEqual(up.slice(-2), [`drbdadm primary ${DRBD_RESOURCE}`, `mount ${DRBD_DEVICE} /srv`]);
    const second = await tw.machine(passive).exec(["drbdadm", "primary", DRBD_RESOURCE]);
    assert.equal(second.code, 11, "a second primary while the peer is primary and connected");
    assert.match(second.stderr, /Multiple primaries not allowed/);
    const discard = await tw.machine(active).exec(["drbdadm", "connect", "--discard-my-data", DRBD_RESOURCE]);
    assert.equal(discard.code, 10, "--discard-my-data on the primary");
    const mount = await tw.machine(passive).exec(["mount", DRBD_DEVICE, "/srv"]);
    assert.equal(mount.code, 32, "a secondary's device does not open");
    const busy = await tw.machine(active).exec(["drbdadm", "secondary", DRBD_RESOURCE]);
    assert.equal(busy.code, 11, "secondary while mounted");
  });

  await t.test("a file written through the storage VIP before the active store crashes is read back after the takeover", async () => {
    // The same through the platform: mail's read-write instance (a container on vie-virt-1, behind its ingress)
    // writes into its tree on the export before the crash; another host's container reads it after the takeover.
    const mail = workloadInstances(tw.footprint, siteServices(tw.footprint, tw.sites, "vienna")).find((i) => i.project === "mail")!;
    const app = (host: string) => tw.model.hosts.find((h) => h.name === host)!.interfaces.find((i) => i.segment === "app")!.address;
    const path = `/files/vmail/twin-takeover-${process.pid}.txt`;
    const content = `written by mail's container before ${active} crashed\n`;
    let put = { status: 0, body: "" };
    for (let i = 0; i < 60 && put.status !== 201; i++) {
      put = await ingressRequest(tw, "vie-proxy-1", app("vie-virt-1"), INGRESS_PORTS.readWrite, mail.names[0], path, content);
      if (put.status !== 201) await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(put.status, 201, `the container wrote through the export: ${put.body}`);
    const r = await storageTakeover(tw);
    t.diagnostic(
      `${r.writtenVia}; ${r.crashed} crashed, ${r.tookOver} took over; the export answered after ${r.exportSeconds} s; read back ${r.readBack} after ${r.seconds} s (NFSv4 grace included: libnfs does not reclaim)`,
    );
    assert.equal(r.crashed, active);
    assert.equal(r.tookOver, passive);
    assert.equal(r.readBack, true);
    assert.ok(r.seconds !== null && r.seconds < 60, `read back within 60 s (${r.seconds})`);
    assert.ok(r.exportSeconds !== null && r.exportSeconds <= r.seconds, `the export answered first (${r.exportSeconds})`);
    // The site's one copy holds it: the backing folder both members mount while primary.
    const { backing } = drbdFolders(tw.dir, tw.model.name);
    assert.ok(existsSync(join(backing, r.tree.slice("/srv".length), r.file)));
    // The new primary promoted without its peer: DRBD's fence-peer handler (the failover script's) said "fenced" (7).
    const calls = storageCalls(tw);
    const promoted = calls.findIndex((c) => c.includes(` ${passive} drbdadm primary ${DRBD_RESOURCE}`));
    assert.ok(promoted >= 0, "the passive member was promoted");
    assert.match(calls.slice(promoted + 1).join("\n"), /fence-peer handler \(.*drbd-fence-peer\) exited 7/);
    const syslog = tw.syslog(passive).join("\n");
    assert.match(syslog, new RegExp(`drbd: ${active} answers on none of its addresses`));
    // ganesha runs on the member that serves now (the crashed one was booted again and took its role back, or not yet).
    const log = readFileSync(tw.ganeshaLog(passive), "utf8");
    assert.match(log, /NFS SERVER INITIALIZED/);
    let got = { status: 0, body: "" };
    for (let i = 0; i < 60 && got.body !== content; i++) {
      got = await ingressRequest(tw, "vie-proxy-1", app("vie-virt-2"), INGRESS_PORTS.readWrite, mail.names[0], path);
      if (got.body !== content) await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual([got.status, got.body], [200, content], "another host's container reads what was written before the crash");
  });

  const { prefix, dir } = tw;
  tw.destroy();
  twin = undefined;
  assertNothingLeft(prefix, dir);
});
