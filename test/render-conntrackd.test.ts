// conntrackd on the firewall pairs, run for real: each pair's two rendered configurations in two network
// namespaces joined by their heartbeat link, behind their rendered nftables. A connection the active member
// tracks reaches the other member's external cache and, committed as the failover script does on a
// takeover, its kernel table; without the rendered sync rule nothing arrives.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { planHostFiles } from "../lib/preview/files";
import { writeRenderedFiles } from "../lib/render";
import { CONNTRACKD_CONF, renderConntrackdConfig, runsConntrackd } from "../lib/render/conntrackd";
import { RenderInputError } from "../lib/render/errors";
import { interfaceName } from "../lib/render/interfaces";
import { CONNTRACK_SYNC_PORT } from "../lib/render/policy";
import { renderFailoverScript } from "../lib/render/keepalived";
import { fakeSecrets } from "./helpers/secrets";
import { requireNetns, requireTool, run } from "./helpers/tools";

const { footprint, sites } = loadFootprint();
const pairs = sites.flatMap((model) => model.pairs.filter((p) => p.role === "firewall" && !p.dissolved).map((pair) => ({ model, pair })));

test("every firewall pair member renders conntrackd towards its peer on the heartbeat link; nobody else does", () => {
  assert.equal(pairs.length, sites.length, "each site has a firewall pair with a peer");
  for (const { model, pair } of pairs) {
    for (const self of pair.members) {
      const peer = pair.members.find((m) => m !== self)!;
      const text = renderConntrackdConfig(model, self);
      assert.match(text, new RegExp(`\\tIPv4_address ${pair.heartbeat[self].replace(/\./g, "\\.")}\\n`));
      assert.match(text, new RegExp(`\\tIPv4_Destination_Address ${pair.heartbeat[peer].replace(/\./g, "\\.")}\\n`));
      assert.match(text, new RegExp(`\\tPort ${CONNTRACK_SYNC_PORT}\\n\\t\\tInterface ${interfaceName(pair.heartbeatSegment)}\\n`));
      // The NAT address is the far end of every NATed connection: ignoring it would sync nothing that matters.
      if (model.public.mode === "own-prefix")
        assert.ok(!text.includes(model.public.natAddress), `${self}: the NAT address is synchronised`);
      for (const v of pair.vips)
        assert.ok(text.includes(`IPv4_address ${v.address}\n`), `${self}: its own VIP ${v.address} is not synchronised`);
    }
  }
  const proxy = sites[0].pairs.find((p) => p.role === "proxy")!.active;
  assert.equal(runsConntrackd(sites[0], proxy), false);
  assert.throws(
    () => renderConntrackdConfig(sites[0], proxy),
    (e: unknown) => e instanceof RenderInputError && /hostName.*not a member of a firewall pair/.test(e.message),
  );
});

test("the firewall's failover script commits conntrackd's cache when it becomes master, before it waits to fence", () => {
  const { model, pair } = pairs[0];
  const script = renderFailoverScript(model, pair.passive, fakeSecrets(model));
  const commit = script.indexOf(`conntrackd -C ${CONNTRACKD_CONF} -c`);
  assert.ok(commit > 0 && commit < script.indexOf('sleep "$GRACE_SECONDS"'), "the commit comes before the fence's grace wait");
  assert.ok(script.indexOf(`conntrackd -C ${CONNTRACKD_CONF} -n`) > 0, "a member that becomes backup asks its peer for the table");
});

