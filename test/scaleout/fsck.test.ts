// `nix-castore fsck --store s3://…` on a real scale-out store (Ceph RGW +
// PostgreSQL, started by scripts/scaleout/with-scaleout.sh): clean after
// real writes through the store's own services, and each kind of damage made
// by hand in S3 or in the database is reported, one line per problem, exit 1;
// orphaned bytes are a warning only (exit 0).
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, mkdir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, DeleteObjectCommand, CreateMultipartUploadCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { freshScaleoutAddr, scaleoutEnv, scaleoutS3Client } from '../helpers/scaleout.js';
import { runCli } from '../copy/run-cli.js';
import { assertReported, errorLines } from '../helpers/fsck-output.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directorySize } from '../../src/castore/directory.js';
import { b3Hex } from '../../src/castore/digest.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { ScaleoutChecker, redactUrl } from '../../src/fsck/scaleout-fsck.js';
import type { Finding } from '../../src/fsck/fsck.js';
import { collectScaleout } from '../../src/gc/scaleout-gc.js';

const b = (s: string): Buffer => Buffer.from(s);
const hex = (d: Uint8Array): string => Buffer.from(d).toString('hex');

const TREE = `/nix/store/${'1'.repeat(32)}-fsck-tree`;
const FILE = `/nix/store/${'2'.repeat(32)}-fsck-file`;

interface Fixture {
  addr: string;
  pgUrl: string;
  drop(): Promise<void>;
  /** Blob digests (hex) by file name. */
  blob: Record<'a' | 'b' | 'c' | 'empty' | 'big' | 'file', string>;
  root: string;
  sub: string;
  /** pathinfos/<hex> of TREE and FILE. */
  treeRow: string;
  fileRow: string;
}

const fixtures: Fixture[] = [];
after(async () => {
  for (const f of fixtures) await f.drop().catch(() => {});
});

/**
 * A fresh bucket + database holding, written through openStore: four small
 * blobs (packed, the empty one among them), one of 1.5 MiB (an object of
 * its own), a two-level directory closure, and two PathInfos (a directory
 * root, a file root).
 */
async function populate(label: string): Promise<Fixture> {
  const s = await freshScaleoutAddr(`fsck-${label}`);
  const fx = { addr: s.addr, pgUrl: s.pgUrl, drop: () => s.drop() } as Fixture;
  fixtures.push(fx);
  const store = openStore(sameAddr(s.addr));
  try {
    const data = {
      a: b('alpha\n'),
      b: randomBytes(50_000),
      c: randomBytes(200_000),
      empty: Buffer.alloc(0),
      big: randomBytes(1536 * 1024),
      file: b('just a file\n'),
    };
    // At once, so that the small ones share packs.
    const names = Object.keys(data) as (keyof typeof data)[];
    const digests = await Promise.all(names.map((n) => putBytes(store.blobs, data[n])));
    const d = Object.fromEntries(names.map((n, i) => [n, digests[i]])) as Record<keyof typeof data, Buffer>;
    fx.blob = Object.fromEntries(names.map((n) => [n, hex(d[n])])) as Fixture['blob'];
    const file = (name: string, k: keyof typeof data) => ({ name: b(name), digest: d[k], size: data[k].length, executable: false });
    const sub: Directory = { directories: [], files: [file('b.bin', 'b'), file('c.bin', 'c')], symlinks: [] };
    const subDigest = await putClosure(store.directories, [sub]);
    const root: Directory = {
      directories: [{ name: b('sub'), digest: subDigest, size: directorySize(sub) }],
      files: [file('a.txt', 'a'), file('big.bin', 'big'), file('empty', 'empty')],
      symlinks: [{ name: b('link'), target: b('a.txt') }],
    };
    const rootDigest = await putClosure(store.directories, [sub, root]);
    fx.sub = hex(subDigest);
    fx.root = hex(rootDigest);
    const put = async (path: string, node: Node): Promise<void> => {
      const nar = await store.pathInfos.calculateNar(node);
      const info: PathInfo = { node, references: [], narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] } };
      await store.pathInfos.put(info);
    };
    await put(TREE, { type: 'directory', name: b(TREE.slice(11)), digest: rootDigest, size: directorySize(root) });
    await put(FILE, { type: 'file', ...file(FILE.slice(11), 'file') });
    fx.treeRow = `pathinfos/${hex(parseAbsolute(TREE).digest)}`;
    fx.fileRow = `pathinfos/${hex(parseAbsolute(FILE).digest)}`;
  } finally {
    await store.close();
  }
  return fx;
}

