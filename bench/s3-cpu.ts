// Where the time of a copy → S3 + PostgreSQL goes: wall time, CPU seconds
// of the copy (per thread with THREADS=1), and CPU seconds of the servers
// it writes to — RGW, the OSD and the monitor, PostgreSQL with its
// backends — which share this machine's cores with the copy.
// Run under scripts/scaleout/with-scaleout.sh (for durable servers as the
// bench has them: CEPH_OBJECTSTORE=bluestore PG_FSYNC=on):
//   node dist/bench/s3-cpu.js PATH...
// CPU_PROF_DIR=DIR also writes a --cpu-prof profile of the copy there;
// COPY_NODE_FLAGS adds Node flags to the copy (e.g. --max-semi-space-size=8);
// STORE_QUERY is added to the store's address (e.g. level=-1, compression=none).
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
import pg from 'pg';
import { nixEnv } from '../test/helpers/nix.js';
import { runCopyJson } from './run-copy.js';
import { threadCpu, showThreads } from './thread-cpu.js';
import { serverMeters } from './server-cpu.js';

/** The processes serving this run's S3 and PostgreSQL, found from with-scaleout's files. */
function servers(): Map<string, () => number> {
  const conf = process.env.NIX_CASTORE_TEST_CEPH_CONF;
  if (!conf || !process.env.NIX_CASTORE_TEST_PG_URL) throw new Error('run under scripts/scaleout/with-scaleout.sh');
  return serverMeters(dirname(conf), join(dirname(dirname(conf)), 'pg', 'data'));
}

async function freshStore(): Promise<string> {
  const endpoint = process.env.NIX_CASTORE_TEST_S3_ENDPOINT!;
  const name = `cpu${randomBytes(4).toString('hex')}`;
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'; // as the store's own clients (s3-objects.ts)
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: name }));
  s3.destroy();
  const admin = new pg.Client(process.env.NIX_CASTORE_TEST_PG_URL);
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const db = process.env.NIX_CASTORE_TEST_PG_URL!.replace(/\/[^/]*$/, `/${name}`);
  return `s3://${name}/store?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&index=${encodeURIComponent(db)}${process.env.STORE_QUERY ? `&${process.env.STORE_QUERY}` : ''}`;
}

async function copy(addr: string, paths: string[]) {
  const dir = process.env.CPU_PROF_DIR;
  let threads: ReturnType<typeof threadCpu> | undefined;
  try {
    const nodeArgs = [...(process.env.COPY_NODE_FLAGS ?? '').split(' ').filter(Boolean), ...(dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [])];
    const r = await runCopyJson(['--store', addr, ...paths], { env: { ...nixEnv(), ...process.env }, nodeArgs, onSpawn: (child) => (threads = threadCpu(child.pid!)) });
    if (process.env.THREADS) console.log(`  copy threads: ${showThreads(threads!.stop())}`);
    return r;
  } finally {
    threads?.stop();
  }
}

const paths = process.argv.slice(2);
if (paths.length === 0) {
  console.error('usage: s3-cpu PATH... (under scripts/scaleout/with-scaleout.sh)');
  process.exit(2);
}
const addr = await freshStore();
console.log(`store: ${addr}`); // to render it back (nar) or look at it afterwards
const procs = servers();
const before = new Map([...procs].map(([n, f]) => [n, f()]));
const r = await copy(addr, paths);
const used = [...procs].map(([n, f]) => [n, f() - before.get(n)!] as const);
const serverCpu = used.reduce((a, [, c]) => a + c, 0);
const c = r.report.cpuSeconds;
console.log(
  `copy → S3 + PostgreSQL: ${r.seconds.toFixed(2)} s wall; copy CPU ${(c.user + c.system).toFixed(2)} s (${c.user.toFixed(2)} + ${c.system.toFixed(2)}), RSS ${r.report.peakRssMiB} MiB; ` +
    `servers CPU ${serverCpu.toFixed(2)} s (${used.map(([n, s]) => `${n} ${s.toFixed(2)}`).join(', ')}); ${r.report.blobsSent} blobs sent`,
);
