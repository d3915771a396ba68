// The twin's pure parts: its world around a site, the evaluator that reads the zone policy for a concrete
// flow, and the probes derived from the policy (never written by hand). No namespaces needed.
import test from "node:test";
import assert from "node:assert/strict";
import { loadFootprint } from "../lib/footprint/load";
import { loadSites } from "../lib/model/load";
import { siteRenderOptions } from "../lib/preview/files";
import { partnerSites, zonePolicy } from "../lib/render/policy";
import { Endpoint, allowingRule, deriveProbes, endpoints } from "../lib/twin/probes";
import { TwinInputError, allowlistClient, twinWorld } from "../lib/twin/world";
import { parseTwinFlags } from "../scripts/twin";
import { LoadRecord, windowFigures } from "../scripts/twin/loads";
import { InputError } from "../lib/model/validate";
import { tempSites } from "./helpers/sites";

const { sites, footprint } = loadFootprint();

function context(name: string) {
  const model = sites.find((s) => s.name === name)!;
  const options = siteRenderOptions(model, sites, footprint);
  const policy = zonePolicy(model, partnerSites(model, sites, options.tunnelPeers), options.services, options.tunnelPeers);
  const world = twinWorld(model, sites, options.tunnelPeers);
  return { model, policy, world, services: options.services, all: endpoints(model, world, sites) };
}

const vienna = context("vienna");
const at = (label: string, all: ReadonlyArray<Endpoint> = vienna.all) => {
  const e = all.find((x) => x.label === label);
  assert.ok(e, `no endpoint ${label} (have ${all.map((x) => x.label).join(", ")})`);
  return e;
};
const rule = (from: string, to: string, protocol: "tcp" | "udp" | "icmp", port?: number, policy = vienna.policy) =>
  allowingRule(vienna.model, policy, vienna.all, { from: at(from), to: at(to), protocol, port })?.name;

test("the evaluator reads the policy for concrete flows, the public proxy address translated to the VIP", () => {
  assert.equal(rule("internet client", "public proxy address", "tcp", 443), "internet-to-proxy-web");
  assert.equal(rule("internet client", "public proxy address", "tcp", 22), undefined);
  assert.equal(rule("vie-virt-1 app", "storage VIP data", "tcp", 2049), "app-to-data-nfs");
  assert.equal(rule("vie-virt-1 app", "vie-stor-1 data", "tcp", 2049), undefined, "NFS only through the storage VIP");
  assert.equal(rule("vie-proxy-1 dmz", "vie-stor-1 data", "tcp", 2049), undefined, "NFS only from app");
  assert.equal(rule("karlsruhe data", "vie-virt-1 app", "tcp", 5432), "partner-karlsruhe-to-app-databases");
  assert.equal(rule("karlsruhe data", "vie-virt-1 app", "tcp", 22), undefined);
  assert.equal(rule("vie-virt-1 mgmt", "vie-proxy-1 mgmt", "tcp", 8404), "mgmt-to-proxy-stats");
  assert.equal(rule("vie-virt-1 app", "internet client", "tcp", 443), "app-to-internet-tcp");
  assert.equal(rule("vie-virt-1 app", "internet client", "tcp", 25), undefined);
  assert.equal(rule("vie-virt-1 app", "karlsruhe data", "tcp", 443), undefined, "egress is not replication");
  assert.equal(rule("allowlist 198.19.255.10", "vie-stor-1 public", "tcp", 22), "allowlist-to-ssh");
  assert.equal(rule("internet client", "vie-stor-1 public", "tcp", 22), undefined);
  // A rule bound to a segment's link reaches that segment only: SSH from mgmt to another host's app address is not it.
  assert.equal(rule("vie-proxy-1 mgmt", "vie-virt-1 app", "tcp", 22), undefined);
  // Without the rule, the same flow is denied: the verdict comes from the data.
  const without = vienna.policy.filter((r) => r.name !== "app-to-data-nfs");
  assert.equal(rule("vie-virt-1 app", "storage VIP data", "tcp", 2049, without), undefined);
});

test("probes are derived from the policy: every rule is exercised, denied pairs are probed, and the derivation is stable", () => {
  const input = { model: vienna.model, sites, policy: vienna.policy, services: vienna.services, world: vienna.world };
  const { probes, checks } = deriveProbes(input);
  const allowed = probes.filter((p) => p.expect === "pass");
  const denied = probes.filter((p) => p.expect === "blocked");
  assert.ok(allowed.length >= 20 && denied.length >= 20, `${allowed.length} allowed, ${denied.length} denied`);
  const exercised = new Set([...allowed.map((p) => p.rule), ...checks.map((c) => c.rule)]);
  assert.deepEqual(
    vienna.policy.map((r) => r.name).filter((n) => !exercised.has(n)),
    [],
    "every allow rule has a probe or a state check",
  );
  assert.equal(new Set(probes.map((p) => p.id)).size, probes.length, "ids are unique");
  assert.deepEqual(deriveProbes(input), { probes, checks }, "same input, same probes");
  // Each denied probe is denied by the evaluator, each allowed one allowed by its rule.
  for (const p of denied) assert.equal(p.rule, undefined);
  // One service probe per name the site answers, in the mode the footprint gives it.
  const services = allowed.filter((p) => p.id.startsWith("pass:service:"));
  assert.deepEqual(
    services.map((p) => [p.action.sni, p.mode]),
    [
      ["git.example.com", "8444"],
      ["mail.example.com", "8443"],
      // Vienna stands by for tickets: its public name read-only (the DNS switch), and its standby name.
      ["support.example.com", "8444"],
      ["tickets-at.standby.example.net", "8444"],
    ],
  );
  // Egress is expected through the own prefix's NAT address.
  assert.ok(allowed.filter((p) => p.rule === "app-to-internet-tcp").every((p) => p.seenAs === "198.18.4.65"));

  // A rule taken out of the policy takes its probes with it and nothing else.
  const stats = allowed.filter((p) => p.rule === "mgmt-to-proxy-stats");
  assert.deepEqual(
    stats.map((p) => p.id),
    [
      "pass:mgmt-to-proxy-stats:vie-virt-1 mgmt->vie-proxy-1 mgmt:tcp/8404",
      "pass:mgmt-to-proxy-stats:vie-virt-1 mgmt->vie-proxy-2 mgmt:tcp/8404",
    ],
  );
  const narrowed = deriveProbes({ ...input, policy: vienna.policy.filter((r) => r.name !== "mgmt-to-proxy-stats") });
  assert.deepEqual(
    narrowed.probes.filter((p) => p.expect === "pass").map((p) => p.id),
    allowed.filter((p) => p.rule !== "mgmt-to-proxy-stats").map((p) => p.id),
  );
});

