// `npm run bench`: every benchmark in one run, each printed as ratios to a
// reference measured side by side in the same run. Not a test: nothing here
// asserts on time. BENCH_SIZE_MIB shrinks the data for a quick look.
import { blobThroughput } from './blob-throughput.js';
import { copyClosureBench } from './copy-closure.js';
import { hookOverhead } from './hook-overhead.js';
import { httpServeBench } from './http-serve.js';
import { httpCacheBench } from './http-cache.js';
import { scaleoutBench } from './scaleout.js';
import { gcBench } from './gc.js';
import os from 'node:os';
import { GiB, MiB, summary } from './util.js';
import { ROUNDS } from './rounds.js';
import { execFileSync } from 'node:child_process';

const size = process.env.BENCH_SIZE_MIB ? Number(process.env.BENCH_SIZE_MIB) * MiB : GiB;

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/ensure-test-deps.sh'], { stdio: 'inherit' });
  console.log(`nix-castore benchmarks — ${new Date().toISOString()} — node ${process.version}\n`);
  const parts: [string, () => Promise<string>][] = [
    ['copy', () => copyClosureBench(size)],
    ['blob', () => blobThroughput(size)],
    ['hook', () => hookOverhead()],
    ['http', () => httpServeBench(size)],
    ['cache', () => httpCacheBench(size)],
    ['scaleout', () => scaleoutBench(size)],
    ['gc', () => gcBench(size)],
  ];
  // BENCH_ONLY=copy,blob runs a few parts, for a quicker look.
  const only = process.env.BENCH_ONLY?.split(',');
  for (const [name, run] of parts) {
    if (only && !only.includes(name)) continue;
    console.log(await run());
    console.log();
  }
  console.log(`Summary — ${new Date().toISOString()}; ${os.cpus().length} cores, ${(os.totalmem() / GiB).toFixed(0)} GiB, node ${process.version}; medians of ${ROUNDS} interleaved rounds:\n`);
  console.log(summary.markdown());
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
