// The footprint's authoritative DNS (lib/footprint/dns.ts): which site each public name answers, that no
// placement makes two sites writable under one name, that every server gets the same zones, and that
// PowerDNS's own tools accept the rendered files and refuse broken ones. Also the alert receiver's validation.
import test from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadFootprint } from "../lib/footprint/load";
import { FAILOVER_TTL_SECONDS, PDNS_CONF, SWITCH_BUDGET_SECONDS, dnsHostFiles, dnsZones, nameServerProblems } from "../lib/footprint/dns";
import { placeAll } from "../lib/footprint/placement";
import { checkFootprint } from "../lib/footprint/policies";
import type { Footprint } from "../lib/footprint/schema";
import { planHostFiles } from "../lib/preview/files";
import { parseStackConfig } from "../lib/model/stack-config";
import { InputError } from "../lib/model/validate";
import { adapterOf } from "../lib/providers/registry";
import { FILE_PLACEHOLDER, RenderedFile } from "../lib/render/types";
import { requireTool, run } from "./helpers/tools";

const { sites, footprint } = loadFootprint();
const site = (name: string) => sites.find((s) => s.name === name)!;
const HELSINKI = "203.0.113.77";

const recordsOf = (f: Footprint, addresses: Record<string, string> = { helsinki: HELSINKI }) =>
  dnsZones(f, sites, addresses).flatMap((z) => z.records);
const withMode = (service: string, mode: "standby" | "read-only" | "promoted"): Footprint => ({
  ...footprint,
  services: footprint.services.map((s) => (s.name === service ? { ...s, mode } : s)),
});

test("a public name answers its primary while the health URL answers there, else the read-only standby", () => {
  const mail = recordsOf(footprint).find((r) => r.name === "mail.example.com")!;
  const vienna = "198.18.4.1"; // vienna's own prefix: its public proxy address
  const karlsruhe = "198.19.20.100"; // karlsruhe's declared proxy failover IP
  assert.equal(mail.type, "LUA");
  assert.equal(mail.ttl, FAILOVER_TTL_SECONDS);
  assert.equal(mail.content, `A "ifurlup('https://mail.example.com/', {{'${vienna}'}, {'${karlsruhe}'}}, {timeout=2})"`);
  // The standby name answers the standby alone, always.
  assert.deepEqual(
    recordsOf(footprint)
      .filter((r) => r.name === "mail-de.standby.example.net")
      .map((r) => [r.type, r.content]),
    [["A", karlsruhe]],
  );
  assert.ok(SWITCH_BUDGET_SECONDS <= 30, `the worst case ${SWITCH_BUDGET_SECONDS} s stays within the 30 s target`);
});

test("no placement lets one public name reach two sites that take writes", () => {
  for (const service of footprint.services) {
    for (const mode of ["standby", "read-only", "promoted"] as const) {
      const f = service.migration ? footprint : withMode(service.name, mode);
      const placement = placeAll(f, sites).find((p) => p.service.name === service.name)!;
      const writers = placement.sites.filter((p) => p.names.some((n) => n.name === service.publicName && n.writes)).map((p) => p.site);
      assert.ok(writers.length <= 1, `${service.name} (${mode}): writers ${writers.join(", ")}`);
      const record = recordsOf(f).filter((r) => r.name === service.publicName);
      if (record.length === 0) continue;
      // The first group of an ifurlup record, or the plain answers, hold at most the one writer's address.
      const firstGroup = record[0].type === "LUA" ? /\{\{([^}]*)\}/.exec(record[0].content)![1] : record.map((r) => r.content).join(",");
      const addresses = firstGroup.match(/\d+\.\d+\.\d+\.\d+/g) ?? [];
      assert.ok(addresses.length <= 1, `${service.name} (${mode}): ${record[0].content}`);
    }
  }
  // Promoted: the name answers the promoted site only, never the old primary.
  const promoted = recordsOf(withMode("mail", "promoted")).filter((r) => r.name === "mail.example.com");
  assert.deepEqual(
    promoted.map((r) => [r.type, r.content]),
    [["A", "198.19.20.100"]],
  );
});

test("a writer whose address is not known yet gets no public record, rather than everyone on the read-only site", () => {
  // helsinki (Hetzner Cloud) is webhosting's primary; its floating IP comes from its stack.
  const unknown = dnsZones(footprint, sites, {});
  assert.equal(
    unknown.flatMap((z) => z.records).find((r) => r.name === "web.example.com"),
    undefined,
  );
  assert.ok(unknown.flatMap((z) => z.notes ?? []).some((n) => n.startsWith("web.example.com (webhosting) is not served")));
  const known = recordsOf(footprint).find((r) => r.name === "web.example.com")!;
  assert.match(known.content, new RegExp(`\\{\\{'${HELSINKI}'\\}, \\{'198\\.18\\.2\\.1'\\}\\}`));
});

test("every site's name servers get the same zones, byte for byte", () => {
  const zonesOf = (name: string) =>
    planHostFiles(site(name), sites, footprint)
      .filter((h) => site(name).hosts.find((x) => x.name === h.host)!.role === "proxy")
      .map((h) =>
        h.files
          .filter((f) => f.path.startsWith("/etc/powerdns/"))
          .map((f) => `${f.path}\n${f.content}`)
          .join("\n"),
      );
  const all = ["frankfurt", "karlsruhe", "vienna"].flatMap(zonesOf);
  assert.equal(all.length, 6);
  assert.ok(all[0].includes("/etc/powerdns/zones/example.com.zone"));
  for (const z of all) assert.equal(z, all[0]);
});

