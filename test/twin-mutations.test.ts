// The twin knows nothing the rendered files do not say: it boots Vienna from a plan --files folder in which one
// route and one nftables allow rule were removed, and exactly the probes that needed them fail, named.
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

test("a route or an allow rule taken out of the rendered files fails exactly the probes that need it", { timeout: 240_000 }, async (t) => {
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

  twin = await SiteTwin.boot({ location: "vienna", filesDir: folder });
  const r = await reachability(twin);
  const failed = r.failures.map((f) => f.probe);
  t.diagnostic(`${failed.length} probes failed:\n${failed.join("\n")}`);
  // The named probes fail...
  assert.ok(
    failed.includes("pass:internet-to-proxy-web:internet client->public proxy address:tcp/443"),
    "customers' HTTPS dies with the route",
  );
  assert.ok(failed.includes("pass:service:mail:mail.example.com"), "so does the mail service");
  assert.ok(
    failed.includes("pass:mgmt-to-proxy-stats:vie-virt-1 mgmt->vie-proxy-1 mgmt:tcp/8404"),
    "the stats on vie-proxy-1 die with the rule",
  );
  // ...and nothing else: the other proxy's stats, the backends, and every denied probe are as before.
  assert.ok(!failed.includes("pass:mgmt-to-proxy-stats:vie-virt-1 mgmt->vie-proxy-2 mgmt:tcp/8404"));
  const explained = (probe: string, rule?: string) =>
    rule === "mgmt-to-proxy-stats" ||
    rule === "internet-to-proxy-web" ||
    rule?.startsWith("service ") ||
    /^dmz-to-internet-(tcp|udp)$/.test(rule ?? "") ||
    probe.startsWith("pass:internet-to-proxy-web");
  assert.deepEqual(
    r.failures.filter((f) => !explained(f.probe, f.rule)),
    [],
    "every failure follows from the two removals",
  );
  assert.equal(r.denied.blocked, r.denied.tried);
});
