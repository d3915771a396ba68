// Components under the Pulumi mock runtime: secrets, naming, parents, ordering.
import test from "node:test";
import assert from "node:assert/strict";
import * as command from "@pulumi/command";
import { loadSites } from "../lib/model/load";
import { SiteModel } from "../lib/model/model";
import { MockRunResult, mockId, runUnderMocks } from "../lib/preview/harness";
import { planStack } from "../lib/preview/run-stack";
import { Site } from "../components/site";

const sites = loadSites();
const site = (name: string): SiteModel => sites.find((s) => s.name === name)!;
const byUrn = (run: MockRunResult) => new Map(run.resources.map((r) => [r.urn, r]));

test("the VRRP secret stays a secret in a consumer's inputs and in outputs, and its value never shows", async () => {
  const run = await runUnderMocks({
    stack: "vienna",
    program: () => {
      const s = new Site("vienna", { model: site("vienna"), partner: site("karlsruhe"), sites });
      // Stands in for the delivery that will ship keepalived.conf: the secret must arrive as a secret.
      new command.remote.Command("consumer", {
        connection: { host: "198.19.40.21" },
        create: "cat > /etc/keepalived/auth",
        stdin: s.proxy.pair.vrrpAuthPass,
      });
      return { auth: s.proxy.pair.vrrpAuthPass, active: s.proxy.pair.active };
    },
  });
  const consumer = run.resources.find((r) => r.name === "consumer")!;
  assert.equal(consumer.inputs.stdin, "[secret]");
  assert.equal(consumer.inputs.create, "cat > /etc/keepalived/auth");
  assert.deepEqual(run.outputs, { active: "vie-proxy-1", auth: "[secret]" });
  assert.ok(!JSON.stringify(run).includes("mock-password"), "the generated password never appears in clear");
  const passwords = run.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword");
  assert.deepEqual(
    passwords.map((p) => [p.name, p.inputs.length, p.inputs.special]),
    [
      ["vienna-fw-pair-vrrp-auth", 8, false],
      ["vienna-proxy-pair-vrrp-auth", 8, false],
      ["vienna-stor-pair-vrrp-auth", 8, false],
    ],
  );
  // One secret per pair: each password is a child of its own pair.
  const resources = byUrn(run);
  assert.deepEqual(
    passwords.map((p) => resources.get(p.parent!)?.name),
    ["vienna-fw-pair", "vienna-proxy-pair", "vienna-stor-pair"],
  );
});

test("every child is named after its parent plus a stable key, under a standort:<module>:<Type> component", async () => {
  for (const stack of ["helsinki", "vienna"]) {
    const run = await planStack(stack);
    const resources = byUrn(run);
    for (const r of run.resources) {
      if (r.type.startsWith("standort:")) assert.match(r.type, /^standort:[a-z]+:[A-Z][A-Za-z]+$/, r.type);
      const parent = r.parent ? resources.get(r.parent) : undefined;
      if (!parent || parent.type === "pulumi:pulumi:Stack") continue;
      assert.ok(r.name.startsWith(parent.name), `${r.type} ${r.name} is not named after its parent ${parent.name}`);
    }
    const names = run.resources.map((r) => `${r.type}::${r.name}`);
    assert.equal(new Set(names).size, names.length, "names are unique per type");
  }
});

test("hcloud servers wait for the cloud firewalls; the route waits for every subnet", async () => {
  const run = await planStack("helsinki");
  const firewalls = run.resources
    .filter((r) => r.type === "hcloud:index/firewall:Firewall")
    .map((r) => r.name)
    .sort();
  assert.deepEqual(firewalls, ["helsinki-fw-firewall", "helsinki-fw-proxy", "helsinki-fw-storage", "helsinki-fw-virtualization"]);
  for (const server of run.resources.filter((r) => r.type === "hcloud:index/server:Server")) {
    assert.deepEqual(
      [...server.dependsOn].filter((d) => d.startsWith("helsinki-fw-") && firewalls.includes(d)).sort(),
      firewalls,
      server.name,
    );
  }
  const route = run.resources.find((r) => r.type === "hcloud:index/networkRoute:NetworkRoute")!;
  const subnets = run.resources.filter((r) => r.type === "hcloud:index/networkSubnet:NetworkSubnet").map((r) => r.name);
  assert.equal(subnets.length, 7);
  for (const subnet of subnets) assert.ok(route.dependsOn.includes(subnet), `the route waits for ${subnet}`);
});

test("pairs fence through the provider's API or the site's command, and keep identical time on both members", async () => {
  for (const [name, partner] of [
    ["helsinki", "frankfurt"],
    ["vienna", "karlsruhe"],
  ] as const) {
    const run = await runUnderMocks({
      stack: name,
      program: () => {
        const s = new Site(name, { model: site(name), partner: site(partner), sites, sshPublicKey: "ssh-ed25519 AAAA test" });
        return { fencing: s.storage.pair.fencing, takeover: s.proxy.pair.takeover, time: s.firewall.pair.timeSources };
      },
    });
    const o = run.outputs as Record<string, any>;
    assert.deepEqual(o.time, {
      [`${site(name).code}-fw-1`]: site(name).time.servers,
      [`${site(name).code}-fw-2`]: site(name).time.servers,
    });
    if (name === "helsinki") {
      const server = run.resources.find((r) => r.type === "hcloud:index/server:Server" && r.name === "helsinki-stor-2")!;
      assert.equal(o.fencing.method, "provider-api");
      assert.match(
        o.fencing.fence["hel-stor-2"].run,
        new RegExp(`/v1/servers/${mockId(`${server.type}::${server.name}`)}/actions/poweroff$`),
      );
      assert.match(
        o.takeover[2],
        /^move failover address proxy: Hetzner floating IP homed in hel1; the member that becomes active assigns it to itself/,
      );
      assert.match(o.takeover[3], /change_alias_ips/);
    } else {
      assert.deepEqual(o.fencing, {
        method: "command",
        description: "run the site's fence command against the failed member; its exit status is the proof it is off",
        fence: {
          "vie-stor-1": { run: "ssh -o ConnectTimeout=5 root@vie-stor-1 systemctl poweroff --force --force" },
          "vie-stor-2": { run: "ssh -o ConnectTimeout=5 root@vie-stor-2 systemctl poweroff --force --force" },
        },
      });
      assert.equal(
        o.takeover.length,
        3,
        "at an own-prefix site the firewall holds the public addresses; the proxy pair moves only its VIP",
      );
      assert.match(o.takeover[2], /gratuitous ARP/);
    }
  }
});

test("a site refuses a partner that is not its own", () => {
  assert.throws(
    () => new Site("vienna", { model: site("vienna"), partner: site("helsinki") }),
    /helsinki is not the partner of vienna \(karlsruhe is\)/,
  );
});