test("the name servers must span two providers, and a public name may not take a name server's name", () => {
  assert.deepEqual(nameServerProblems(sites), []);
  const ionos = sites.filter((s) => adapterOf(s).id === "ionos");
  assert.match(nameServerProblems(ionos)[0], /all sites \(frankfurt, karlsruhe\) are at ionos: add a site at another provider/);
  const taken = {
    ...footprint,
    services: footprint.services.map((s) => (s.name === "mail" ? { ...s, publicName: "vienna.ns.standby.example.net" } : s)),
  };
  assert.ok(
    checkFootprint(taken, sites).some((p) =>
      /publicName vienna\.ns\.standby\.example\.net is the standby domain or a name server's name/.test(p),
    ),
  );
});

/** Runs a file's own check on `content` (what delivery runs on the host). */
async function check(file: RenderedFile, content: string): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "standort-dns-"));
  try {
    const path = join(dir, "staged");
    writeFileSync(path, content);
    const r = await run(file.check!.command.map((w) => (w === FILE_PLACEHOLDER ? path : w)));
    return { code: r.code, out: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("PowerDNS accepts the rendered settings and zones, and refuses broken ones", async (t) => {
  if (!requireTool(t, "pdns_server", "pdnsutil")) return;
  const files = dnsHostFiles(footprint, sites, { helsinki: HELSINKI });
  const conf = files.find((f) => f.path === PDNS_CONF)!;
  assert.equal((await check(conf, conf.content)).code, 0);
  const bad = await check(conf, `${conf.content}lua-health-check-interval=5\n`);
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /unknown setting/);
  for (const zone of files.filter((f) => f.path.endsWith(".zone"))) {
    const ok = await check(zone, zone.content);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, / 0 errors/);
  }
  const zone = files.find((f) => f.path.endsWith("/example.com.zone"))!;
  // A CNAME beside other data at one name (RFC 1034 §3.6.2), an A record that is no address, a name with an empty label.
  // (pdnsutil does not run a LUA record's Lua: a syntax error there shows only when the record is asked for.)
  const broken = [
    `${zone.content}cloud.example.com.\t60\tIN\tCNAME\tother.example.com.\n`,
    `${zone.content}x.example.com.\t60\tIN\tA\t1.2.3\n`,
    `${zone.content}bad..name.example.com.\t60\tIN\tA\t192.0.2.1\n`,
  ];
  for (const content of broken) assert.notEqual((await check(zone, content)).code, 0);
});

test("standort:alerting: each bad receiver is refused naming the stack file, the key and the rule", () => {
  const parse = (alerting: string) => () =>
    parseStackConfig({ "standort:site": "vienna", "standort:alerting": alerting }, "stacks/Pulumi.vienna.yaml");
  const refused = (alerting: string, rule: RegExp) =>
    assert.throws(
      parse(alerting),
      (e: unknown) =>
        e instanceof InputError && e.problems.some((p) => /stacks\/Pulumi\.vienna\.yaml: standort:alerting/.test(p) && rule.test(p)),
    );
  refused("not json", /must be JSON/);
  refused(JSON.stringify({ kind: "webhook", url: "http://hooks.example.org/t" }), /url/);
  refused(JSON.stringify({ kind: "webhook", url: "https://user:pw@hooks.example.org/t" }), /user:password/);
  refused(JSON.stringify({ kind: "email", to: "ops@example.org", from: "a@example.org", smarthost: "mail.example.org:99999" }), /1–65535/);
  refused(
    JSON.stringify({ kind: "email", to: "ops@example.org", from: "a@example.org", smarthost: "mail.example.org:587", username: "a" }),
    /username and password come together/,
  );
  const email = {
    kind: "email",
    to: "ops@example.org",
    from: "a@example.org",
    smarthost: "mail.example.org:587",
    username: "a",
    password: "b",
  };
  const ok = parseStackConfig({ "standort:site": "vienna", "standort:alerting": JSON.stringify(email) }, "stacks/Pulumi.vienna.yaml");
  assert.deepEqual(ok.alerting, email);
});

test("the edge forwards DNS to the proxy VIP and lets the site's own hosts reach its public address (hairpin)", () => {
  const nft = (name: string, host: string) =>
    planHostFiles(site(name), sites, footprint)
      .find((h) => h.host === host)!
      .files.find((f) => f.path === "/etc/nftables.conf")!.content;
  const vienna = nft("vienna", "vie-fw-1");
  assert.match(vienna, /iifname != @internal_ifs ip daddr 198\.18\.4\.1 meta l4proto \{ tcp, udp \} th dport 53 dnat to 10\.30\.0\.4 /);
  assert.match(
    vienna,
    /oifname @internal_ifs ct status dnat ip daddr 10\.30\.0\.4 ip saddr \{ 10\.30\.0\.0\/16, [^}]*198\.19\.40\.21[^}]* \} masquerade/,
  );
  // karlsruhe's proxy failover IP lands on the active proxy itself: no translation at the edge.
  const karlsruhe = nft("karlsruhe", "fkb-fw-1");
  assert.doesNotMatch(karlsruhe, /th dport 53 dnat/);
  assert.doesNotMatch(karlsruhe, /hairpin/);
});
