// The scale-out store (S3 on a real single-node Ceph RGW + PostgreSQL)
// against the local on-disk store, side by side in one run: copy time of
// the real-files closure, S3 requests per file, and Stat throughput.
//
// Ceph runs on bluestore (not memstore) and PostgreSQL with fsync on, so
// the scale-out store writes as durably as the local one does.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3Client, CreateBucketCommand } from '@aws-sdk/client-s3';
import { deleteAll, leanGetter, listObjects, readAll, writeAll } from './s3-floor.js';
import pg from 'pg';
import { CLI, CLI_NODE_FLAGS, startDaemonProcess } from '../test/helpers/daemon.js';
import { nixEnv } from '../test/helpers/nix.js';
import { runCopyJson } from './run-copy.js';
import { openStore, sameAddr } from '../src/addr/open.js';
import { fileAddr } from '../src/addr/parse.js';
import { batchesOf } from '../src/castore/blob-service.js';
import { fileCount, realFilesClosure } from './closure-data.js';
import { ROUNDS, flushedAround, listRounds, median, verdict } from './rounds.js';
import { table, timed, GiB, summary } from './util.js';
import { cpuDuring, serverMeters } from './server-cpu.js';

const SCRIPTS = fileURLToPath(new URL('../../scripts/scaleout/', import.meta.url));
const STAT_DIGESTS = 10_000;

