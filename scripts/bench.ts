/**
 * Benchmark: renders every file of every host of every site N times and
 * prints the median time of one full render.
 *
 *   npx tsx scripts/bench.ts [runs]    (default 20; BENCH_RUNS also works)
 */
import { loadSites } from "../lib/model/load";
import { PLACEHOLDER_SSH_KEY, placeholderSecrets, renderSiteFiles } from "../lib/render";

const runs = Number(process.argv[2] ?? process.env.BENCH_RUNS ?? 20);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`runs must be a positive integer, got ${process.argv[2] ?? process.env.BENCH_RUNS}`);
  process.exit(2);
}

const sites = loadSites();
const options = { sites, sshAuthorizedKeys: [PLACEHOLDER_SSH_KEY] };
const secrets = new Map(sites.map((s) => [s.name, placeholderSecrets(s)]));

function renderAll(): { hosts: number; files: number; bytes: number } {
  let hosts = 0;
  let files = 0;
  let bytes = 0;
  for (const site of sites) {
    for (const host of renderSiteFiles(site, secrets.get(site.name)!, options)) {
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
