// Frankfurt as a twin: the own /23 announced by BGP from both firewalls (the passive one prepends) to the
// provider's two routers (BIRD, with the sessions' passwords from the rendered files). Reachability, and a
// crash of the active firewall under load: the provider's route to the /23 must follow the passive firewall,
// and long-lived connections through the NAT survive it (conntrackd), which they do not without conntrackd.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { SiteTwin } from "../scripts/twin/site";
import { reachability } from "../scripts/twin/reachability";
import { failover } from "../scripts/twin/failover";
import { currentHolder } from "../scripts/twin/holders";
import { assertNothingLeft, requireTwin } from "./helpers/twin";

let twin: SiteTwin | undefined;
after(() => twin?.destroy());

test("frankfurt as a twin", { timeout: 420_000 }, async (t) => {
  if (!requireTwin(t)) return;
  twin = await SiteTwin.boot({ location: "frankfurt" });
  const tw = twin;
  const pub = tw.model.public;
  if (pub.mode !== "own-prefix" || pub.routing.kind !== "bgp") throw new Error("frankfurt announces its own prefix by BGP");
  const routing = pub.routing;
  const fw = tw.model.pairs.find((p) => p.role === "firewall")!;
  const uplink = (host: string) => tw.world.hosts.find((h) => h.name === host)!.uplink.address;

  await t.test("reachability, with both BGP sessions of both routers established", async () => {
    const r = await reachability(tw);
    t.diagnostic(
      `allowed ${r.allowed.passed}/${r.allowed.tried}, denied ${r.denied.blocked}/${r.denied.tried}, checks ${r.checks.passed}/${r.checks.tried}`,
    );
    assert.deepEqual(r.failures, []);
    assert.equal(
      r.checks.tried,
      3 * 2 + routing.peers.length + 1 + 2 + 1,
      "a VRRP check per pair and path (heartbeat, mgmt), a BGP check per peer, the firewalls' conntrackd sync, DNS over UDP and TCP, the Alertmanager cluster",
    );
    assert.ok(r.allowed.tried >= 20 && r.denied.tried >= 20);
    // Both firewalls announce; the provider prefers the active one (the passive prepends its AS).
    const route = await tw.machine("provider").exec(["ip", "-4", "route", "show", pub.prefix]);
    assert.match(route.stdout, new RegExp(`via ${uplink(fw.active).replace(/\./g, "\\.")} `));
  });

  await t.test(
    "a crash of the active firewall: the passive one takes the gateways, and the provider's route to the /23 follows it",
    async () => {
      const [crash] = await failover(tw, { pairs: ["firewall"], events: ["crash"] });
      t.diagnostic(JSON.stringify(crash));
      assert.ok(crash.takeoverMs !== null && crash.takeoverMs < 15_000, `gateways after ${crash.takeoverMs} ms`);
      assert.ok(crash.publicMs !== undefined && crash.publicMs !== null, "the route followed");
      // A dead firewall sends no withdrawal: the provider's routers notice by the 9 s hold time (BIRD's log says
      // "Hold timer expired"), counted from the last keepalive (every 3 s) the dead firewall sent.
      assert.ok(crash.publicMs < 15_000, `route after ${crash.publicMs} ms`);
      const session = fw.active.replace(/-/g, "_");
      assert.ok(
        tw
          .machine("provider")
          .lines("bird")
          .some((l) => l.includes(`${session}: Error: Hold timer expired`)),
        tw.machine("provider").tail("bird"),
      );
      assert.ok(crash.gapMs < crash.windowMs - 3_000, `served again: gap ${crash.gapMs} ms in ${crash.windowMs} ms`);
      // conntrackd gave the passive firewall the NAT of every connection: long-lived streams carry on.
      assert.equal(crash.streamsOpen, 100);
      assert.equal(crash.streamsKept, 100, "every long-lived stream through the NAT survived the takeover");
    },
  );

  await t.test("without conntrackd on the standby, the same crash breaks every long-lived stream", async () => {
    // The crashed firewall is back; it takes its role again once its BGP sessions are up (the provider's
    // routers wait before they accept a session that failed).
    const deadline = Date.now() + 90_000;
    while ((await currentHolder(tw, fw)) !== fw.active && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(await currentHolder(tw, fw), fw.active, `${fw.active} serves again`);
    const standby = fw.passive;
    await tw.stopUnit(standby, "conntrackd");
    const [crash] = await failover(tw, { pairs: ["firewall"], events: ["crash"] });
    t.diagnostic(JSON.stringify(crash));
    assert.equal(crash.member, fw.active);
    assert.equal(crash.streamsOpen, 100);
    assert.equal(crash.streamsKept, 0, "the figure is conntrackd's doing");
  });

  await t.test("teardown leaves no namespace, mount or process of the twin", () => {
    const { prefix, dir } = tw;
    tw.destroy();
    assertNothingLeft(prefix, dir);
  });
});
