// The drain that makes planned moves lossless (lib/render/drain.ts), checked by the real nft: which members
// render it, that nft accepts every one on a host with its links, that loading it again (a delivery) keeps
// the connections a member remembers, and that each link passes packets back to the peer's address there.
// That a handover loses nothing under load is the twin's to show (test/twin-vienna.test.ts).
import test from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSites } from "../lib/model/load";
import { DRAIN_TABLE, drainFunctions, drainLinks, drainsConnections, renderDrainRuleset } from "../lib/render/drain";
import { RenderInputError } from "../lib/render/errors";
import { createNetnsWithLinks, requireNetns, requireTool, run } from "./helpers/tools";

const sites = loadSites();
const members = sites.flatMap((model) =>
  model.pairs.filter((p) => p.role !== "firewall" && !p.dissolved).flatMap((p) => p.members.map((host) => ({ model, host }))),
);

test("proxy and storage members of pre-provisioned sites drain; firewalls (conntrackd) and Hetzner Cloud members do not", () => {
  for (const { model, host } of members) assert.equal(drainsConnections(model, host), model.provider.kind !== "hcloud", host);
  const helsinki = sites.find((s) => s.provider.kind === "hcloud")!;
  const fw = sites[0].pairs.find((p) => p.role === "firewall")!.active;
  for (const [model, host] of [
    [sites[0], fw],
    [helsinki, helsinki.pairs.find((p) => p.role === "proxy")!.active],
  ] as const) {
    assert.throws(
      () => renderDrainRuleset(model, host),
      (e: unknown) => e instanceof RenderInputError && /hostName.*nothing to drain/.test(e.message),
    );
  }
  // Each link passes back to the peer's own address on it: the VIP segments, and the uplink where the pair's
  // provider failover IP arrives (Karlsruhe's proxies).
  const karlsruhe = sites.find((s) => s.name === "karlsruhe")!;
  const pair = karlsruhe.pairs.find((p) => p.role === "proxy")!;
  const peer = karlsruhe.hosts.find((h) => h.name === pair.passive)!;
  const links = drainLinks(karlsruhe, pair.active);
  assert.deepEqual(
    links.map((l) => l.link),
    ["dmz", "eth0"],
  );
  assert.equal(links[1].peer, peer.publicAddress);
  assert.match(
    renderDrainRuleset(karlsruhe, pair.active),
    new RegExp(`fwd ip to ${peer.publicAddress!.replace(/\./g, "\\.")} device "eth0"`),
  );
});

test("nft accepts every member's drain on a host with its links, and loading it again keeps what it remembers", async (t) => {
  if (!requireTool(t, "nft") || !requireNetns(t)) return;
  const dir = mkdtempSync(join(tmpdir(), "standort-drain-"));
  try {
    for (const { model, host } of members.filter((m) => drainsConnections(m.model, m.host))) {
      const file = join(dir, `${host}.nft`);
      writeFileSync(file, renderDrainRuleset(model, host));
      const ns = `standort-drain-${process.pid}`;
      const remove = createNetnsWithLinks(
        ns,
        drainLinks(model, host).map((l) => l.link),
      );
      try {
        const nft = (...args: string[]) => run(["ip", "netns", "exec", ns, "nft", ...args]);
        const checked = await nft("-c", "-f", file);
        assert.equal(checked.code, 0, `${host}: ${checked.stderr}`);
        assert.equal((await nft("-f", file)).code, 0);
        const vip = drainLinks(model, host)[0].vips[0];
        assert.equal((await nft("add", "element", "netdev", DRAIN_TABLE, "mine", "{ 203.0.113.10 . 40000 . 443 }")).code, 0);
        assert.equal((await nft("add", "element", "netdev", DRAIN_TABLE, "draining", `{ ${vip} }`)).code, 0);
        assert.equal((await nft("-f", file)).code, 0, "a second load (a delivery) succeeds");
        const listed = (await nft("list", "table", "netdev", DRAIN_TABLE)).stdout;
        assert.match(listed, /203\.0\.113\.10 \. 40000 \. 443/, `${host}: a reload forgot the connections it serves`);
        assert.ok(listed.includes(`elements = { ${vip} }`), `${host}: a reload emptied draining`);
        assert.equal(listed.match(/ fwd ip to /g)?.length, drainLinks(model, host).length, "one rule per link, not doubled by the reload");
      } finally {
        remove();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without its links the drain does not load (it belongs after the interfaces, loaded by the failover script)", async (t) => {
  if (!requireTool(t, "nft", "unshare")) return;
  const { model, host } = members.find((m) => drainsConnections(m.model, m.host))!;
  const dir = mkdtempSync(join(tmpdir(), "standort-drain-"));
  try {
    const file = join(dir, "drain.nft");
    writeFileSync(file, renderDrainRuleset(model, host));
    const r = await run(["unshare", "-n", "nft", "-c", "-f", file]);
    assert.notEqual(r.code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a member that becomes master forgets the connections that ended here, and keeps the live ones", async (t) => {
  if (!requireTool(t, "nft", "jq", "ss", "socat") || !requireNetns(t)) return;
  const vienna = sites.find((s) => s.name === "vienna")!;
  const host = vienna.pairs.find((p) => p.role === "proxy")!.active;
  const vip = drainLinks(vienna, host)[0].vips[0];
  const dir = mkdtempSync(join(tmpdir(), "standort-drain-"));
  const ns = `standort-prune-${process.pid}`;
  const remove = createNetnsWithLinks(
    ns,
    drainLinks(vienna, host).map((l) => l.link),
  );
  try {
    const file = join(dir, "drain.nft");
    writeFileSync(file, renderDrainRuleset(vienna, host));
    const inNs = (...argv: string[]) => run(["ip", "netns", "exec", ns, ...argv]);
    await inNs("ip", "link", "set", "lo", "up");
    await inNs("ip", "addr", "add", `${vip}/32`, "dev", "lo");
    assert.equal((await inNs("nft", "-f", file)).code, 0);
    // A live connection to the VIP (from 127.0.0.1), held open while the prune runs.
    const script = [
      `socat TCP-LISTEN:443,bind=${vip},reuseaddr SYSTEM:'sleep 5' >/dev/null 2>&1 &`,
      "sleep 0.3",
      `socat -u TCP:${vip}:443,bind=127.0.0.1,sourceport=40123 SYSTEM:'sleep 5' >/dev/null 2>&1 &`,
      "sleep 0.3",
      `nft add element netdev ${DRAIN_TABLE} mine '{ 127.0.0.1 . 40123 . 443, 203.0.113.10 . 50000 . 443, 203.0.113.11 . 50001 . 80 }'`,
      `RUN_DIR=${dir}`,
      'log() { echo "$*" >&2; }',
      ...drainFunctions(vienna, host).filter((l) => !l.startsWith("#")),
      "drain_prune",
      `nft -j list set netdev ${DRAIN_TABLE} mine | jq -r '.nftables[].set.elem[]?.elem.val.concat | join(" ")'`,
      "kill %1 %2 2>/dev/null",
      "exit 0",
    ].join("\n");
    const r = await inNs("sh", "-c", script);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["127.0.0.1 40123 443"], "only the live connection is remembered");
  } finally {
    remove();
    rmSync(dir, { recursive: true, force: true });
  }
});