function parseEnv(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

const copy = (store: string, paths: string[], env: NodeJS.ProcessEnv) => runCopyJson(['--store', store, ...paths], { env });

/** Requests RGW has served so far, from its own perf counters. */
async function rgwRequests(cephBase: string): Promise<number> {
  const run = join(cephBase, 'run');
  const sock = (await readdir(run)).find((f) => f.startsWith('ceph-client.rgw') && f.endsWith('.asok'));
  if (!sock) throw new Error(`no radosgw admin socket in ${run}`);
  const out = execFileSync('ceph', ['--admin-daemon', join(run, sock), 'perf', 'dump'], { encoding: 'utf8' });
  return Number(JSON.parse(out).rgw.req);
}

export async function scaleoutBench(target = GiB): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'bench-so-'));
  execFileSync('chmod', ['711', base]);
  const cephBase = join(base, 'ceph');
  const pgBase = join(base, 'pg');
  try {
    execFileSync('bash', [join(SCRIPTS, 'ceph-up.sh'), cephBase], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, CEPH_OBJECTSTORE: 'bluestore' } });
    execFileSync('bash', [join(SCRIPTS, 'postgres-up.sh'), pgBase], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PG_FSYNC: 'on' } });
    const cephEnv = parseEnv(await readFile(join(cephBase, 'ceph.env'), 'utf8'));
    const pgUrl = parseEnv(await readFile(join(pgBase, 'postgres.env'), 'utf8')).NIX_CASTORE_TEST_PG_URL;
    const endpoint = cephEnv.NIX_CASTORE_TEST_S3_ENDPOINT;
    const env = { ...nixEnv(), AWS_ACCESS_KEY_ID: cephEnv.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: cephEnv.AWS_SECRET_ACCESS_KEY, AWS_REGION: 'us-east-1' };
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY });
    // No checksums the protocol does not require, as the store's own client (src/scaleout/s3-objects.ts).
    const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    const admin = new pg.Client(pgUrl);
    await admin.connect();
    /** A fresh, empty scale-out store. */
    const freshStore = async (name: string) => {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      await admin.query(`CREATE DATABASE ${name}`);
      const dbUrl = pgUrl.replace(/\/[^/]*$/, `/${name}`);
      return { dbUrl, addr: `s3://${name}/store?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&index=${encodeURIComponent(dbUrl)}` };
    };

    const { paths } = realFilesClosure(target);
    const files = fileCount(paths);
    // Interleaved rounds between untimed syncs, medians: this machine's disk is shared and noisy.
    const locals: number[] = [];
    const scaledRuns: { seconds: number; requests: number; rss: number }[] = [];
    // RGW alone taking the same objects: PUTs of the sizes the copy stored, 16 at once.
    const puts: number[] = [];
    let putObjects = { count: 0, bytes: 0 };
    await s3.send(new CreateBucketCommand({ Bucket: 'floorput' }));
    let last = { dbUrl: '', addr: '' };
    for (let round = 0; round < ROUNDS; round++) {
      locals.push((await flushedAround(() => copy(fileAddr(join(base, `local${round}`)), paths, env))).value.seconds);
      await rm(join(base, `local${round}`), { recursive: true, force: true });
      last = await freshStore(`bench${round}`);
      const before = await rgwRequests(cephBase);
      const run = (await flushedAround(() => copy(last.addr, paths, env))).value;
      scaledRuns.push({ seconds: run.seconds, requests: (await rgwRequests(cephBase)) - before, rss: run.report.peakRssMiB });
      const stored = await listObjects(s3, `bench${round}`, 'store/');
      putObjects = { count: stored.length, bytes: stored.reduce((a, o) => a + o.size, 0) };
      puts.push((await flushedAround(() => writeAll(s3, 'floorput', `r${round}/`, stored, 16))).seconds);
      await deleteAll(s3, 'floorput', `r${round}/`);
    }
    s3.destroy();
    await admin.end();
    const { dbUrl, addr } = last;
    const local = { seconds: median(locals) };
    const scaled = { seconds: median(scaledRuns.map((r) => r.seconds)) };
    const requests = median(scaledRuns.map((r) => r.requests));
    const copyRss = Math.max(...scaledRuns.map((r) => r.rss));
    const ratio = scaled.seconds / local.seconds;
    const putFloor = median(puts);
    // Reading back: every path's NAR rendered from the S3 store, against
    // nix-store --dump and against what RGW itself serves to the GETs the
    // store's read path sends (s3-get.ts): one at a time, 16 at once, 16
    // ranged GETs of 8 MiB at once (what the renderer asks: READ_AHEAD in
    // s3-blob-service.ts), and 32 of them (does RGW's floor move with
    // concurrency?), in interleaved rounds.
    const lister = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
    const bucket = `bench${ROUNDS - 1}`;
    const objects = await listObjects(lister, bucket, 'store/');
    lister.destroy();
    const getter = leanGetter(bucket, endpoint, { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY });
    const objectBytes = objects.reduce((a, o) => a + o.size, 0);
    const narBytes = paths.reduce((a, p) => a + Number(execFileSync('nix-store', ['--query', '--size', p], { encoding: 'utf8', env }).trim()), 0);
    const read = { nar: [] as number[], narCpu: [] as number[], dump: [] as number[], serial: [] as number[], parallel: [] as number[], ranged: [] as number[], ranged32: [] as number[] };
    // Where the renderings' CPU went besides the `nar` processes: the servers on the same cores, and the machine in all.
    const meters = serverMeters(cephBase, join(pgBase, 'data'));
    const during = { rgwOsd: [] as number[], postgres: [] as number[], busy: [] as number[], all: [] as number[], rangedRgwOsd: [] as number[] };
    const rgwOsd = (used: Map<string, number>) => [...used].filter(([n]) => n.startsWith('rgw') || n.startsWith('osd')).reduce((a, [, c]) => a + c, 0);
    for (let round = 0; round < ROUNDS; round++) {
      let cpu = 0;
      const rendered = await flushedAround(() =>
        cpuDuring(meters, async () => {
          for (const p of paths) cpu += cpuSecondsOf(process.execPath, [...CLI_NODE_FLAGS, CLI, 'nar', '--store', addr, p], env);
        }),
      );
      read.nar.push(rendered.seconds);
      read.narCpu.push(cpu);
      during.rgwOsd.push(rgwOsd(rendered.value.used));
      during.postgres.push(rendered.value.used.get('postgres') ?? 0);
      during.busy.push(rendered.value.machine.busy);
      during.all.push(rendered.value.machine.all);
      read.dump.push((await flushedAround(() => {
        for (const p of paths) execFileSync('nix-store', ['--dump', p], { stdio: ['ignore', 'ignore', 'inherit'], env, maxBuffer: 1 << 30 });
      })).seconds);
      read.serial.push((await flushedAround(() => readAll(getter, objects, 1))).seconds);
      read.parallel.push((await flushedAround(() => readAll(getter, objects, 16))).seconds);
      const ranged = await flushedAround(() => cpuDuring(meters, () => readAll(getter, objects, 16, 8 << 20)));
      read.ranged.push(ranged.seconds);
      during.rangedRgwOsd.push(rgwOsd(ranged.value.used));
      read.ranged32.push((await flushedAround(() => readAll(getter, objects, 32, 8 << 20))).seconds);
    }
    getter.close();
    const narBack = median(read.nar);
    const dumpSeconds = median(read.dump);
    const narRatio = narBack / dumpSeconds;
    const cpuDuringNar = `CPU during them: the \`nar\` processes ${median(read.narCpu).toFixed(2)} s, RGW + OSD ${median(during.rgwOsd).toFixed(2)} s, PostgreSQL ${median(during.postgres).toFixed(2)} s; the machine busy ${median(during.busy).toFixed(1)} of ${median(during.all).toFixed(1)} CPU-s`;
    // The objects as stored (zstd-compressed where that paid: blob-codec.ts), so the floor is what RGW must really deliver.
    const floor = (xs: number[]) => `${median(xs).toFixed(2)} s, ${(objectBytes / median(xs) / 1e9).toFixed(2)} GB/s of stored bytes (${listRounds(xs)})`;

    // Stat: 10,000 digests, half of them present, all asked at once.
    const pool = new pg.Pool({ connectionString: dbUrl });
    const [kept] = (await pool.query<{ raw: string; stored: string; zstd: string; n: string }>(
      `SELECT sum(length) AS raw, sum(coalesce(stored, length)) AS stored, count(*) FILTER (WHERE codec IS NOT NULL) AS zstd, count(*) AS n FROM blobs`,
    )).rows;
    const digests = (await pool.query<{ digest: Buffer }>('SELECT digest FROM blobs LIMIT $1', [STAT_DIGESTS / 2])).rows.map((r) => r.digest);
    await pool.end();
    while (digests.length < STAT_DIGESTS) digests.push(Buffer.from(Array.from({ length: 32 }, (_, i) => (digests.length * 7 + i) & 0xff)));
    const statAll = async (storeAddr: string) => {
      const store = openStore(sameAddr(storeAddr));
      try {
        await store.blobs.stat(digests[0]); // connect first
        return await timed(async () => (await Promise.all(digests.map((d) => store.blobs.stat(d)))).filter(Boolean).length);
      } finally {
        await store.close();
      }
    };
    // The same through nix-castore's batch service: 1,000 digests per Has call, all calls at once.
    const hasAll = async (storeAddr: string) => {
      const store = openStore(sameAddr(storeAddr));
      try {
        const batches = await batchesOf(store.blobs); // connects
        return await timed(async () => {
          const calls = [];
          for (let i = 0; i < digests.length; i += 1000) calls.push(batches.has(digests.slice(i, i + 1000)));
          return (await Promise.all(calls)).flat().filter(Boolean).length;
        });
      } finally {
        await store.close();
      }
    };
    const stat = await statAll(addr);
    const daemon = await startDaemonProcess({ args: ['--store', addr], env });
    let again, statGrpc, hasGrpc;
    try {
      again = await copy(daemon.addr, paths, env);
      statGrpc = await statAll(daemon.addr);
      hasGrpc = await hasAll(daemon.addr);
    } finally {
      await daemon.stop();
    }

    const rows: [string, string, string][] = [
      ['copy → local store (file://)', `${local.seconds.toFixed(2)} s`, `1.00× (reference; ${listRounds(locals)})`],
      ['copy → S3 + PostgreSQL (s3://…?index=postgres://…)', `${scaled.seconds.toFixed(2)} s`, `${ratio.toFixed(2)}× local (target ≤ 2×: ${verdict(ratio <= 2)}; ${listRounds(scaledRuns.map((x) => x.seconds))}); peak RSS of the copy ${copyRss.toFixed(0)} MiB (target < 300 MiB: ${verdict(copyRss < 300)}; ${listRounds(scaledRuns.map((x) => x.rss), 'MiB', 0)})`],
      [`RGW alone: PUTs of the same ${putObjects.count} objects (${(putObjects.bytes / GiB).toFixed(2)} GiB), 16 at once`, `${putFloor.toFixed(2)} s`, `${(putFloor / local.seconds).toFixed(2)}× local; the backend's floor for the copy, PostgreSQL not counted (${listRounds(puts)})`],
      ['S3 requests for that copy', `${requests}`, `${files} files: ${(files / requests).toFixed(0)}× fewer requests than files (target ≥ 50×)`],
      [
        'blob bytes as stored in S3 (default compression=zstd, level 1)',
        `${(Number(kept.stored) / GiB).toFixed(2)} GiB`,
        `of ${(Number(kept.raw) / GiB).toFixed(2)} GiB of blobs: ${(Number(kept.raw) / Number(kept.stored)).toFixed(2)}× smaller; ${kept.zstd} of ${kept.n} blobs compressed, the rest raw (under 2 KiB, a compressed format, or compressing saved < 10%); ${(objectBytes / GiB).toFixed(2)} GiB of objects`,
      ],
      ['NARs rendered back from that store (nix-castore nar)', `${narBack.toFixed(2)} s`, `${narRatio.toFixed(2)}× nix-store --dump (${dumpSeconds.toFixed(2)} s; target ≤ 3×: ${verdict(narRatio <= 3)}); ${(narBytes / narBack / 1e9).toFixed(2)} GB/s of NAR; ${listRounds(read.nar)}; ${cpuDuringNar} (nar processes: ${listRounds(read.narCpu)})`],
      [`RGW alone: the store's ${objects.length} objects (${(objectBytes / GiB).toFixed(2)} GiB), one GET at a time`, floor(read.serial), 'the backend\'s floor, single stream; the store\'s own signed GET (s3-get.ts)'],
      ['RGW alone: 16 GETs at once', floor(read.parallel), 'whole objects'],
      ['RGW alone: 16 ranged GETs of 8 MiB at once', floor(read.ranged), `what the NAR rendering asks of RGW; RGW + OSD CPU ${median(during.rangedRgwOsd).toFixed(2)} s (${listRounds(during.rangedRgwOsd)})`],
      ['RGW alone: 32 ranged GETs of 8 MiB at once', floor(read.ranged32), 'twice the renderer\'s concurrency'],
      ['re-copy through a daemon on that store (all present)', `${again.seconds.toFixed(2)} s`, `${again.report.blobsSent} blobs sent`],
      [`Stat of ${STAT_DIGESTS} digests (half present), in-process`, `${(stat.seconds * 1000).toFixed(0)} ms`, `${(STAT_DIGESTS / stat.seconds).toFixed(0)} Stats/s; ${stat.value} found`],
      [`Stat of ${STAT_DIGESTS} digests through the daemon (gRPC)`, `${(statGrpc.seconds * 1000).toFixed(0)} ms`, `${(STAT_DIGESTS / statGrpc.seconds).toFixed(0)} Stats/s; ${statGrpc.value} found`],
      [`the same in batches of 1000 (nixcastore.v1.BlobBatchService Has)`, `${(hasGrpc.seconds * 1000).toFixed(0)} ms`, `${(STAT_DIGESTS / hasGrpc.seconds).toFixed(0)} digests/s; ${hasGrpc.value} found`],
    ];
    summary.rows.push(
      { what: '`copy` → S3 + PostgreSQL (Ceph RGW on bluestore, PostgreSQL fsync on)', measured: `${scaled.seconds.toFixed(2)} s`, compared: `${ratio.toFixed(2)}× \`copy\` → \`file://\` (${local.seconds.toFixed(2)} s); RGW alone takes the same objects in ${putFloor.toFixed(2)} s (${(putFloor / local.seconds).toFixed(2)}× \`file://\`; 16 PUTs at once); ${listRounds(scaledRuns.map((x) => x.seconds), 's', 1)}`, target: '≤ 2× → `file://`', met: ratio <= 2 },
      { what: 'peak RSS of that copy (largest of the rounds)', measured: `${copyRss.toFixed(0)} MiB`, compared: listRounds(scaledRuns.map((x) => x.rss), 'MiB', 0), target: '< 300 MiB', met: copyRss < 300 },
      { what: 'S3 requests for that copy', measured: `${requests}`, compared: `${files} files: ${(files / requests).toFixed(0)}× fewer requests than files`, target: '≥ 50× fewer', met: files / requests >= 50 },
      { what: 'NARs rendered back from S3 + PostgreSQL (`nix-castore nar`)', measured: `${narBack.toFixed(2)} s`, compared: `${narRatio.toFixed(2)}× \`nix-store --dump\` (${dumpSeconds.toFixed(2)} s); ${cpuDuringNar}; RGW alone serves the objects at ${floor(read.ranged)} with 16 ranged GETs at once (${floor(read.ranged32)} with 32), ${floor(read.serial)} one GET at a time (the store's own signed GET)`, target: '≤ 3× `nix-store --dump`', met: narRatio <= 3 },
      ...[rows[4], rows[11], rows[12], rows[13]].map(([what, measured, compared]) => ({ what, measured, compared })),
    );
    return [`Scale-out store (Ceph ${cephVersion()} RGW on bluestore + PostgreSQL, fsync on; same closure, ${files} files):`, table(rows)].join('\n');
  } finally {
    execFileSync('bash', [join(SCRIPTS, 'ceph-down.sh'), cephBase], { stdio: 'ignore' });
    execFileSync('bash', [join(SCRIPTS, 'postgres-down.sh'), pgBase], { stdio: 'ignore' });
    await rm(base, { recursive: true, force: true });
  }
}

/** Runs a command to its end, output dropped; its CPU seconds (user + system), from time(1)'s report. */
function cpuSecondsOf(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const r = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env, encoding: 'utf8' });
  const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? '');
  if (r.status !== 0 || !m) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return Number(m[1]) + Number(m[2]);
}

function cephVersion(): string {
  try {
    return execFileSync('ceph', ['--version'], { encoding: 'utf8' }).split(' ')[2];
  } catch {
    return '?';
  }
}