// ---- S3 and PostgreSQL by hand ----

async function s3Of(addr: string): Promise<{ client: S3Client; bucket: string; key: (object: string) => string }> {
  const loc = parseS3Addr(addr);
  return { client: scaleoutS3Client(await scaleoutEnv()), bucket: loc.bucket, key: (o) => loc.prefix + o };
}

async function getObject(addr: string, object: string): Promise<Buffer> {
  const s3 = await s3Of(addr);
  try {
    const r = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: s3.key(object) }));
    return Buffer.from(await r.Body!.transformToByteArray());
  } finally {
    s3.client.destroy();
  }
}

async function putObject(addr: string, object: string, body: Buffer): Promise<void> {
  const s3 = await s3Of(addr);
  try {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: s3.key(object), Body: body, ContentLength: body.length }));
  } finally {
    s3.client.destroy();
  }
}

async function deleteObject(addr: string, object: string): Promise<void> {
  const s3 = await s3Of(addr);
  try {
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: s3.key(object) }));
  } finally {
    s3.client.destroy();
  }
}

async function sql<R extends pg.QueryResultRow>(fx: Fixture, text: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: fx.pgUrl });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}

async function whereIs(fx: Fixture, blobHex: string): Promise<{ object: string; offset: number; length: number }> {
  const [r] = await sql<{ object: string; offset: string; length: string }>(fx, 'SELECT object, "offset", length FROM blobs WHERE digest = $1', [
    Buffer.from(blobHex, 'hex'),
  ]);
  assert.ok(r, `blob ${blobHex} is indexed`);
  return { object: r.object, offset: Number(r.offset), length: Number(r.length) };
}

// ---- the CLI ----

function fsckCli(fx: Fixture | string, ...flags: string[]) {
  return runCli(['fsck', '--store', typeof fx === 'string' ? fx : fx.addr, ...flags]);
}

/** Runs fsck, expects exit 1 and an error line `kind object: …` matching `what`; returns the error lines. */
async function fsckReports(fx: Fixture, kind: string, object: string, what: RegExp, flags: string[] = []): Promise<string[]> {
  return assertReported(await fsckCli(fx, ...flags), kind, object, what);
}

