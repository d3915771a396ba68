// The twin knows nothing the rendered files do not say: it boots Vienna from a plan --files folder in which a
// route and an allow rule were removed, a hole was opened in the edge firewall and a file left out, and exactly
// the probes and checks those touch fail, named.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { planHostFiles } from "../lib/preview/files";
import { stackProviderEnv } from "../lib/preview/run-stack";
import { writeRenderedFiles } from "../lib/render";
import { SiteTwin } from "../scripts/twin/site";
import { reachability } from "../scripts/twin/reachability";
import { requireTwin } from "./helpers/twin";

const folder = mkdtempSync(join(tmpdir(), "standort-mutated-"));
let twin: SiteTwin | undefined;
after(() => {
  twin?.destroy();
  rmSync(folder, { recursive: true, force: true });
});

/** Removes `text` from a file of the folder; fails when the file does not hold it (a renderer change shows here). */
function remove(path: string, text: string): void {
  const file = join(folder, path);
  const content = readFileSync(file, "utf8");
  assert.ok(content.includes(text), `${path} holds ${JSON.stringify(text)}`);
  writeFileSync(file, content.replace(text, ""));
}

test(
  "a route, an allow rule, an edge hole and a file changed in the rendered files fail exactly what they touch",
  { timeout: 240_000 },
  async (t) => {
    if (!requireTwin(t)) return;
    const { sites, footprint } = loadFootprint();
    const vienna = sites.find((s) => s.name === "vienna")!;
    writeRenderedFiles(folder, planHostFiles(vienna, sites, footprint, stackProviderEnv("vienna")), { clean: true });
    // 1. The proxies' dmz routing table loses its default route: replies to customers (from the VIP, in dmz) no
    //    longer go back through the firewall that forwarded them.
    for (const proxy of ["vie-proxy-1", "vie-proxy-2"]) {
      remove(`${proxy}/etc/systemd/network/20-standort-dmz.network`, "[Route]\nGateway=10.30.0.1\nTable=1010\n");
    }
    // 2. vie-proxy-1's packet filter loses the HAProxy stats rule.
    const line = readFileSync(join(folder, "vie-proxy-1/etc/nftables.conf"), "utf8")
      .split("\n")
      .find((l) => l.includes('comment "mgmt-to-proxy-stats"'))!;
    remove("vie-proxy-1/etc/nftables.conf", `${line}\n`);
    // 3. Both firewalls let dmz into data, which the policy denies; the storage hosts' own filters still drop it.
    for (const fw of ["vie-fw-1", "vie-fw-2"]) {
      const accepted = "\t\tct state established,related accept\n";
      const file = join(folder, fw, "etc/nftables.conf");
      const text = readFileSync(file, "utf8");
      const forward = text.indexOf("chain forward");
      const at = text.indexOf(accepted, forward) + accepted.length;
      writeFileSync(file, `${text.slice(0, at)}\t\tiifname "dmz" oifname "data" accept\n${text.slice(at)}`);
    }
    // 4. vie-stor-2 loses its keepalived.conf: the storage pair has no member standing by.
    rmSync(join(folder, "vie-stor-2/etc/keepalived/keepalived.conf"));

    twin = await SiteTwin.boot({ location: "vienna", filesDir: folder });
    assert.deepEqual(twin.fileDifferences, ["vie-stor-2: /etc/keepalived/keepalived.conf is missing (the stack installs it)"]);
    const r = await reachability(twin);
    const failed = r.failures.map((f) => f.probe);
    t.diagnostic(`${failed.length} probes failed; the first 60:\n${failed.slice(0, 60).join("\n")}`);
    // The named probes fail...
    assert.ok(
      failed.includes("pass:internet-to-proxy-web:internet client->public proxy address:tcp/443"),
      "customers' HTTPS dies with the route",
    );
    assert.ok(failed.includes("pass:service:mail:mail.example.com"), "so does the mail service");
    // The name server answers from the VIP too: its answers die with the same route.
    for (const transport of ["udp", "tcp"])
      assert.ok(failed.includes(`check:internet-to-proxy-dns-${transport}`), `DNS over ${transport} dies with the route`);
    assert.ok(
      failed.includes("pass:mgmt-to-proxy-stats:vie-virt-1 mgmt->vie-proxy-1 mgmt:tcp/8404"),
      "the stats on vie-proxy-1 die with the rule",
    );
    // The edge's hole shows although every packet through it dies at the storage hosts' own filters...
    const hole = r.failures.filter((f) => f.happened.startsWith("passed the edge firewall"));
    assert.ok(
      hole.some(
        (f) =>
          f.probe === "block:vie-proxy-1 dmz->vie-stor-1 data:tcp/2049" && f.happened.endsWith("only vie-stor-1's own filter dropped it"),
      ),
      hole.map((f) => `${f.probe}: ${f.happened}`).join("\n"),
    );
    assert.ok(
      hole.every((f) => / dmz->(vie-stor-\d data|storage VIP data):/.test(f.probe)),
      "only dmz-to-data flows passed the edge",
    );
    // ...and the storage pair has no member standing by.
    for (const path of ["check:hb-storage-vrrp", "check:mgmt-vrrp-storage"]) {
      const vrrp = r.failures.find((f) => f.probe === path);
      assert.match(vrrp?.happened ?? "", /vie-stor-2 \(none: keepalived never ran its script\)/, path);
    }
    // Nothing else: the other proxy's stats, the backends, every other denied probe are as before.
    assert.ok(!failed.includes("pass:mgmt-to-proxy-stats:vie-virt-1 mgmt->vie-proxy-2 mgmt:tcp/8404"));
    const explained = (probe: string, rule?: string) =>
      rule === "mgmt-to-proxy-stats" ||
      rule === "internet-to-proxy-web" ||
      rule === "internet-to-proxy-dns-udp" ||
      rule === "internet-to-proxy-dns-tcp" ||
      rule === "hb-storage-vrrp" ||
      rule === "mgmt-vrrp-storage" ||
      rule?.startsWith("service ") ||
      /^dmz-to-internet-(tcp|udp)$/.test(rule ?? "") ||
      hole.some((f) => f.probe === probe);
    assert.deepEqual(
      r.failures.filter((f) => !explained(f.probe, f.rule)),
      [],
      "every failure follows from the four changes",
    );
  },
);
