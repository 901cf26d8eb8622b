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
import { GiB, MiB, summary, table } from './util.js';
import { execFileSync } from 'node:child_process';

const size = process.env.BENCH_SIZE_MIB ? Number(process.env.BENCH_SIZE_MIB) * MiB : GiB;

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/ensure-test-deps.sh'], { stdio: 'inherit' });
  console.log(`nix-castore benchmarks — ${new Date().toISOString()} — node ${process.version}\n`);
  // The copy benchmark measures the floor the others are compared with: first.
  console.log(await copyClosureBench(size));
  console.log();
  console.log(await blobThroughput(size));
  console.log();
  console.log(await hookOverhead());
  console.log();
  console.log(await httpServeBench(size));
  console.log();
  console.log(await httpCacheBench(size));
  console.log();
  console.log(await scaleoutBench(size));
  console.log();
  console.log(await gcBench(size));
  console.log(`\nSummary (ratios to the copy floor, measured in this run; ${os.cpus().length} cores, ${(os.totalmem() / GiB).toFixed(0)} GiB):`);
  console.log(table(summary.rows));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