test("every committed location derives probes, and the allowlist client lies inside its prefix", () => {
  for (const name of ["frankfurt", "helsinki", "karlsruhe", "vienna"]) {
    const c = context(name);
    const { probes, checks } = deriveProbes({ model: c.model, sites, policy: c.policy, services: c.services, world: c.world });
    assert.ok(probes.filter((p) => p.expect === "pass").length >= 20, name);
    assert.ok(probes.filter((p) => p.expect === "blocked").length >= 20, name);
    assert.ok(
      checks.some((x) => x.kind === "vrrp"),
      name,
    );
  }
  assert.equal(allowlistClient("198.19.255.0/24"), "198.19.255.10");
  assert.equal(allowlistClient("203.0.113.7/32"), "203.0.113.7");
  const lan = context("frankfurt").world.provider;
  assert.equal(
    lan.kind === "lan" ? lan.gateways.join(",") : lan.kind,
    "198.19.10.1,198.19.10.2",
    "the BGP peers are the provider's routers",
  );
});

test("the twin refuses a site whose provider addresses it cannot stand in for, naming file and field", () => {
  const temp = tempSites();
  try {
    temp.edit("vienna", (d) => {
      d.provider.hosts[8].address = "198.19.41.43";
    });
    const edited = loadSites(temp.dir);
    const model = edited.find((s) => s.name === "vienna")!;
    assert.throws(
      () => twinWorld(model, edited, siteRenderOptions(model, edited, footprint).tunnelPeers),
      (e: TwinInputError) =>
        e.problems.join("\n") ===
        "sites/vienna.yaml: provider.hosts[8].address: 198.19.41.43 is outside the provider LAN 198.19.40.0/24 the twin builds from vie-fw-1's address",
    );
  } finally {
    temp.dispose();
  }
});

test("twin flags are validated like every input: unknown flags and scenarios are refused with the flag named", () => {
  assert.deepEqual(parseTwinFlags(["vienna", "--scenario", "failover", "--json", "out.json"]), {
    location: "vienna",
    scenario: "failover",
    json: "out.json",
    hold: false,
  });
  const refused = (argv: string[]) => {
    try {
      parseTwinFlags(argv);
      return "accepted";
    } catch (error) {
      assert.ok(error instanceof InputError);
      return error.problems.join("\n");
    }
  };
  assert.match(refused(["vienna", "--scenario", "chaos"]), /^twin: scenario: /);
  assert.match(refused(["vienna", "--bogus"]), /^twin: --bogus: unknown flag \(known: /);
  // A second location is the partner of the pair twin; a third is refused, and each mode has its own scenarios.
  assert.deepEqual(parseTwinFlags(["vienna", "karlsruhe", "--scenario", "tunnels"]), {
    location: "vienna",
    partner: "karlsruhe",
    scenario: "tunnels",
    hold: false,
  });
  assert.equal(
    refused(["vienna", "karlsruhe", "graz"]),
    "twin: expected at most 2 arguments (location, partner), got vienna karlsruhe graz",
  );
  assert.match(
    refused(["vienna", "karlsruhe", "--scenario", "failover"]),
    /^twin: scenario: with a partner location the scenarios are tunnels, dns, data, all, none/,
  );
  assert.match(refused(["vienna", "--scenario", "tunnels"]), /^twin: scenario: for one location the scenarios are reachability, /);
  assert.match(refused(["vienna", "karlsruhe", "--files", "/tmp"]), /^twin: files: the pair twin renders both locations itself/);
  assert.match(refused(["vienna", "Karlsruhe!"]), /^twin: partner: /);
  assert.match(refused(["Vienna!"]), /^twin: location: /);
  assert.match(refused([]), /^twin: location: is required/);
});

test("window figures: requests started in the window, those that failed, the longest gap between successes", () => {
  // [start, end, ok]: successes end at 1000, 1500 and 4000; one request fails.
  const records: LoadRecord[] = [
    [900, 1000, 1],
    [1400, 1500, 1],
    [2000, 4000, 0],
    [3900, 4000, 1],
    [9000, 9100, 1],
  ];
  assert.deepEqual(windowFigures(records, 1000, 5000), { requests: 3, failed: 1, gapMs: 2500 });
  // A window without any success is one gap from start to end.
  assert.deepEqual(windowFigures(records, 5000, 8000), { requests: 0, failed: 0, gapMs: 3000 });
});
