// Falkenstein, the Hetzner dedicated (Robot) example site, as a twin: its hosts booted from their rendered files
// (the vSwitch VLANs on each server's main NIC), the zone policy's probes, and the crash of the active proxy: the
// passive member fences it through the Robot web service stand-in's reset and routes the proxy failover IP to its
// own main IP through POST /failover/{ip}, after which the site's name server answers on that IP again.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SiteTwin } from "../scripts/twin/site";
import { reachability } from "../scripts/twin/reachability";
import { nameServerName } from "../lib/footprint/dns";
import { adapterOf } from "../lib/providers/registry";
import { requireTwin } from "./helpers/twin";

let twin: SiteTwin | undefined;
after(() => twin?.destroy());

/** How long the takeover may take at most (s): the fence grace, the reset and the switch, with room for a loaded CI. */
const TAKEOVER_BOUND_SECONDS = 90;

test("falkenstein (Hetzner Robot) as a twin", { timeout: 400_000 }, async (t) => {
  if (!requireTwin(t)) return;
  twin = await SiteTwin.boot({ location: "falkenstein" });
  const tw = twin;
  assert.equal(adapterOf(tw.model).id, "hetzner-robot");
  const proxy = tw.model.pairs.find((p) => p.role === "proxy")!;
  const passive = proxy.members.find((m) => m !== proxy.active)!;
  const ip = tw.model.public.mode === "provider-failover-ips" ? tw.model.public.declared!.proxy : "";
  const mainIp = (host: string) => tw.world.hosts.find((h) => h.name === host)!.uplink.address;
  const ns = nameServerName(tw.model.name, tw.footprint.domain);
  const ask = async () => {
    const r = await tw
      .machine("internet")
      .exec(["dig", "+short", "+norecurse", "+time=1", "+tries=1", "-b", tw.world.internetClient, `@${ip}`, ns, "A"], { timeoutMs: 5_000 });
    return r.code === 0 ? r.stdout.trim() : "";
  };

  await t.test("reachability: every allowed probe passes and every denied probe is blocked", async () => {
    const r = await reachability(tw);
    t.diagnostic(
      `allowed ${r.allowed.passed}/${r.allowed.tried}, denied ${r.denied.blocked}/${r.denied.tried}, checks ${r.checks.passed}/${r.checks.tried}`,
    );
    assert.deepEqual(r.failures, []);
    assert.ok(r.allowed.tried >= 20 && r.denied.tried >= 20);
    // The segments are VLANs 4000+ (one vSwitch each) on the main NIC, MTU 1400.
    const links = await tw.machine(proxy.active).exec(["ip", "-d", "-o", "link", "show"], { timeoutMs: 5_000 });
    assert.match(links.stdout, /dmz.* mtu 1400 /);
  });

  await t.test("the active proxy crashes: the passive one resets it and switches the failover IP through Robot", async () => {
    assert.equal(tw.routed.get(ip), proxy.active, "the failover IP starts at the active proxy");
    assert.equal(await ask(), ip, "the name server answers on the failover IP before the crash");
    const started = Date.now();
    await tw.crash(proxy.active, "power cut");
    let switchedMs: number | undefined;
    let answeredMs: number | undefined;
    while (Date.now() - started < TAKEOVER_BOUND_SECONDS * 1000 && answeredMs === undefined) {
      if (switchedMs === undefined && tw.routed.get(ip) === passive) switchedMs = Date.now() - started;
      if (switchedMs !== undefined && (await ask()) === ip) answeredMs = Date.now() - started;
      await new Promise((r) => setTimeout(r, 250));
    }
    t.diagnostic(JSON.stringify({ failoverIp: ip, from: proxy.active, to: passive, switchedMs, answeredMs }));
    assert.ok(switchedMs !== undefined, `Robot routed ${ip} to ${passive} within ${TAKEOVER_BOUND_SECONDS} s`);
    assert.ok(answeredMs !== undefined, `the name server answered on ${ip} again within ${TAKEOVER_BOUND_SECONDS} s`);
    // What the web service received: the switch to the survivor's main IP, with basic auth (no credential in the record).
    const calls = readFileSync(join(tw.dir, "api-calls.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { method: string; url: string; status: number; body: string });
    const switches = calls.filter((c) => c.method === "POST" && c.url === `/failover/${ip}` && c.status === 200);
    assert.deepEqual(
      switches.map((c) => c.body),
      [`active_server_ip=${mainIp(passive)}`],
    );
    assert.ok(
      calls.every((c) => c.status !== 401),
      "every call authenticated",
    );
  });
});
