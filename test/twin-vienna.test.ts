// Vienna as a twin: every host booted from its rendered files in its own namespaces with the real daemons
// (scripts/twin/site.ts), reachability probes derived from the zone policy, a planned handover and a crash of
// the active proxy under the load of 800 customers, and the loss of the tracked service. Nothing touches the
// machine's interfaces.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { SiteTwin } from "../scripts/twin/site";
import { reachability, settle } from "../scripts/twin/reachability";
import { failover } from "../scripts/twin/failover";
import { workloadsScenario } from "../scripts/twin/workloads";
import { HolderMonitor } from "../scripts/twin/holders";
import { FENCE_GRACE_SECONDS } from "../lib/render/keepalived";
import { assertNothingLeft, requireTwin } from "./helpers/twin";

let twin: SiteTwin | undefined;
after(() => twin?.destroy());

test("vienna as a twin", { timeout: 300_000 }, async (t) => {
  if (!requireTwin(t)) return;
  twin = await SiteTwin.boot({ location: "vienna" });
  const tw = twin;
  const proxy = tw.model.pairs.find((p) => p.role === "proxy")!;

  await t.test("reachability: every allowed probe passes and every denied probe is blocked", async () => {
    const r = await reachability(tw);
    t.diagnostic(
      `allowed ${r.allowed.passed}/${r.allowed.tried}, denied ${r.denied.blocked}/${r.denied.tried} (${r.denied.controlled} with a proven path), checks ${r.checks.passed}/${r.checks.tried}`,
    );
    assert.deepEqual(r.failures, []);
    assert.ok(r.allowed.tried >= 20 && r.denied.tried >= 20, `at least 20 of each (${r.allowed.tried}, ${r.denied.tried})`);
    assert.equal(r.allowed.passed, r.allowed.tried);
    assert.equal(r.denied.blocked, r.denied.tried);
    assert.equal(r.checks.passed, r.checks.tried);
  });

  await t.test("workloads: every instance answers in its mode through the real ingress; published ports keep to the policy", async () => {
    const w = await workloadsScenario(tw);
    t.diagnostic(
      `${w.workloads.filter((x) => x.ok).length}/${w.workloads.length} answered, ${w.published.filter((p) => p.blocked).length}/${w.published.length} published probes blocked (${w.ms} ms)`,
    );
    // vienna: mail read-write, tickets (standby) and git (reads switched) read-only, at each of 3 hosts and by the public path.
    assert.deepEqual([...new Set(w.workloads.map((x) => `${x.service}:${x.mode}`))].sort(), ["git:ro", "mail:rw", "tickets:ro"]);
    // Four names (tickets answers its public name read-only as well as its standby name), at 3 hosts and publicly.
    assert.equal(w.workloads.length, 4 * 3 + 4);
    assert.deepEqual(
      w.workloads.filter((x) => !x.ok),
      [],
    );
    for (const x of w.workloads.filter((y) => y.path === "ingress"))
      assert.match(x.answer, new RegExp(`^HTTP/1\\.1 200 OK \\| ${x.host} ${x.mode} `));
    // Data: mail's file lands on the export through one host and is read through another; read-only instances refuse.
    assert.deepEqual(
      w.data.map((d) => [d.service, d.write, d.read, d.sameContent, d.readOnlyWrite ?? null]),
      [
        ["mail", 201, 200, true, null],
        ["git", 403, 0, false, 403],
        ["tickets", 403, 0, false, 403],
      ],
    );
    // mail/sieve publishes 4190 on every host; no zone rule sends it: blocked from dmz, data and the same segment.
    assert.equal(w.published.length, 9);
    assert.deepEqual(
      w.published.filter((p) => !p.blocked || !p.control).map((p) => p.id),
      [],
    );
  });

  await t.test("a planned handover of the proxies under 800 clients loses nothing, and neither does the handback", async () => {
    const [handover, handback] = await failover(tw, { pairs: ["proxy"], events: ["handover", "handback"] });
    t.diagnostic(JSON.stringify(handover));
    t.diagnostic(JSON.stringify(handback));
    assert.equal(handover.member, proxy.active);
    assert.ok(handover.takeoverMs !== null && handover.takeoverMs < 15_000, `handed over in ${handover.takeoverMs} ms`);
    assert.ok(handover.requests >= 800 * 4, `${handover.requests} requests in the window`);
    assert.equal(handover.failed, 0, "a planned move fails no request");
    // The connections stayed where they were opened: the member that gave the VIP up still serves them.
    assert.equal(handover.drainedConnections, 800);
    assert.ok(handback.takeoverMs !== null, "the named active member took its role back once the flag was cleared");
    assert.equal(handback.failed, 0);
  });

  await t.test("without the drain on the member that takes over, the same handover resets the open connections", async () => {
    assert.deepEqual(await settle(tw), []);
    // The failover script loads the drain again when it becomes master, but with nothing to pass back.
    await tw.machine(proxy.passive).exec(["nft", "delete", "table", "netdev", "standort_drain"]);
    const [handover] = await failover(tw, { pairs: ["proxy"], events: ["handover", "handback"] });
    t.diagnostic(JSON.stringify(handover));
    assert.ok(handover.failed >= 700, `${handover.failed} of ${handover.requests} failed: the figure above is the drain's doing`);
  });

  await t.test("the active proxy crashes under 800 clients: the other one takes the VIP and customers are served again", async () => {
    const [crash] = await failover(tw, { pairs: ["proxy"], events: ["crash"], restore: false });
    t.diagnostic(JSON.stringify(crash));
    // The crashed member boots again below; if an assertion stops the test first, it still boots, so the later
    // scenarios start from a whole pair instead of failing one after another.
    let restored = false;
    try {
      assert.equal(crash.member, proxy.active);
      assert.ok(crash.takeoverMs !== null && crash.takeoverMs < 15_000, `takeover in ${crash.takeoverMs} ms`);
      // Three missed adverts at 0.2 s: no takeover before the master-down timer (0.72 s), and within a second or so after it.
      assert.ok(crash.takeoverMs >= 600, `a crash sends no farewell advert (${crash.takeoverMs} ms)`);
      assert.ok(crash.requests >= 800 * 5, `${crash.requests} requests in the window`);
      assert.ok(crash.failed > 0 && crash.failed < crash.requests, `${crash.failed} of ${crash.requests} failed`);
      // The longest gap ends well before the window does: customers are served again after the takeover.
      assert.ok(crash.gapMs < crash.windowMs - 3_000, `gap ${crash.gapMs} ms in a ${crash.windowMs} ms window`);
      // The new master's failover script waited the grace period, found its peer silent on every address (no fence
      // can reach a crashed member; Vienna names no second method) and took over.
      const passive = proxy.passive;
      const deadline = Date.now() + (FENCE_GRACE_SECONDS + 20) * 1000;
      const took = () => tw.syslog(passive).some((l) => l.includes(`answers on none of its addresses: treating it as down`));
      while (!took() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      const lines = tw.syslog(passive).filter((l) => l.includes("standort-failover"));
      assert.ok(
        lines.some((l) => l.includes(`became master; waiting ${FENCE_GRACE_SECONDS}s for ${proxy.active} before fencing it`)),
        lines.join("\n"),
      );
      assert.ok(took(), lines.join("\n"));
      // Silent on heartbeat and mgmt: the mgmt fence could not reach it, so none was tried.
      assert.ok(!lines.some((l) => l.includes("fence over mgmt")), lines.join("\n"));

      // The active member boots again and takes the VIP back (preemption, as the renderer intends).
      const vips = proxy.vips.map((v) => v.address);
      const monitor = new HolderMonitor(tw, proxy.members, vips);
      try {
        const boot = Date.now();
        await tw.restore(proxy.active);
        restored = true;
        const back = await monitor.waitFor(boot, HolderMonitor.sole(proxy.active, vips), 20_000);
        assert.ok(back, `${proxy.active} took the VIP back after booting`);
        t.diagnostic(`preemption: ${proxy.active} holds the VIP ${back.at - boot} ms after it booted`);
      } finally {
        await monitor.stop();
      }
    } finally {
      if (!restored) await tw.restore(proxy.active).catch(() => undefined);
    }
  });

  await t.test("losing haproxy makes the active proxy step down; it takes the VIP back when haproxy returns", async () => {
    assert.deepEqual(await settle(tw), []);
    const vips = proxy.vips.map((v) => v.address);
    const monitor = new HolderMonitor(tw, proxy.members, vips);
    try {
      const lost = Date.now();
      await tw.stopUnit(proxy.active, "haproxy");
      const down = await monitor.waitFor(lost, HolderMonitor.sole(proxy.passive, vips), 20_000);
      assert.ok(down, `${proxy.passive} took the VIP after haproxy died on ${proxy.active}`);
      t.diagnostic(`tracked service lost: ${proxy.passive} holds the VIP after ${down.at - lost} ms (fall 2 x interval 2 s)`);
      const back = Date.now();
      await tw.startUnit(proxy.active, "haproxy");
      const up = await monitor.waitFor(back, HolderMonitor.sole(proxy.active, vips), 20_000);
      assert.ok(up, `${proxy.active} took the VIP back`);
      t.diagnostic(`tracked service back: ${proxy.active} holds the VIP after ${up.at - back} ms`);
      const split = monitor.splitBrain(lost, Date.now());
      assert.ok(split.windowMs <= 200, `no two members held the VIP for more than one sample (${split.windowMs} ms)`);
    } finally {
      await monitor.stop();
    }
  });

  await t.test("a cut heartbeat splits nothing: the pair still hears itself over mgmt", async () => {
    assert.deepEqual(await settle(tw), []);
    const vips = proxy.vips.map((v) => v.address);
    const monitor = new HolderMonitor(tw, proxy.members, vips);
    const from = Date.now();
    try {
      tw.cut(proxy.active, proxy.heartbeatSegment, true);
      await new Promise((r) => setTimeout(r, 5_000));
      const split = monitor.splitBrain(from, Date.now());
      assert.equal(split.maxHolders, 1, `one holder at every sample (${JSON.stringify(split)})`);
      assert.equal(await tw.failoverState(proxy.passive, proxy.name), "backup");
    } finally {
      tw.cut(proxy.active, proxy.heartbeatSegment, false);
      await monitor.stop();
    }
  });

  await t.test("keepalived dies on the active member: the other fences it over mgmt with the real sshd, then serves", async () => {
    assert.deepEqual(await settle(tw), []);
    const vips = proxy.vips.map((v) => v.address);
    const monitor = new HolderMonitor(tw, proxy.members, vips);
    try {
      const killed = Date.now();
      const before = tw.effects.length;
      // The VIPs stay on the member whose keepalived died: only the fence ends that.
      await tw.stopUnit(proxy.active, "keepalived");
      const sole = await monitor.waitFor(killed, HolderMonitor.sole(proxy.passive, vips), 20_000);
      assert.ok(sole, `${proxy.passive} alone holds the VIP`);
      const fenced = tw.effects.slice(before).find((e) => e.effect === "poweroff" && e.host === proxy.active);
      assert.ok(fenced, `${proxy.active} was powered off: ${JSON.stringify(tw.effects.slice(before))}`);
      assert.equal(fenced.via, "systemctl poweroff", "by its own fence sshd's forced command");
      const lines = tw.syslog(proxy.passive).filter((l) => l.includes("standort-failover"));
      assert.ok(
        lines.some((l) => l.includes(`fenced ${proxy.active}`)),
        lines.join("\n"),
      );
      const fenceLog = tw.machine(proxy.active).lines("standort-fence");
      assert.ok(
        fenceLog.some((l) => /Accepted publickey for root from \S+ port \d+ ssh2: ED25519/.test(l)),
        fenceLog.join("\n"),
      );
      const split = monitor.splitBrain(killed, Date.now());
      t.diagnostic(
        `keepalived killed: ${proxy.passive} alone after ${sole.at - killed} ms, fenced after ${fenced.at - killed} ms; both held the VIP for ${split.windowMs} ms`,
      );
    } finally {
      await monitor.stop();
      await tw.restore(proxy.active);
    }
  });

  await t.test("a member that cannot fence a peer that still answers steps back", async () => {
    assert.deepEqual(await settle(tw), []);
    const vips = proxy.vips.map((v) => v.address);
    const monitor = new HolderMonitor(tw, proxy.members, vips);
    try {
      // The fence sshd is gone and keepalived dies: the peer answers pings but cannot be powered off.
      await tw.stopUnit(proxy.active, "standort-fence");
      const killed = Date.now();
      await tw.stopUnit(proxy.active, "keepalived");
      const deadline = Date.now() + 20_000;
      const stepped = () => tw.syslog(proxy.passive).some((l) => l.includes(`could not fence ${proxy.active}, which still answers`));
      while (!stepped() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      assert.ok(stepped(), tw.syslog(proxy.passive).join("\n"));
      // FAULT: the VIP leaves the member that could not fence; the member that still has it keeps serving.
      const back = await monitor.waitFor(killed, HolderMonitor.sole(proxy.active, vips), 10_000);
      assert.ok(back, `${proxy.passive} gave the VIP up`);
      // keepalived removes the VIP first, then runs the fault notification.
      let state: string | undefined;
      for (let i = 0; i < 20 && state !== "fault"; i++) {
        state = await tw.failoverState(proxy.passive, proxy.name);
        if (state !== "fault") await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(state, "fault");
      assert.ok(!tw.effects.some((e) => e.effect === "poweroff" && e.host === proxy.active && e.at >= killed));
    } finally {
      await monitor.stop();
      await tw.crash(proxy.active, "reset after the test");
      await tw.restore(proxy.active);
    }
  });

  await t.test("teardown leaves no namespace, mount or process of the twin", () => {
    const { prefix, dir } = tw;
    tw.destroy();
    assertNothingLeft(prefix, dir);
  });
});
