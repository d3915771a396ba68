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

test("the fence keys stay secret in a consumer's inputs and in outputs, and no private key ever shows", async () => {
  const run = await runUnderMocks({
    stack: "vienna",
    program: () => {
      const s = new Site("vienna", { model: site("vienna"), partners: [site("karlsruhe")], sites });
      // Stands in for the delivery that will ship the key: the secret must arrive as a secret.
      new command.remote.Command("consumer", {
        connection: { host: "198.19.40.21" },
        create: "cat > /etc/standort/fence/id_ed25519",
        stdin: s.proxy.pair.fenceKeys.apply((k) => k["vie-proxy-1"].clientKey),
      });
      return { keys: s.proxy.pair.fenceKeys, active: s.proxy.pair.active };
    },
  });
  const consumer = run.resources.find((r) => r.name === "consumer")!;
  assert.equal(consumer.inputs.stdin, "[secret]");
  assert.equal(consumer.inputs.create, "cat > /etc/standort/fence/id_ed25519");
  assert.deepEqual(run.outputs, { active: "vie-proxy-1", keys: "[secret]" });
  assert.ok(!JSON.stringify(run).includes("OPENSSH PRIVATE KEY"), "no private key appears in clear");
  const keys = run.resources.filter((r) => r.type === "tls:index/privateKey:PrivateKey");
  // Two keys per member (its fence sshd's host key, its client key), each a child of its own pair, Ed25519.
  const resources = byUrn(run);
  assert.deepEqual(
    keys.map((k) => [k.name, k.inputs.algorithm, resources.get(k.parent!)?.name]),
    ["fw", "proxy", "stor"].flatMap((pair) => {
      const members =
        pair === "fw" ? ["vie-fw-1", "vie-fw-2"] : pair === "proxy" ? ["vie-proxy-1", "vie-proxy-2"] : ["vie-stor-1", "vie-stor-2"];
      return ["client", "host"].flatMap((purpose) =>
        members.map((m) => [`vienna-${pair}-pair-fence-${purpose}-${m}`, "ED25519", `vienna-${pair}-pair`]),
      );
    }),
  );
  assert.equal(run.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword" && /vrrp/.test(r.name)).length, 0);
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

test("pairs fence over mgmt first, then through the provider's API, and keep identical time on both members", async () => {
  for (const [name, partner] of [
    ["helsinki", "frankfurt"],
    ["vienna", "karlsruhe"],
  ] as const) {
    const run = await runUnderMocks({
      stack: name,
      program: () => {
        const s = new Site(name, { model: site(name), partners: [site(partner)], sites, sshPublicKey: "ssh-ed25519 AAAA test" });
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
      assert.match(o.fencing.fence["hel-stor-2"][0].run, /^ssh -p 2201 /);
      assert.match(
        o.fencing.fence["hel-stor-2"][1].run,
        new RegExp(`/v1/servers/${mockId(`${server.type}::${server.name}`)}/actions/poweroff `),
      );
      assert.match(
        o.takeover[2],
        /^move failover address proxy: Hetzner floating IP homed in hel1; the member that becomes active assigns it to itself/,
      );
      assert.match(o.takeover[3], /change_alias_ips/);
    } else {
      const mgmt = (m: string) => site(name).pairs.find((p) => p.role === "storage")!.mgmt[m];
      assert.deepEqual(o.fencing, {
        description:
          "power off the failed member through the peer's fence sshd over mgmt (port 2201, a key generated for the pair that may only power the peer off); a member that cannot be reached on any address counts as down",
        fence: {
          "vie-stor-1": [{ run: `ssh -p 2201 -i /etc/standort/fence/id_ed25519 root@${mgmt("vie-stor-1")} (forced command: power off)` }],
          "vie-stor-2": [{ run: `ssh -p 2201 -i /etc/standort/fence/id_ed25519 root@${mgmt("vie-stor-2")} (forced command: power off)` }],
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
    () => new Site("vienna", { model: site("vienna"), partners: [site("helsinki")] }),
    /helsinki is not the partner of vienna \(karlsruhe is\)/,
  );
  // The sites it stands by for come after the own partner, and each must name it as partner.
  assert.throws(
    () => new Site("vienna", { model: site("vienna"), partners: [site("karlsruhe"), site("helsinki")] }),
    /helsinki is not a partner of vienna \(its partner is frankfurt\)/,
  );
});
