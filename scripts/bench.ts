/**
 * Benchmark: renders every file the stacks install (every host of every site,
 * with the footprint's services, jobs and tunnels) N times and prints the
 * median time of one full render; then times the offline plan of each
 * location (the stack program under the mock runtime).
 *
 *   npm run bench [-- runs]    (default 20; BENCH_RUNS also works)
 */
import { loadFootprint } from "../lib/footprint/load";
import { planHostFiles } from "../lib/preview/files";
import { planStack } from "../lib/preview/run-stack";

const runs = Number(process.argv[2] ?? process.env.BENCH_RUNS ?? 20);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`runs must be a positive integer, got ${process.argv[2] ?? process.env.BENCH_RUNS}`);
  process.exit(2);
}

const { footprint, sites } = loadFootprint();

function renderAll(): { hosts: number; files: number; bytes: number } {
  let hosts = 0;
  let files = 0;
  let bytes = 0;
  for (const site of sites) {
    for (const host of planHostFiles(site, sites, footprint)) {
      hosts++;
      files += host.files.length;
      for (const f of host.files) bytes += f.content.length;
    }
  }
  return { hosts, files, bytes };
}

// Warm-up: module loading and JIT compilation are not part of a render.
let totals = renderAll();
renderAll();

const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const start = process.hrtime.bigint();
  totals = renderAll();
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
}
times.sort((a, b) => a - b);
const median = times.length % 2 === 1 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;

console.log(`render all files, ${sites.length} locations, ${totals.hosts} hosts: ${median.toFixed(1)} ms (median of ${runs} runs)`);
console.log(
  `  ${totals.files} files, ${(totals.bytes / 1024).toFixed(0)} KiB; fastest ${times[0].toFixed(1)} ms, slowest ${times[times.length - 1].toFixed(1)} ms; target under 1000 ms`,
);

async function planTimes(): Promise<void> {
  for (const site of sites) {
    const start = process.hrtime.bigint();
    const run = await planStack(site.name);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    console.log(`offline plan ${site.name}: ${run.resources.length} resources in ${(ms / 1000).toFixed(2)} s`);
  }
}
planTimes().catch((error) => {
  console.error(error);
  process.exit(1);
});
