/**
 * Benchmark: how long the Vienna proxy pair takes to fail over, measured with
 * the real keepalived in network namespaces (scripts/lib/netns-pair.ts, the
 * same lab as test/failover-netns.test.ts). One lab, N cycles of: crash the
 * active member (SIGSTOP + SIGKILL, links gone), time until the passive member
 * holds the VIP alone; boot the active member again, time until it has taken
 * the VIP back. Needs root, `ip` and `keepalived`; touches no real interface.
 *
 *   npx tsx scripts/failover-bench.ts [runs]    (default 5; FAILOVER_BENCH_RUNS also works)
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { loadSites } from "../lib/model/load";
import { renderKeepalivedConfig } from "../lib/render/keepalived";
import { POLL_MS, PairLab, VipMonitor, labSecrets, median, until } from "./lib/netns-pair";

const runs = Number(process.argv[2] ?? process.env.FAILOVER_BENCH_RUNS ?? 5);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`runs must be a positive integer, got ${process.argv[2] ?? process.env.FAILOVER_BENCH_RUNS}`);
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error("failover-bench needs root (it creates network namespaces and runs keepalived)");
  process.exit(2);
}
for (const tool of ["ip", "keepalived"]) {
  try {
    execFileSync("sh", ["-c", `command -v ${tool} || test -x /usr/sbin/${tool}`], { stdio: "ignore" });
  } catch {
    console.error(`failover-bench needs ${tool}`);
    process.exit(2);
  }
}

/** Bound for one VRRP transition; a cycle that exceeds it is a failure, not a slow figure. */
const TRANSITION_MS = 15_000;

const vienna = loadSites().find((s) => s.name === "vienna")!;
const pair = vienna.pairs.find((p) => p.role === "proxy")!;
const advert = /\tadvert_int (\d+)\n/.exec(renderKeepalivedConfig(vienna, pair.active, labSecrets(vienna)))?.[1] ?? "?";
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const lab = new PairLab({ tag: "fb", model: vienna, pair });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      lab.destroy();
      process.exit(130);
    });
  }
  let monitor: VipMonitor | undefined;
  try {
    lab.start();
    monitor = new VipMonitor(lab);
    const stable = async (what: string) => {
      const held = await monitor!.waitForSoleHolder(pair.active, TRANSITION_MS);
      const states = await until(() => lab.failoverState(pair.active) === "master" && lab.failoverState(pair.passive) === "backup", 3_000);
      if (!held || !states) throw new Error(`${what}: ${pair.active} is not the sole master\n${lab.keepalivedLog(pair.active)}`);
    };
    await stable("election");
    const takeovers: number[] = [];
    const preemptions: number[] = [];
    for (let run = 1; run <= runs; run++) {
      // Crashing right after the election would always hit the same point of the 1 s advert cycle (just after
      // an advert: the slowest takeover). Spread the crashes evenly over one advert interval instead.
      await new Promise((resolve) => setTimeout(resolve, 1_000 + ((run - 1) * 1_000) / runs));
      const crash = performance.now();
      await lab.powerOff(pair.active);
      const takeover = await monitor.waitForSoleHolder(pair.passive, TRANSITION_MS);
      if (!takeover) throw new Error(`run ${run}: ${pair.passive} did not take the VIP within ${TRANSITION_MS} ms`);
      takeovers.push(takeover.at - crash);
      const boot = performance.now();
      lab.boot(pair.active);
      const back = await monitor.waitForSoleHolder(pair.active, TRANSITION_MS);
      if (!back) throw new Error(`run ${run}: ${pair.active} did not take the VIP back within ${TRANSITION_MS} ms`);
      preemptions.push(back.at - boot);
      await stable(`run ${run}`);
      console.error(`run ${run}: takeover ${Math.round(takeovers.at(-1)!)} ms, preemption ${Math.round(preemptions.at(-1)!)} ms`);
    }
    const worst = monitor.longestSplitBrain();

    // Not a crash but a heartbeat partition: both members healthy, only the hb segment between them cut.
    // VRRP cannot tell this from a dead peer, so both hold the VIP until the passive member's fence (after
    // the grace period) takes the active one out; measured once, as the window a real fence must close.
    // Failover scripts of earlier terms still sleep through their grace period; they must not fence for this one.
    await until(() => lab.notifyScriptsRunning(pair.passive) === 0, 15_000);
    const fencesBefore = lab.fenceCalls(pair.passive).length;
    const cut = performance.now();
    lab.partition(pair.active, pair.heartbeatSegment, true);
    const both = await monitor.waitFor((h) => h.length === 2, TRANSITION_MS);
    const fenced = await until(() => lab.fenceCalls(pair.passive).length > fencesBefore, 20_000);
    const fencedAt = performance.now();
    lab.partition(pair.active, pair.heartbeatSegment, false);
    const healed = performance.now();
    const after = await monitor.waitForSoleHolder(pair.active, TRANSITION_MS);
    await monitor.stop();
    console.log(
      `${pair.role} pair failover (keepalived VRRP, advert ${advert} s): takeover median ${seconds(median(takeovers))}, ` +
        `max ${seconds(Math.max(...takeovers))} over ${runs} run${runs > 1 ? "s" : ""}`,
    );
    console.log(
      `${pair.role} pair preemption (active member booted again): median ${seconds(median(preemptions))}, ` +
        `max ${seconds(Math.max(...preemptions))}; both members held the VIP in at most ${worst.samples} consecutive ${POLL_MS} ms sample(s)`,
    );
    console.log(
      both && fenced && after
        ? `${pair.heartbeatSegment} partition (both members healthy): both hold the VIP after ${seconds(both.at - cut)}; ` +
            `${pair.passive} runs the fence command after ${seconds(fencedAt - cut)}; ` +
            `once healed, ${pair.active} alone holds it after ${seconds(after.at - healed)}`
        : `${pair.heartbeatSegment} partition: both held the VIP: ${both ? "yes" : "no"}, fenced: ${fenced ? "yes" : "no"}, ` +
            `${pair.active} alone again after healing: ${after ? "yes" : "no"}`,
    );
  } finally {
    await monitor?.stop();
    lab.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