describe('nix-castore fsck --store s3://…', () => {
  it('a store written through its services is clean, with and without --verify-blobs and --nar; the output counts it', async () => {
    const fx = await populate('clean');
    // A password in the index URL (trust auth ignores it) must not be printed.
    const u = new URL(fx.addr);
    const index = new URL(u.searchParams.get('index')!);
    index.password = 'hunter2';
    u.searchParams.set('index', index.toString());
    const addr = u.toString();

    const plain = await fsckCli(addr);
    assert.equal(plain.code, 0, plain.stdout + plain.stderr);
    assert.deepEqual(errorLines(plain.stdout), []);
    const { bucket, prefix } = parseS3Addr(fx.addr);
    assert.ok(plain.stdout.includes(`nix-castore fsck s3://${bucket}/${prefix}`), plain.stdout);
    assert.ok(plain.stdout.includes(`(index ${redactUrl(index.toString())}): ok, 0 warnings`), plain.stdout);
    assert.ok(!/hunter2/.test(plain.stdout + plain.stderr), 'the password is redacted');
    assert.match(plain.stdout, /\*\*\*@/);
    assert.match(plain.stdout, /S3 objects +\d+ listed \([\d.]+ [KM]iB\), 0 orphaned/);
    assert.match(plain.stdout, /blobs +6 indexed \(1\.7 MiB\), not hashed \(--verify-blobs\), 0 unreferenced/);
    assert.match(plain.stdout, /directories +2 checked, 0 unreferenced/);
    assert.match(plain.stdout, /PathInfos +2 checked$/m);

    const deep = await fsckCli(addr, '--verify-blobs', '--nar');
    assert.equal(deep.code, 0, deep.stdout + deep.stderr);
    assert.match(deep.stdout, /blobs +6 indexed \(1\.7 MiB\), 6 hashed \(1\.7 MiB read\), 0 unreferenced/);
    assert.match(deep.stdout, /PathInfos +2 checked, 2 NARs rendered/);

    const r = await fsckCli(addr, '--verify-blobs', '--nar', '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.store, `s3://${bucket}/${prefix}`);
    assert.equal(report.endpoint, parseS3Addr(fx.addr).endpoint);
    assert.ok(!report.index.includes('hunter2'));
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.warnings, []);
    const c = report.counts;
    assert.equal(c.blobs, 6);
    assert.equal(c.verifiedBlobs, 6);
    assert.equal(c.blobBytes, 6 + 50_000 + 200_000 + 1536 * 1024 + 12);
    assert.ok(c.objects >= 2, 'a pack or more and the large blob');
    assert.equal(c.objectBytes, c.blobBytes, 'no dead bytes');
    assert.equal(c.deadBytes, 0);
    assert.equal(c.directories, 2);
    assert.equal(c.pathInfos, 2);
    assert.equal(c.nars, 2);
    assert.equal(c.orphanedObjects, 0);
    assert.equal(c.orphanedBlobs, 0);
    assert.equal(c.orphanedDirectories, 0);
    const big = await whereIs(fx, fx.blob.big);
    assert.match(big.object, /^blobs\//, 'the 1.5 MiB blob has an object of its own');
    assert.match((await whereIs(fx, fx.blob.c)).object, /^packs\//, 'small blobs are packed');

    // Tiny pages and spilled references give the same answer.
    const scratch = await mkdtemp(join(tmpdir(), 'scaleout-fsck-'));
    try {
      const paged = new ScaleoutChecker(fx.addr, { pageRows: 1, spillLimitBytes: 0, scratchDir: scratch, verifyBlobs: true, concurrency: 3 });
      assert.deepEqual({ ...(await paged.run()) }, { ...c, nars: 0, narBytes: 0 });
      assert.deepEqual(await readdir(scratch), [], 'scratch files removed');
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it('an S3 object no index row refers to is orphaned bytes, an unfinished multipart upload too: warnings, exit 0; unreferenced blobs and directories are counted', async () => {
    const fx = await populate('orphan');
    const orphan = `packs/${randomUUID()}`;
    await putObject(fx.addr, orphan, randomBytes(1000));
    // What a daemon killed while streaming a large blob leaves.
    const unfinished = `blobs/${randomUUID()}`;
    const s3 = await s3Of(fx.addr);
    try {
      const up = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: s3.key(unfinished) }));
      await s3.client.send(
        new UploadPartCommand({ Bucket: s3.bucket, Key: s3.key(unfinished), UploadId: up.UploadId, PartNumber: 1, Body: randomBytes(1234), ContentLength: 1234 }),
      );
    } finally {
      s3.client.destroy();
    }
    // A blob and a directory nothing refers to.
    const store = openStore(sameAddr(fx.addr));
    try {
      await putBytes(store.blobs, b('nobody refers to me'));
      await putClosure(store.directories, [{ directories: [], files: [], symlinks: [{ name: b('x'), target: b('y') }] }]);
    } finally {
      await store.close();
    }
    const text = await fsckCli(fx);
    assert.equal(text.code, 0, text.stdout + text.stderr);
    assert.ok(
      text.stdout.split('\n').some((l) => l.startsWith(`warning: object ${orphan}: orphaned bytes (1000 bytes): no index entry refers to this object`)),
      text.stdout,
    );
    assert.ok(
      text.stdout.split('\n').some((l) => new RegExp(`^warning: object ${unfinished}: unfinished multipart upload started \\S+ \\(1 part, 1234 bytes; upload id `).test(l)),
      text.stdout,
    );
    assert.match(text.stdout, /: ok, 2 warnings\n/);
    assert.match(text.stdout, /1 orphaned \(1000 bytes\), 0 bytes unindexed inside packs, 1 unfinished multipart upload \(1.2 KiB\)/);

    const r = await fsckCli(fx, '--json');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.warnings.map((w: Finding) => `${w.kind} ${w.object}`), [`object ${orphan}`, `object ${unfinished}`]);
    assert.equal(report.counts.orphanedObjects, 1);
    assert.equal(report.counts.orphanedObjectBytes, 1000);
    assert.equal(report.counts.unfinishedUploads, 1);
    assert.equal(report.counts.unfinishedUploadBytes, 1234);
    assert.equal(report.counts.orphanedBlobs, 1);
    assert.equal(report.counts.orphanedDirectories, 1);

    // The right database with a prefix holding nothing: a wrong address, said once.
    const wrong = await fsckCli(fx.addr.replace('/store?', '/elsewhere?'));
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.match(wrong.stderr, /no objects under s3:\/\/\S+\/elsewhere\/ .*, but the blob index at .* lists 7 blobs: is the bucket or prefix wrong\?/);
  });

  it('a pack a collection rewrote, still within --grace, is counted as retired, not as orphaned bytes', async () => {
    const s = await freshScaleoutAddr('fsck-retired');
    fixtures.push({ addr: s.addr, pgUrl: s.pgUrl, drop: () => s.drop() } as Fixture);
    const KEEP = `/nix/store/${'3'.repeat(32)}-fsck-keep`;
    const JUNK = `/nix/store/${'4'.repeat(32)}-fsck-junk`;
    const store = openStore(sameAddr(s.addr));
    try {
      // At once, so that both share a pack: three quarters of it die with JUNK.
      const [keep, junk] = [randomBytes(20_000), randomBytes(60_000)];
      const [keepD, junkD] = await Promise.all([putBytes(store.blobs, keep), putBytes(store.blobs, junk)]);
      for (const [path, digest, size] of [[KEEP, keepD, keep.length], [JUNK, junkD, junk.length]] as const) {
        const node: Node = { type: 'file', name: b(path.slice(11)), digest, size, executable: false };
        const nar = await store.pathInfos.calculateNar(node);
        await store.pathInfos.put({ node, references: [], narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] } });
      }
    } finally {
      await store.close();
    }
    const pin = await runCli(['pin', 'add', 'keep', KEEP, '--store', s.addr]);
    assert.equal(pin.code, 0, pin.stderr);
    // The collector's own rewrite, stopped before its sweep: the old pack is retired, not yet deleted.
    let during: { code: number | null; stdout: string; stderr: string } | undefined;
    let duringText = '';
    const report = await collectScaleout(s.addr, {
      keepSinceMs: 0,
      graceMs: 0,
      nowMs: Date.now(),
      beforeSweep: async () => {
        during = await fsckCli(s.addr, '--json');
        duringText = (await fsckCli(s.addr)).stdout;
      },
    });
    assert.equal(report.packs.rewritten, 1, JSON.stringify(report));
    assert.equal(during!.code, 0, during!.stdout + during!.stderr);
    const json = JSON.parse(during!.stdout);
    assert.deepEqual(json.warnings, [], 'a retired pack is no problem');
    assert.equal(json.counts.orphanedObjects, 0);
    assert.equal(json.counts.retiredPacks, 1);
    assert.ok(json.counts.retiredPackBytes >= 80_000, JSON.stringify(json.counts));
    assert.match(duringText, /: ok, 0 warnings\n/);
    assert.match(duringText, /\n  retired +1 pack \(\S+ KiB\) a pack rewrite replaced, kept until retired for --grace/);
    // After the sweep (--grace 0) it is gone.
    const text = await fsckCli(s.addr);
    assert.equal(text.code, 0, text.stdout + text.stderr);
    assert.match(text.stdout, /: ok, 0 warnings\n/);
    assert.doesNotMatch(text.stdout, /\n  retired /);
  });

  it('an index row pointing at a deleted object', async () => {
    const fx = await populate('deleted');
    const { object } = await whereIs(fx, fx.blob.big);
    await deleteObject(fx.addr, object);
    const errors = await fsckReports(fx, 'object', object, new RegExp(`missing from s3://.*, but 1 indexed blob points into it \\(1572864 bytes; ${fx.blob.big}\\)`));
    const dirLine = `error: directory directories/${fx.root}: file 'big.bin': blob ${fx.blob.big} is in ${object}, which is missing`;
    assert.ok(errors.includes(dirLine), `${dirLine}\nin:\n${errors.join('\n')}`);
    assert.ok(errors.some((l) => l.startsWith(`error: pathinfo ${fx.treeRow}: ${TREE}: directory closure incomplete: directory ${fx.root} at the root`)), errors.join('\n'));
  });

  it('a truncated pack', async () => {
    const fx = await populate('truncated');
    const c = await whereIs(fx, fx.blob.c);
    const bytes = await getObject(fx.addr, c.object);
    await putObject(fx.addr, c.object, bytes.subarray(0, c.offset + 1));
    const errors = await fsckReports(
      fx,
      'object',
      c.object,
      new RegExp(`has ${c.offset + 1} bytes, but \\d+ indexed blobs? lies? beyond its end: ${fx.blob.c} at offset ${c.offset}, 200000 bytes`),
    );
    assert.ok(errors.includes(`error: directory directories/${fx.sub}: file 'c.bin': blob ${fx.blob.c} lies beyond the end of ${c.object} (${c.offset + 1} bytes)`), errors.join('\n'));
    // The pack may hold root's blobs too (the empty one after c.bin's): the first bad directory may be either.
    assert.ok(errors.some((l) => l.startsWith(`error: pathinfo ${fx.treeRow}: ${TREE}: directory closure incomplete: directory `)), errors.join('\n'));
  });

  it('a flipped byte in a pack: only --verify-blobs sees it', async () => {
    const fx = await populate('flipped');
    const c = await whereIs(fx, fx.blob.c);
    const bytes = await getObject(fx.addr, c.object);
    bytes[c.offset + 100] ^= 0x01;
    await putObject(fx.addr, c.object, bytes);
    const plain = await fsckCli(fx);
    assert.equal(plain.code, 0, `without --verify-blobs the bytes are not read:\n${plain.stdout}`);
    const errors = await fsckReports(
      fx,
      'object',
      c.object,
      new RegExp(`blob ${fx.blob.c} \\(offset ${c.offset}, 200000 bytes\\) hashes to [0-9a-f]{64}$`),
      ['--verify-blobs'],
    );
    assert.ok(
      errors.includes(`error: directory directories/${fx.sub}: file 'c.bin': blob ${fx.blob.c} is corrupt: its bytes in ${c.object} do not hash to it`),
      errors.join('\n'),
    );
    // The other blobs of the pack are fine.
    assert.equal(errors.filter((l) => l.startsWith(`error: object `)).length, 1, errors.join('\n'));
  });

  it('a directory row with the wrong bytes', async () => {
    const fx = await populate('garbage');
    await sql(fx, 'UPDATE directories SET data = $2 WHERE digest = $1', [
      Buffer.from(fx.root, 'hex'),
      Buffer.from('\x0a\x05hello, this is not a Directory at all\xff\xff', 'latin1'),
    ]);
    const errors = await fsckReports(fx, 'directory', `directories/${fx.root}`, /does not decode|hashes to .*, not to its key/);
    assert.ok(errors.includes(`error: pathinfo ${fx.treeRow}: ${TREE}: root directory ${fx.root} is corrupt`), errors.join('\n'));
  });

  it('PathInfos whose roots are missing', async () => {
    const fx = await populate('no-root');
    await sql(fx, 'DELETE FROM directories WHERE digest = $1', [Buffer.from(fx.root, 'hex')]);
    await sql(fx, 'DELETE FROM blobs WHERE digest = $1', [Buffer.from(fx.blob.file, 'hex')]);
    const errors = await fsckReports(fx, 'pathinfo', fx.treeRow, new RegExp(`^error: pathinfo \\S+: ${TREE}: root directory ${fx.root} is missing$`));
    assert.ok(errors.includes(`error: pathinfo ${fx.fileRow}: ${FILE}: root file: blob ${fx.blob.file} is not indexed`), errors.join('\n'));
    // Nothing else: the unreferenced sub directory is only counted, the unindexed bytes at most orphaned.
    assert.equal(errors.length, 2, errors.join('\n'));
  });

  it('other addresses are refused (exit 2); an unreachable database is an error (exit 1)', async () => {
    const bad = await runCli(['fsck', '--store', 'postgres://127.0.0.1/x']);
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /on-disk store .* or a scale-out one/);
    const noIndex = await runCli(['fsck', '--store', 's3://bucket/prefix']);
    assert.equal(noIndex.code, 2, noIndex.stdout + noIndex.stderr);
    assert.match(noIndex.stderr, /needs index=postgres/);
    const q = new URLSearchParams({ index: 'postgres://nobody:sekret@127.0.0.1:1/none', endpoint: 'http://127.0.0.1:1' });
    const r = await fsckCli(`s3://bucket/prefix?${q}`);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /PostgreSQL at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none/);
    assert.ok(!r.stderr.includes('sekret'));
  });
});
