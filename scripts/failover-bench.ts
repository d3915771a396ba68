/**
 * Benchmark: how fast a pair fails over in the site twin (the whole site
 * booted from its rendered files, real keepalived with the rendered failover
 * script, real fencing attempts), over several crashes of the active member
 * under the load of 800 customers, each followed by its return.
 *
 *   npm run bench:failover -- [--location vienna] [--pair proxy] [--runs 5]
 *
 * Prints each run and the median and maximum of the takeover time, the
 * requests that failed and the longest gap without a successful response.
 * Needs root; touches no real interface.
 */
import { z } from "zod";
import { PAIRED_ROLES } from "../lib/model/schema";
import { slug } from "../lib/model/schema";
import { FailoverEntry, duration, failover } from "./twin/failover";
import { SiteTwin } from "./twin/site";
import { settle } from "./twin/reachability";
import { parseFlags, reportInputError, runAsProcess } from "./lib/cli";

const FlagsSchema = z.strictObject({
  location: slug.optional(),
  pair: z.enum(PAIRED_ROLES).default("proxy"),
  runs: z.coerce.number().int().min(1).max(20).default(5),
});

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export async function main(argv: string[]): Promise<number> {
  let flags: z.infer<typeof FlagsSchema>;
  try {
    flags = parseFlags(
      "bench:failover",
      argv,
      { pair: { type: "string" }, runs: { type: "string" }, location: { type: "string" } },
      FlagsSchema,
    );
  } catch (error) {
    return reportInputError(error, console.error);
  }
  if (process.getuid?.() !== 0) {
    console.error("bench:failover: needs root (it boots the site twin)");
    return 2;
  }
  const twin = await SiteTwin.boot({ location: flags.location ?? "vienna" });
  const stop = () => {
    twin.destroy();
    process.exit(130);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const crashes: FailoverEntry[] = [];
    const returns: FailoverEntry[] = [];
    for (let run = 1; run <= flags.runs; run++) {
      await settle(twin);
      // Spread the crashes over one advert interval, so they do not all hit the same point of the cycle.
      await new Promise((r) => setTimeout(r, ((run - 1) * 1_000) / flags.runs));
      const [crash, back] = await failover(twin, { pairs: [flags.pair], events: ["crash", "return"] });
      crashes.push(crash);
      returns.push(back);
      console.error(
        `run ${run}: takeover ${duration(crash.takeoverMs)}, ${crash.failed}/${crash.requests} failed, gap ${crash.gapMs} ms` +
          `${crash.publicMs !== undefined ? `, public path ${duration(crash.publicMs)}` : ""}; return: VIPs back after ${duration(back.takeoverMs)}, ${back.failed} failed`,
      );
    }
    const line = (what: string, entries: FailoverEntry[], pick: (e: FailoverEntry) => number | null | undefined) => {
      const values = entries.map(pick).filter((v): v is number => typeof v === "number");
      if (values.length === 0) return;
      console.log(
        `${twin.model.name} ${flags.pair} pair, ${what}: median ${seconds(median(values))}, max ${seconds(Math.max(...values))} over ${values.length} runs`,
      );
    };
    line("takeover after a crash (VIPs held by the other member)", crashes, (e) => e.takeoverMs);
    line("public path after a crash", crashes, (e) => e.publicMs);
    line("longest gap without a successful response during a crash", crashes, (e) => e.gapMs);
    line("preemption after the return", returns, (e) => e.takeoverMs);
    console.log(
      `${twin.model.name} ${flags.pair} pair, failed requests (800 clients, 1 request/s): crash median ${median(crashes.map((e) => e.failed))}, return median ${median(returns.map((e) => e.failed))}`,
    );
    return 0;
  } finally {
    twin.destroy();
  }
}

if (require.main === module) runAsProcess(main);