// The rendered files of every host, as the stacks install them.
const dir = mkdtempSync(join(tmpdir(), "standort-conntrackd-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const rendered = sites.flatMap((m) => planHostFiles(m, sites, footprint));
writeRenderedFiles(dir, rendered);
const local = (host: string, path: string) => join(dir, host, path.replace(/^\//, ""));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("conntrackd runs from the rendered files and carries a tracked connection to the peer, only through the sync rule", async (t) => {
  if (!requireTool(t, "conntrackd", "conntrack", "nft", "unshare", "nsenter") || !requireNetns(t)) return;
  for (const { model, pair } of pairs) {
    await t.test(`${model.name}: ${pair.members.join(" and ")}`, async () => {
      const [a, b] = [pair.active, pair.passive];
      const ns = (h: string) => `standort-ct-${process.pid}-${h}`;
      const hb = interfaceName(pair.heartbeatSegment);
      const daemons: ChildProcess[] = [];
      try {
        for (const h of [a, b]) execFileSync("ip", ["netns", "add", ns(h)]);
        execFileSync("ip", ["link", "add", "ctA", "netns", ns(a), "type", "veth", "peer", "name", "ctB", "netns", ns(b)]);
        for (const [h, link, peer] of [
          [a, "ctA", b],
          [b, "ctB", a],
        ] as const) {
          const ip = (...args: string[]) => execFileSync("ip", ["-n", ns(h), ...args]);
          ip("link", "set", link, "name", hb);
          ip("addr", "add", `${pair.heartbeat[h]}/32`, "dev", hb);
          ip("link", "set", hb, "up");
          ip("link", "set", "lo", "up");
          ip("route", "add", `${pair.heartbeat[peer]}/32`, "dev", hb);
          execFileSync("ip", ["netns", "exec", ns(h), "nft", "-f", local(h, "/etc/nftables.conf")]);
          // Each daemon with its own /run (its lock and control socket), as on its own host.
          const child = spawn(
            "ip",
            [
              "netns",
              "exec",
              ns(h),
              "unshare",
              "-m",
              "sh",
              "-c",
              `mount -t tmpfs tmpfs /run && exec conntrackd -C ${local(h, CONNTRACKD_CONF)}`,
            ],
            { stdio: ["ignore", "pipe", "pipe"] },
          );
          child.stdout?.resume();
          child.stderr?.resume();
          daemons.push(child);
        }
        const inside = (i: 0 | 1, ...argv: string[]) =>
          run([
            "nsenter",
            "-t",
            String(daemons[i].pid),
            "-m",
            "-n",
            ...argv.map((w) => (w === "CONF" ? local([a, b][i], CONNTRACKD_CONF) : w)),
          ]);
        // Ready when its control socket answers.
        for (const i of [0, 1] as const) {
          let ready = false;
          for (let n = 0; n < 50 && !ready; n++) {
            ready = (await inside(i, "conntrackd", "-C", "CONF", "-s", "runtime")).code === 0;
            if (!ready) await sleep(100);
          }
          assert.ok(ready, `conntrackd of ${[a, b][i]} runs from its rendered file`);
        }
        const client = model.hosts.find((h) => h.role === "virtualization")!.interfaces[0].address;
        const track = (sport: number) =>
          inside(
            0,
            "conntrack",
            "-I",
            "-p",
            "tcp",
            "-s",
            client,
            "-d",
            "203.0.113.20",
            "--sport",
            String(sport),
            "--dport",
            "443",
            "--state",
            "ESTABLISHED",
            "-t",
            "300",
            "-u",
            "SEEN_REPLY,ASSURED",
          );
        const arrived = async (sport: number, waitMs: number) => {
          for (const until = Date.now() + waitMs; Date.now() < until; await sleep(100)) {
            const cache = await inside(1, "conntrackd", "-C", "CONF", "-e", "ct");
            if (cache.stdout.includes(`sport=${sport} `)) return true;
          }
          return false;
        };
        assert.equal((await track(40001)).code, 0);
        assert.ok(await arrived(40001, 5_000), `${b}'s external cache holds ${a}'s connection`);
        // The takeover, as the failover script does it: commit the cache into the kernel.
        assert.equal((await inside(1, "conntrackd", "-C", "CONF", "-c")).code, 0);
        const table = await inside(1, "conntrack", "-L", "-p", "tcp", "--sport", "40001");
        assert.match(
          table.stdout,
          new RegExp(
            `src=${client.replace(/\./g, "\\.")} dst=203\\.0\\.113\\.20 sport=40001 dport=443 .*ESTABLISHED|ESTABLISHED .*sport=40001`,
          ),
        );
        // Without the rendered rule, nothing arrives.
        const ruleset = readFileSync(local(b, "/etc/nftables.conf"), "utf8");
        const withoutSync = ruleset
          .split("\n")
          .filter((l) => !l.includes(`"${pair.heartbeatSegment}-conntrack-sync"`))
          .join("\n");
        assert.notEqual(withoutSync, ruleset, "the ruleset has the sync rule");
        const mutated = join(dir, `${b}-nftables-without-sync.conf`);
        writeFileSync(mutated, withoutSync);
        execFileSync("ip", ["netns", "exec", ns(b), "nft", "-f", mutated]);
        assert.equal((await track(40002)).code, 0);
        assert.equal(await arrived(40002, 2_000), false, "without the sync rule the peer hears nothing");
      } finally {
        for (const d of daemons) d.kill("SIGKILL");
        for (const h of [a, b]) {
          try {
            execFileSync("ip", ["netns", "del", ns(h)], { stdio: "ignore" });
          } catch {
            // not created
          }
        }
      }
    });
  }
});
