// The Vienna proxy pair fails over for real: both members run the real
// keepalived with the rendered keepalived.conf and failover script, each in
// its own network namespace, joined through a third namespace holding one
// bridge per segment (scripts/lib/netns-pair.ts; nothing touches the
// machine's interfaces). The test watches the VIP on the dmz interfaces every
// 100 ms while the active member is elected, crashes, comes back, and loses
// its tracked service.
import test, { after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { loadSites } from "../lib/model/load";
import { FENCE_GRACE_SECONDS, renderKeepalivedConfig } from "../lib/render/keepalived";
import { POLL_MS, PairLab, VipMonitor, labSecrets, running, until } from "../scripts/lib/netns-pair";
import { requireNetns, requireTool } from "./helpers/tools";

const vienna = loadSites().find((s) => s.name === "vienna")!;
const pair = vienna.pairs.find((p) => p.role === "proxy")!;
const ACTIVE = pair.active;
const PASSIVE = pair.passive;
const VIP = pair.vips[0];

/** Upper bound for any VRRP transition (3 × advert_int + skew is 3.6 s; generous for slow CI machines). */
const TRANSITION_MS = 15_000;
/** Notify scripts run asynchronously after the transition keepalived logs; they need well under a second. */
const NOTIFY_MS = 3_000;

let lab: PairLab | undefined;
after(() => {
  lab?.destroy();
});

test("the rendered Vienna proxy pair: the pair and the design this test expects", () => {
  assert.equal(ACTIVE, "vie-proxy-1");
  assert.equal(PASSIVE, "vie-proxy-2");
  assert.equal(pair.heartbeatSegment, "hb-proxy");
  assert.deepEqual(VIP, { segment: "dmz", address: "10.30.0.4", prefixLength: 24 });
  const active = renderKeepalivedConfig(vienna, ACTIVE, labSecrets(vienna));
  const passive = renderKeepalivedConfig(vienna, PASSIVE, labSecrets(vienna));
  assert.match(active, /\tstate MASTER\n[^]*\tpriority 150\n/);
  assert.match(passive, /\tstate BACKUP\n[^]*\tpriority 100\n/);
  // No nopreempt: the design is that the active member takes the VIP back whenever it is healthy.
  for (const conf of [active, passive]) assert.doesNotMatch(conf, /nopreempt|preempt_delay/);
  assert.match(active, /\tadvert_int 1\n/);
});

test("keepalived fails the Vienna proxy pair over and back in network namespaces", { timeout: 60_000 }, async (t) => {
  if (!requireTool(t, "keepalived", "ip") || !requireNetns(t)) return;
  const started = performance.now();
  lab = new PairLab({ tag: "fo", model: vienna, pair });
  const l = lab;
  const logs = () =>
    [ACTIVE, PASSIVE]
      .map((h) => `--- ${h} keepalived:\n${l.keepalivedLog(h, 15)}\n--- ${h} failover script:\n${l.failoverLog(h).join("\n")}`)
      .join("\n");
  l.start();
  const monitor = new VipMonitor(l);
  try {
    await t.test("the active member (priority 150) is elected and holds the VIP; the passive member stands by", async () => {
      const elected = await monitor.waitForSoleHolder(ACTIVE, TRANSITION_MS);
      assert.ok(elected, `${ACTIVE} never held ${VIP.address} alone within ${TRANSITION_MS} ms\n${logs()}`);
      t.diagnostic(`election: ${ACTIVE} holds the VIP ${Math.round(elected.at - started)} ms after the lab started`);
      assert.ok(await until(() => l.failoverState(ACTIVE) === "master" && l.failoverState(PASSIVE) === "backup", NOTIFY_MS));
      assert.equal(l.failoverState(ACTIVE), "master");
      assert.equal(l.failoverState(PASSIVE), "backup");
      assert.ok(await until(() => l.activeFlag(ACTIVE), NOTIFY_MS), "the active member raises the proxy-active flag");
      assert.equal(l.activeFlag(PASSIVE), false);
      // The active member never fences: it only takes over from a peer that yielded.
      assert.deepEqual(l.fenceCalls(ACTIVE), []);
    });

    await t.test(
      "a crash of the active member moves the VIP to the passive one, which fences the peer after the grace period",
      async () => {
        const crash = performance.now();
        await l.powerOff(ACTIVE);
        const takeover = await monitor.waitForSoleHolder(PASSIVE, TRANSITION_MS);
        assert.ok(takeover, `${PASSIVE} did not take ${VIP.address} within ${TRANSITION_MS} ms\n${logs()}`);
        const ms = takeover.at - crash;
        t.diagnostic(`takeover after a crash: ${Math.round(ms)} ms (VIP polled every ${POLL_MS} ms)`);
        assert.ok(ms < TRANSITION_MS);
        // At least two seconds: the passive member waited out the master-down timer (3 × 1 s + skew after the
        // last advert), i.e. the crash sent no farewell advert (priority 0) that would have made it fast.
        assert.ok(ms >= 2_000, `takeover in ${Math.round(ms)} ms is too fast for a crash without a farewell advert`);
        assert.ok(await until(() => l.failoverState(PASSIVE) === "master", NOTIFY_MS), logs());
        // The failover script waits the grace period for a rebooting active member, then fences it.
        const expected = vienna.provider.kind === "preprovisioned" ? vienna.provider.fenceCommand.replace(/%h/g, ACTIVE) : "";
        assert.match(expected, /^ssh /);
        assert.ok(await until(() => l.fenceCalls(PASSIVE).length > 0, FENCE_GRACE_SECONDS * 1000 + 5_000), `no fence call\n${logs()}`);
        const fencedAfter = performance.now() - takeover.at;
        t.diagnostic(`fence command ran ${Math.round(fencedAfter)} ms after the takeover (grace ${FENCE_GRACE_SECONDS} s)`);
        assert.ok(fencedAfter >= FENCE_GRACE_SECONDS * 1000 - 1_000, "fencing waited the grace period");
        assert.deepEqual(l.fenceCalls(PASSIVE), [expected.replace(/^ssh /, "")]);
        assert.ok(await until(() => l.activeFlag(PASSIVE), NOTIFY_MS), logs());
        assert.ok(l.failoverLog(PASSIVE).includes(`${pair.name}: fenced ${ACTIVE}`), logs());
      },
    );

    await t.test("the active member comes back and takes the VIP back (preempt, as the renderer intends)", async () => {
      const boot = performance.now();
      l.boot(ACTIVE);
      const back = await monitor.waitForSoleHolder(ACTIVE, TRANSITION_MS);
      assert.ok(back, `${ACTIVE} did not take ${VIP.address} back within ${TRANSITION_MS} ms\n${logs()}`);
      t.diagnostic(`preemption: ${ACTIVE} holds the VIP again ${Math.round(back.at - boot)} ms after it booted`);
      assert.ok(await until(() => l.failoverState(ACTIVE) === "master" && l.failoverState(PASSIVE) === "backup", NOTIFY_MS), logs());
      assert.ok(await until(() => l.activeFlag(ACTIVE) && !l.activeFlag(PASSIVE), NOTIFY_MS), "the active flag follows the VIP");
    });

    await t.test(
      "losing the tracked service (haproxy) makes the active member step down; it takes the VIP back when the service returns",
      async () => {
        assert.deepEqual(l.tracked, ["haproxy_running"]);
        const lost = performance.now();
        l.setService(ACTIVE, "haproxy_running", false);
        const stepDown = await monitor.waitForSoleHolder(PASSIVE, TRANSITION_MS);
        assert.ok(stepDown, `${PASSIVE} did not take ${VIP.address} after ${ACTIVE} lost haproxy\n${logs()}`);
        t.diagnostic(`tracked service lost: ${PASSIVE} holds the VIP ${Math.round(stepDown.at - lost)} ms later (fall 2 × interval 2 s)`);
        assert.ok(await until(() => l.failoverState(ACTIVE) === "fault" && l.failoverState(PASSIVE) === "master", NOTIFY_MS), logs());
        assert.equal(l.activeFlag(ACTIVE), false, "a faulty member drops the active flag");

        const restored = performance.now();
        l.setService(ACTIVE, "haproxy_running", true);
        const back = await monitor.waitForSoleHolder(ACTIVE, TRANSITION_MS);
        assert.ok(back, `${ACTIVE} did not take ${VIP.address} back after haproxy returned\n${logs()}`);
        t.diagnostic(`tracked service back: ${ACTIVE} holds the VIP again ${Math.round(back.at - restored)} ms later`);
        assert.ok(await until(() => l.failoverState(ACTIVE) === "master" && l.failoverState(PASSIVE) === "backup", NOTIFY_MS), logs());
        // The passive member was master for less than the grace period, so its script must not fence.
        const notFencing = `${pair.name}: no longer master: ${ACTIVE} is back; not fencing`;
        const graceLeft = FENCE_GRACE_SECONDS * 1000 - (performance.now() - stepDown.at);
        assert.ok(graceLeft > 0, "the active member came back within the grace period");
        assert.ok(await until(() => l.failoverLog(PASSIVE).includes(notFencing), graceLeft + 3_000), logs());
        assert.equal(l.fenceCalls(PASSIVE).length, 1, "only the crash was fenced");
      },
    );
  } finally {
    await monitor.stop();
  }

  await t.test(`no split brain: both members never held the VIP in two consecutive ${POLL_MS} ms samples`, () => {
    // Handing back is make-before-break: the returning member adds the VIP when it enters MASTER and the
    // other removes it on the first advert it receives, milliseconds later. One sample may fall in that
    // gap; two in a row (≥ 100 ms both holding) would be a real split brain.
    const gaps = monitor.samples.slice(1).map((s, i) => s.at - monitor.samples[i].at);
    assert.ok(monitor.samples.length > 100, `the monitor ran (${monitor.samples.length} samples)`);
    assert.ok(Math.max(...gaps) < 1_000, `the monitor never stalled for a second (longest gap ${Math.round(Math.max(...gaps))} ms)`);
    const worst = monitor.longestSplitBrain();
    t.diagnostic(`${monitor.samples.length} samples; longest run with both holding the VIP: ${worst.samples}`);
    assert.ok(worst.samples <= 1, `both members held ${VIP.address} for ${worst.samples} consecutive samples`);
  });

  await t.test("teardown leaves no namespace and no process of the lab", async () => {
    const namespaces = l.namespaces();
    const killed = l.destroy();
    assert.ok(killed.length >= 4, `keepalived and its VRRP child on both members were running (${killed.join(", ")})`);
    assert.ok(await until(() => !killed.some(running), 2_000), `still running: ${killed.filter(running).join(", ")}`);
    const listed = execFileSync("ip", ["netns", "list"], { encoding: "utf8" });
    for (const ns of namespaces) assert.ok(!listed.includes(ns), `${ns} was removed`);
  });
  t.diagnostic(`total ${Math.round(performance.now() - started)} ms`);
});
