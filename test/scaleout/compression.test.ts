// zstd-compressed blobs in the S3 store (src/scaleout/blob-codec.ts), on a
// real Ceph RGW + PostgreSQL: fewer bytes in RGW for compressible data,
// raw storage for incompressible data, old raw stores read after the
// migration, corrupt compressed entries refused, the collector's pack
// rewrite moving compressed entries as they are.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { freshScaleoutAddr, scaleoutEnv, scaleoutS3Client, type ScaleoutAddr } from '../helpers/scaleout.js';
import { S3BlobService } from '../../src/scaleout/s3-blob-service.js';
import { S3Objects } from '../../src/scaleout/s3-objects.js';
import { parseS3Addr } from '../../src/scaleout/addr.js';
import { PgGc } from '../../src/scaleout/pg-gc.js';
import { packsToRewrite, rewritePacks } from '../../src/scaleout/pack-rewrite.js';
import { FRAME_RAW } from '../../src/scaleout/blob-codec.js';
import { blake3, b3String } from '../../src/castore/digest.js';
import { inflateCounts } from '../../src/scaleout/inflate-pool.js';
import { runCli } from '../copy/run-cli.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';

const made: ScaleoutAddr[] = [];
after(async () => {
  for (const s of made) await s.drop().catch(() => {});
});

async function fresh(label: string): Promise<ScaleoutAddr> {
  const s = await freshScaleoutAddr(label);
  made.push(s);
  return s;
}

/** Text-like bytes zstd shrinks several times, different for each seed. */
function compressible(size: number, seed: number): Buffer {
  const lines: string[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const l = `${seed}:${i} export function handler${i % 97}(request, response) { return response.status(${200 + (i % 7)}); }\n`;
    lines.push(l);
    n += l.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

/** Stores each of `data` at once through a service of its own on `addr`, closed after; their digests. */
async function putAll(addr: string, data: Buffer[]): Promise<Buffer[]> {
  const blobs = new S3BlobService(addr);
  try {
    return await Promise.all(data.map((d) => put(blobs, d)));
  } finally {
    await blobs.close();
  }
}

async function put(blobs: S3BlobService, data: Buffer): Promise<Buffer> {
  const w = blobs.put();
  for (let i = 0; i < data.length; i += 256 << 10) await w.write(data.subarray(i, i + (256 << 10)));
  return w.close();
}

async function readAll(blobs: S3BlobService, digest: Uint8Array): Promise<Buffer> {
  const s = await blobs.read(digest);
  assert.ok(s, 'the blob is present');
  const parts: Uint8Array[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

async function rows(s: ScaleoutAddr): Promise<Map<string, { object: string; offset: number; length: number; codec: string | null; stored: number | null }>> {
  const c = new pg.Client({ connectionString: s.pgUrl });
  await c.connect();
  try {
    const r = await c.query<{ digest: Buffer; object: string; offset: string; length: string; codec: string | null; stored: string | null }>(
      'SELECT digest, object, "offset", length, codec, stored FROM blobs',
    );
    return new Map(
      r.rows.map((x) => [x.digest.toString('hex'), { object: x.object, offset: Number(x.offset), length: Number(x.length), codec: x.codec, stored: x.stored === null ? null : Number(x.stored) }]),
    );
  } finally {
    await c.end();
  }
}

async function sql(s: ScaleoutAddr, text: string): Promise<void> {
  const c = new pg.Client({ connectionString: s.pgUrl });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** The objects in the store's bucket and their sizes, as RGW lists them. */
async function objectSizes(s: ScaleoutAddr): Promise<Map<string, number>> {
  const objs = new S3Objects(parseS3Addr(s.addr));
  try {
    const out = new Map<string, number>();
    for await (const o of objs.list()) out.set(o.object, o.size);
    return out;
  } finally {
    objs.close();
  }
}

/** XORs byte `at` (negative: from the end) of one of the store's objects with `mask`, in RGW. */
async function flipByte(s: ScaleoutAddr, object: string, at: number, mask = 0x5a): Promise<void> {
  const s3 = scaleoutS3Client(await scaleoutEnv());
  const loc = parseS3Addr(s.addr);
  try {
    const key = `${loc.prefix}${object}`;
    const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: loc.bucket, Key: key }))).Body!.transformToByteArray());
    body[at < 0 ? body.length + at : at] ^= mask;
    await s3.send(new PutObjectCommand({ Bucket: loc.bucket, Key: key, Body: body }));
  } finally {
    s3.destroy();
  }
}

const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

describe('zstd-compressed blobs in the S3 store', () => {
  it('stores compressible blobs in fewer bytes than their size, and reads them back whole, many at once and in ranges', async () => {
    const s = await fresh('zstd-bytes');
    const blobs = new S3BlobService(s.addr);
    const small = Array.from({ length: 40 }, (_, i) => compressible(5_000 + i * 700, i));
    const large = compressible(20 * FRAME_RAW + 12_345, 99);
    let digests: Buffer[];
    try {
      digests = await Promise.all(small.map((b) => put(blobs, b)));
      digests.push(await put(blobs, large));
    } finally {
      await blobs.close();
    }
    const all = [...small, large];
    const r = await rows(s);
    for (const [k, d] of digests.entries()) assert.equal(r.get(d.toString('hex'))?.codec, k < small.length ? 'zstd' : 'zstd-frames', `blob ${k}'s codec`);
    const sizes = await objectSizes(s);
    const raw = sum(all.map((b) => b.length));
    const stored = sum(sizes.values());
    process.stderr.write(`compression: ${raw} blob bytes stored in ${stored} bytes of ${sizes.size} S3 objects\n`);
    assert.ok(stored < raw / 2, `RGW holds ${stored} bytes for ${raw} bytes of compressible blobs`);

    const reader = new S3BlobService(s.addr);
    try {
      for (const [k, d] of digests.entries()) assert.ok((await readAll(reader, d)).equals(all[k]), `blob ${k} reads back`);
      const many = await reader.readMany(digests, all.map((b) => b.length));
      for (const [k, parts] of many.entries()) assert.ok(Buffer.concat(parts!).equals(all[k]), `blob ${k} reads back in readMany`);
      const last = digests.length - 1;
      for (const [off, len] of [[0, 1], [FRAME_RAW - 100, 3 * FRAME_RAW], [5 * FRAME_RAW, 8 * FRAME_RAW], [large.length - 20_000, 20_000]]) {
        const got = Buffer.concat((await reader.readRange(digests[last], off, len))!);
        assert.ok(got.equals(large.subarray(off, off + len)), `range ${off}+${len} of the large blob`);
      }
      const part = Buffer.concat((await reader.readRange(digests[3], 100, 2000))!);
      assert.ok(part.equals(small[3].subarray(100, 2100)), 'a range of a compressed packed blob');
      assert.equal(await reader.sizeOf(digests[last]), large.length, 'sizes are the raw sizes');
      assert.deepEqual(await reader.stats(), { count: all.length, bytes: raw });
    } finally {
      await reader.close();
    }
    const fsck = await runCli(['fsck', '--verify-blobs', '--store', s.addr]);
    assert.equal(fsck.code, 0, `fsck --verify-blobs of a compressed store is clean:\n${fsck.stdout}${fsck.stderr}`);
  });

  it('stores incompressible blobs raw, packed or large', async () => {
    const s = await fresh('zstd-raw');
    const small = randomBytes(100_000);
    const large = randomBytes(3 * FRAME_RAW + 10_000);
    const [ds, dl] = await putAll(s.addr, [small, large]);
    const r = await rows(s);
    assert.equal(r.get(ds.toString('hex'))!.codec, null);
    assert.equal(r.get(dl.toString('hex'))!.codec, null, 'a large blob none of whose frames compress is stored raw');
    const sizes = await objectSizes(s);
    assert.equal(sizes.get(r.get(dl.toString('hex'))!.object), large.length, "the large blob's object is its raw bytes");
    assert.equal(sizes.get(r.get(ds.toString('hex'))!.object), small.length, "the pack holds the small blob's raw bytes");
    const reader = new S3BlobService(s.addr);
    try {
      assert.ok((await readAll(reader, ds)).equals(small));
      assert.ok((await readAll(reader, dl)).equals(large));
    } finally {
      await reader.close();
    }
  });

  it('does not try to compress blobs that begin like a compressed format (gzip, xz), packed or large, and reads them back', async () => {
    const s = await fresh('zstd-sniff');
    // Compressible bytes behind a gzip or xz header: without the sniff, zstd would shrink them several times.
    const gz = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), compressible(40_000, 21)]);
    const xz = Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), compressible(3 * FRAME_RAW, 22)]);
    const text = compressible(40_000, 23);
    const [dg, dx, dt] = await putAll(s.addr, [gz, xz, text]);
    const r = await rows(s);
    assert.equal(r.get(dg.toString('hex'))!.codec, null, 'a gzip-looking packed blob is stored raw');
    assert.equal(r.get(dx.toString('hex'))!.codec, null, 'an xz-looking large blob is stored raw, every frame');
    assert.equal(r.get(dt.toString('hex'))!.codec, 'zstd', 'the same kind of bytes without the header are compressed');
    assert.equal((await objectSizes(s)).get(r.get(dx.toString('hex'))!.object), xz.length);
    const reader = new S3BlobService(s.addr);
    try {
      for (const [d, b] of [[dg, gz], [dx, xz], [dt, text]] as const) assert.ok((await readAll(reader, d)).equals(b));
    } finally {
      await reader.close();
    }
  });

  it('compression=none stores raw; a store written before the migration reads back after it, keeps storing raw by default, and takes compressed blobs with compression=zstd', async () => {
    const s = await fresh('zstd-old');
    const small = compressible(30_000, 7);
    const large = compressible(3 * FRAME_RAW + 5, 8);
    const [ds, dl] = await putAll(`${s.addr}&compression=none`, [small, large]);
    assert.ok([...(await rows(s)).values()].every((x) => x.codec === null), 'compression=none: every row raw');
    assert.equal(sum((await objectSizes(s)).values()), small.length + large.length);
    // The schema as it was before compression: no codec columns, no settings, version 4.
    await sql(s, 'ALTER TABLE blobs DROP COLUMN codec, DROP COLUMN stored, DROP COLUMN frames; DROP TABLE store_settings; UPDATE nix_castore_schema SET version = 4');

    const now = new S3BlobService(s.addr);
    try {
      assert.ok((await readAll(now, ds)).equals(small), 'an old raw packed blob reads back');
      assert.ok((await readAll(now, dl)).equals(large), 'an old raw large blob reads back');
      assert.ok(Buffer.concat((await now.readRange(dl, FRAME_RAW - 3, 10))!).equals(large.subarray(FRAME_RAW - 3, FRAME_RAW + 7)));
      const d2 = await put(now, compressible(40_000, 9));
      assert.equal((await rows(s)).get(d2.toString('hex'))!.codec, null, 'a migrated store stores raw unless told: daemons of older versions may still read it');
    } finally {
      await now.close();
    }
    const on = new S3BlobService(`${s.addr}&compression=zstd`);
    try {
      const d3 = await put(on, compressible(40_000, 10));
      assert.equal((await rows(s)).get(d3.toString('hex'))!.codec, 'zstd', 'compression=zstd: new blobs compressed in the migrated store');
      assert.ok((await readAll(on, d3)).equals(compressible(40_000, 10)));
      assert.ok((await readAll(on, ds)).equals(small), 'raw and compressed side by side');
    } finally {
      await on.close();
    }
  });

  it('refuses a corrupt compressed entry, packed or framed, with an error naming the blob; fsck --verify-blobs reports it', async () => {
    const s = await fresh('zstd-corrupt');
    const small = compressible(50_000, 3);
    const large = compressible(6 * FRAME_RAW, 4);
    const [ds, dl] = await putAll(s.addr, [small, large]);
    const r = await rows(s);
    const rs = r.get(ds.toString('hex'))!;
    const rl = r.get(dl.toString('hex'))!;
    assert.equal(rs.codec, 'zstd');
    assert.equal(rl.codec, 'zstd-frames');
    // Flip bytes inside the stored forms: the small blob's middle, and one in the large blob's last frame.
    await flipByte(s, rs.object, rs.offset + Math.floor(rs.stored! / 2));
    await flipByte(s, rl.object, rl.stored! - 10);

    const reader = new S3BlobService(s.addr);
    try {
      const corrupt = new RegExp(`blob b3:.*compressed bytes in .* are corrupt`);
      await assert.rejects(readAll(reader, ds), corrupt);
      await assert.rejects(reader.readMany([ds], [small.length]), corrupt);
      await assert.rejects(reader.readRange(ds, 0, 10), corrupt);
      await assert.rejects(readAll(reader, dl), corrupt);
      await assert.rejects(reader.readRange(dl, 5 * FRAME_RAW + 7, 100), corrupt);
      // The frames before the damaged one are intact and still served.
      assert.ok(Buffer.concat((await reader.readRange(dl, 0, 2 * FRAME_RAW))!).equals(large.subarray(0, 2 * FRAME_RAW)));
    } finally {
      await reader.close();
    }
    const fsck = await runCli(['fsck', '--verify-blobs', '--store', s.addr]);
    assert.notEqual(fsck.code, 0, 'fsck fails');
    const out = fsck.stdout + fsck.stderr;
    for (const d of [ds, dl]) assert.match(out, new RegExp(d.toString('hex')), `fsck names ${d.toString('hex')}:\n${out}`);
  });

  it('decodes the small compressed blobs of a pack read together in few zstd calls, and still names a corrupt one', async () => {
    const s = await fresh('zstd-batch');
    const data = Array.from({ length: 60 }, (_, i) => compressible(20_000 + i, 100 + i));
    const digests = await putAll(s.addr, data);
    const r = await rows(s);
    assert.ok(digests.every((d) => r.get(d.toString('hex'))!.codec === 'zstd'), 'each is compressed whole');
    assert.equal(new Set(digests.map((d) => r.get(d.toString('hex'))!.object)).size, 1, 'all in one pack');
    const sizes = data.map((d) => d.length);
    let reader = new S3BlobService(s.addr);
    try {
      const before = inflateCounts.compressed;
      const got = await reader.readMany(digests, sizes);
      got.forEach((parts, i) => assert.ok(Buffer.concat(parts!).equals(data[i]), `blob ${i} reads back`));
      // 1.2 MB of raw bytes: one batch per 2 MiB (a call per blob before: 60).
      const calls = inflateCounts.compressed - before;
      assert.ok(calls >= 1 && calls <= 2, `${calls} zstd calls for 60 blobs`);
    } finally {
      await reader.close();
    }
    // One member's stored bytes damaged: the batch fails, and the error names that blob.
    const bad = r.get(digests[17].toString('hex'))!;
    await flipByte(s, bad.object, bad.offset + Math.floor(bad.stored! / 2));
    reader = new S3BlobService(s.addr);
    try {
      await assert.rejects(reader.readMany(digests, sizes), (err: Error) => err.message.includes(b3String(digests[17])) && /are corrupt/.test(err.message));
      const others = digests.filter((_, i) => i !== 17);
      const got = await reader.readMany(others, sizes.filter((_, i) => i !== 17));
      assert.ok(got.every((parts, k) => Buffer.concat(parts!).equals(data[k < 17 ? k : k + 1])), 'the others still read');
    } finally {
      await reader.close();
    }
  });

  it('refuses compressed entries that decompress cleanly to the wrong bytes: checked against the digest and the frame checks', async () => {
    const s = await fresh('zstd-wrong');
    const blobs = new S3BlobService(s.addr);
    const a = compressible(60_000, 11);
    const b = compressible(60_000, 12);
    // One compressible frame (so the blob is stored as frames), then frames kept raw.
    const large = Buffer.concat([compressible(FRAME_RAW, 13), randomBytes(3 * FRAME_RAW)]);
    let da: Buffer;
    let db: Buffer;
    let dl: Buffer;
    try {
      [da, db, dl] = await Promise.all([put(blobs, a), put(blobs, b), put(blobs, large)]);
    } finally {
      await blobs.close();
    }
    const r = await rows(s);
    const rb = r.get(db.toString('hex'))!;
    const rl = r.get(dl.toString('hex'))!;
    assert.equal(r.get(da.toString('hex'))!.codec, 'zstd');
    assert.equal(rl.codec, 'zstd-frames');
    // a's row now names b's compressed bytes: valid zstd of the right size, other bytes.
    await sql(s, `UPDATE blobs SET object = '${rb.object}', "offset" = ${rb.offset}, stored = ${rb.stored} WHERE digest = '\\x${da.toString('hex')}'::bytea`);
    // A byte of the large blob's third frame (stored raw) flipped: no zstd decoding sees it.
    await flipByte(s, rl.object, -FRAME_RAW - 1000, 0x01);
    const reader = new S3BlobService(s.addr);
    try {
      await assert.rejects(readAll(reader, da), /do not hash to the digest/);
      await assert.rejects(reader.readMany([da], [a.length]), /do not hash to the digest/);
      await assert.rejects(reader.readRange(dl, 2 * FRAME_RAW, 100), /frame 2 does not match its checksum/);
      await assert.rejects(readAll(reader, dl), /frame 2 does not match its checksum/);
      assert.ok((await readAll(reader, db)).equals(b), 'the blob whose bytes they are still reads');
      assert.ok(Buffer.concat((await reader.readRange(dl, 0, 2 * FRAME_RAW))!).equals(large.subarray(0, 2 * FRAME_RAW)));
    } finally {
      await reader.close();
    }
  });

  it('serves compressed blobs over gRPC (Blob Read through a daemon on the store)', async () => {
    const s = await fresh('zstd-grpc');
    const small = compressible(200_000, 21);
    const large = compressible(5 * FRAME_RAW + 77, 22);
    const [ds, dl] = await putAll(s.addr, [small, large]);
    const r = await rows(s);
    assert.equal(r.get(ds.toString('hex'))!.codec, 'zstd');
    assert.equal(r.get(dl.toString('hex'))!.codec, 'zstd-frames');
    const daemon = await startDaemonProcess({ args: ['--store', s.addr] });
    const store = openStore(sameAddr(daemon.addr));
    try {
      for (const [d, want] of [[ds, small], [dl, large]] as const) {
        const st = await store.blobs.read(d);
        assert.ok(st);
        const parts: Uint8Array[] = [];
        for await (const c of st) parts.push(c);
        assert.ok(Buffer.concat(parts).equals(want), 'Blob Read over gRPC returns the raw bytes');
      }
    } finally {
      await store.close();
      await daemon.stop();
    }
  });

  it("the collector's pack rewrite moves compressed entries as they are stored, and they read back", async () => {
    const s = await fresh('zstd-rewrite');
    const blobs = new S3BlobService(s.addr);
    const data = Array.from({ length: 30 }, (_, i) => compressible(8_000 + i * 300, 100 + i));
    let digests: Buffer[];
    try {
      digests = await Promise.all(data.map((b) => put(blobs, b)));
    } finally {
      await blobs.close();
    }
    const before = await rows(s);
    assert.ok([...before.values()].every((x) => x.codec === 'zstd'));
    // Half of them die (as a collection deletes rows).
    const dead = digests.filter((_, i) => i % 2 === 1);
    await sql(s, `DELETE FROM blobs WHERE digest IN (${dead.map((d) => `'\\x${d.toString('hex')}'::bytea`).join(', ')})`);

    const gc = await PgGc.open(s.pgUrl);
    const objs = new S3Objects(parseS3Addr(s.addr));
    try {
      const sizes = await objectSizes(s);
      const todo = await packsToRewrite(gc, [...sizes].map(([object, size]) => ({ object, size })));
      assert.ok(todo.length >= 1, 'packs more than a quarter dead are rewritten');
      const res = await rewritePacks(gc, objs, todo);
      assert.deepEqual(res.warnings, []);
      assert.equal(res.rewritten, todo.length);
    } finally {
      objs.close();
      await gc.close();
    }
    const afterRows = await rows(s);
    const sizes = await objectSizes(s);
    const moved = [...afterRows.values()];
    assert.ok(moved.every((x) => x.codec === 'zstd' && !before.has(x.object)), 'live rows keep their codec and point to the new pack');
    const newPack = moved[0].object;
    assert.equal(sizes.get(newPack), sum(moved.map((x) => x.stored!)), 'the new pack holds the compressed forms, not raw bytes');
    const reader = new S3BlobService(s.addr);
    try {
      for (const [i, d] of digests.entries()) {
        if (i % 2 === 1) continue;
        assert.ok((await readAll(reader, d)).equals(data[i]), `blob ${i} reads from the rewritten pack`);
        assert.ok(blake3((await readAll(reader, d))).equals(d));
      }
    } finally {
      await reader.close();
    }
  });
});
