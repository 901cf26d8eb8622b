// Small blobs of the on-disk store go to pack files by group commit. These
// tests use real files and real processes: batching, visibility across
// instances and processes, SIGKILL mid-write, torn and damaged packs (the
// store and fsck), and stores written before packs existed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp, { type FileHandle } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { appendFile, mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { PackStore } from '../../src/castore/disk/pack-store.js';
import { BATCH_PACK_MAX, DiskBlobService, PACK_BLOB_MAX } from '../../src/castore/disk/disk-blob-service.js';
import { DiskLayout } from '../../src/castore/disk/disk-layout.js';
import { putBytes, readAll } from '../../src/castore/blob-service.js';
import { blake3, b3Hex } from '../../src/castore/digest.js';
import { RECORD_HEADER } from '../../src/castore/disk/pack-format.js';
import { StoreChecker, type Finding } from '../../src/fsck/fsck.js';

let tmp: string;
before(async () => (tmp = await mkdtemp(join(tmpdir(), 'castore-packs-'))));
after(() => rm(tmp, { recursive: true, force: true }));

let n = 0;
async function freshDir(): Promise<string> {
  const d = join(tmp, `s${n++}`);
  await mkdir(join(d, 'packs'), { recursive: true });
  return d;
}

const blobsOf = (count: number, max = 5000): Buffer[] => Array.from({ length: count }, () => randomBytes(1 + Math.floor(Math.random() * max)));

/** Runs a module in a child process; lines it prints come to `onLine`. */
function child(code: string, onLine: (line: string) => void = () => {}) {
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'], cwd: process.cwd() });
  createInterface({ input: p.stdout! }).on('line', onLine);
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  return { p, exited };
}
const distUrl = (rel: string): string => new URL(`../../src/${rel}`, import.meta.url).href;

/**
 * Records every FileHandle opened under `dir` (through fs/promises' `open`,
 * the store's own import included) until stop(): held here, so none is
 * closed by garbage collection and hidden.
 */
function trackOpens(dir: string) {
  const real = fsp.open;
  const handles: { path: string; handle: FileHandle }[] = [];
  fsp.open = async (...args: Parameters<typeof fsp.open>) => {
    const handle = await real(...args);
    if (String(args[0]).startsWith(dir + '/')) handles.push({ path: String(args[0]), handle });
    return handle;
  };
  syncBuiltinESMExports();
  return Object.assign(handles, {
    stop() {
      fsp.open = real;
      syncBuiltinESMExports();
    },
  });
}

async function fsck(root: string): Promise<{ findings: Finding[]; blobs: number }> {
  const findings: Finding[] = [];
  const counts = await new StoreChecker(root, { onFinding: (f) => findings.push(f) }).run();
  return { findings, blobs: counts.blobs };
}

describe('pack store', () => {
  it('commits a burst of blobs in a few batches and reads every one back', async () => {
    const dir = join(await freshDir(), 'packs');
    const s = new PackStore(dir);
    const blobs = blobsOf(500);
    await Promise.all(blobs.map((b) => s.append(blake3(b), b)));
    assert.ok(s.batches <= 3, `500 concurrent appends took ${s.batches} batches (each batch is two fsyncs)`);
    for (const b of blobs) assert.deepEqual(await s.read(b3Hex(blake3(b))), b);
    // The same blob again costs nothing.
    const before = s.batches;
    await s.append(blake3(blobs[0]), blobs[0]);
    assert.equal(s.batches, before);
    await s.close();
    const names = (await readdir(dir)).sort();
    assert.equal(names.length, 2, names.join());
  });

  it('another instance sees blobs appended after it first looked', async () => {
    const dir = join(await freshDir(), 'packs');
    const a = new PackStore(dir);
    const b = new PackStore(dir);
    const x = randomBytes(100);
    assert.equal(await b.find(b3Hex(blake3(x))), undefined);
    await a.append(blake3(x), x);
    assert.deepEqual(await b.read(b3Hex(blake3(x))), x);
    const more = blobsOf(50);
    await Promise.all(more.map((m) => a.append(blake3(m), m)));
    for (const m of more) assert.ok(await b.find(b3Hex(blake3(m))));
    await Promise.all([a.close(), b.close()]);
  });

  it('lookups racing the start of a new pack leave no file open after close', async () => {
    // A catch-up that listed the directory while this instance created its
    // pack once adopted it as a foreign pack and opened (and leaked) its index.
    const dir = join(await freshDir(), 'packs');
    const handles = trackOpens(dir);
    try {
      for (let round = 0; round < 30; round++) {
        const s = new PackStore(dir);
        const b = randomBytes(100);
        const lookups = (async () => {
          for (let i = 0; i < 200; i++) await s.find(b3Hex(blake3(Buffer.from(`absent ${i}`))));
        })();
        await Promise.all([s.append(blake3(b), b), lookups]);
        await s.close();
        const open = handles.filter((h) => h.handle.fd !== -1).map((h) => h.path);
        assert.deepEqual(open, [], `round ${round}: still open after close()`);
      }
    } finally {
      handles.stop();
    }
  });

  it('a blob another process stored is visible the moment its Put returned, and after it exits', async () => {
    const root = await freshDir();
    const mine = new DiskBlobService(new DiskLayout(root));
    const seen: string[] = [];
    const c = child(
      `import { DiskBlobService } from '${distUrl('castore/disk/disk-blob-service.js')}';
       import { DiskLayout } from '${distUrl('castore/disk/disk-layout.js')}';
       import { putBytes } from '${distUrl('castore/blob-service.js')}';
       const s = new DiskBlobService(new DiskLayout(${JSON.stringify(root)}));
       for (let i = 0; i < 20; i++) console.log((await putBytes(s, Buffer.from('blob ' + i))).toString('hex'));
       await s.close();`,
      (l) => seen.push(l),
    );
    // Check each digest as soon as the child reports it: its Put has returned.
    let checked = 0;
    while (checked < 20) {
      if (seen.length > checked) {
        const hex = seen[checked++];
        assert.ok(await mine.stat(Buffer.from(hex, 'hex')), `blob ${hex} not visible`);
      } else await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(await c.exited, 0);
    const fresh = new DiskBlobService(new DiskLayout(root));
    assert.deepEqual(await readAll(fresh, Buffer.from(seen[7], 'hex')), Buffer.from('blob 7'));
    await Promise.all([mine.close(), fresh.close()]);
  });

  it('after SIGKILL mid-write, every acknowledged blob is there and sound; fsck names the torn tail', async () => {
    const root = await freshDir();
    const acked: string[] = [];
    const c = child(
      `import { PackStore } from '${distUrl('castore/disk/pack-store.js')}';
       import { blake3 } from '${distUrl('castore/digest.js')}';
       import { randomBytes } from 'node:crypto';
       const s = new PackStore(${JSON.stringify(join(root, 'packs'))});
       for (;;) {
         const batch = Array.from({ length: 64 }, () => randomBytes(1000 + Math.floor(Math.random() * 60000)));
         await Promise.all(batch.map(async (b) => { const d = blake3(b); await s.append(d, b); console.log(d.toString('hex') + ' ' + b.length); }));
       }`,
      (l) => acked.push(l),
    );
    while (acked.length < 600) await new Promise((r) => setTimeout(r, 5));
    c.p.kill('SIGKILL');
    await c.exited;
    const s = new PackStore(join(root, 'packs'));
    for (const line of acked) {
      const [hex, len] = line.split(' ');
      const data = await s.read(hex);
      assert.ok(data, `acknowledged blob ${hex} lost`);
      assert.equal(data.length, Number(len));
      assert.equal(b3Hex(blake3(data)), hex);
    }
    await s.close();
    const { findings, blobs } = await fsck(root);
    assert.ok(blobs >= acked.length);
    assert.deepEqual(findings.filter((f) => f.severity === 'error'), []);
  });

  it('ignores a torn index entry and a record that is not what its entry says; fsck reports both', async () => {
    const root = await freshDir();
    const dir = join(root, 'packs');
    const s = new PackStore(dir);
    const blobs = blobsOf(10);
    for (const b of blobs) await s.append(blake3(b), b);
    await s.close();
    // As if written by a process that is gone (no pid is this large).
    const [pack] = (await readdir(dir)).filter((f) => f.endsWith('.pack'));
    const dead = '4999999999-deadbeef0000';
    await rename(join(dir, pack), join(dir, `${dead}.pack`));
    await rename(join(dir, pack.replace('.pack', '.idx')), join(dir, `${dead}.idx`));
    await appendFile(join(dir, `${dead}.idx`), randomBytes(48 + 20));
    await appendFile(join(dir, `${dead}.pack`), randomBytes(300));
    // Damage: the 3rd record's content, the 5th record's header.
    const info = await new PackStore(dir).entries();
    const h = await open(join(dir, `${dead}.pack`), 'r+');
    await h.write(Buffer.from('XX'), 0, 2, info.get(b3Hex(blake3(blobs[2])))!.offset + RECORD_HEADER);
    await h.write(Buffer.from('XX'), 0, 2, info.get(b3Hex(blake3(blobs[4])))!.offset + 10);
    await h.close();

    const fresh = new PackStore(dir);
    assert.equal(await fresh.read(b3Hex(blake3(blobs[4]))), undefined);
    assert.deepEqual(await fresh.read(b3Hex(blake3(blobs[9]))), blobs[9]);
    await fresh.close();

    const { findings, blobs: sound } = await fsck(root);
    assert.equal(sound, 8);
    const errors = findings.filter((f) => f.severity === 'error').map((f) => f.message);
    assert.equal(errors.length, 2, errors.join('\n'));
    assert.match(errors.join('\n'), new RegExp(`${b3Hex(blake3(blobs[2]))}: content \\(\\d+ bytes\\) hashes to`));
    assert.match(errors.join('\n'), new RegExp(`${b3Hex(blake3(blobs[4]))}: the record there is not the one the index names`));
    const warnings = findings.filter((f) => f.severity === 'warning').map((f) => f.message).join('\n');
    assert.match(warnings, /ends in 68 bytes that are not a whole, valid entry/);
    assert.match(warnings, /300 bytes after the last indexed record/);
  });
});

describe('on-disk blob service with packs', () => {
  it(`packs blobs up to ${PACK_BLOB_MAX} bytes and gives larger ones a file each`, async () => {
    const root = await freshDir();
    const s = new DiskBlobService(new DiskLayout(root));
    const small = randomBytes(PACK_BLOB_MAX);
    const large = randomBytes(PACK_BLOB_MAX + 1);
    const empty = Buffer.alloc(0);
    for (const b of [small, large, empty]) assert.deepEqual(await putBytes(s, b), blake3(b));
    // Written in pieces, as gRPC chunks arrive.
    const w = s.put();
    for (let off = 0; off < large.length; off += 70_000) await w.write(large.subarray(off, off + 70_000));
    assert.deepEqual(await w.close(), blake3(large));
    const files = (await readdir(join(root, 'blobs'), { recursive: true })).filter((f) => f.length > 3);
    assert.deepEqual(files, [join(b3Hex(blake3(large)).slice(0, 2), b3Hex(blake3(large)))]);
    for (const b of [small, large, empty]) assert.deepEqual(await readAll(s, blake3(b)), b);
    await s.close();
  });

  it(`packs the blobs of a batch up to ${BATCH_PACK_MAX} bytes, fsck finds the store clean`, async () => {
    const root = await freshDir();
    const s = new DiskBlobService(new DiskLayout(root));
    const packed = [randomBytes(PACK_BLOB_MAX + 1), randomBytes(BATCH_PACK_MAX), randomBytes(1000)];
    const large = randomBytes(BATCH_PACK_MAX + 1);
    const batch = [...packed, large].map((data) => ({ digest: blake3(data), data }));
    await (await s.batches()).put(batch);
    const files = (await readdir(join(root, 'blobs'), { recursive: true })).filter((f) => f.length > 3);
    assert.deepEqual(files, [join(b3Hex(blake3(large)).slice(0, 2), b3Hex(blake3(large)))], 'only the blob above the limit has a file');
    await s.close();
    const again = new DiskBlobService(new DiskLayout(root));
    for (const b of [...packed, large]) {
      assert.deepEqual(await again.sizeOf(blake3(b)), b.length);
      assert.deepEqual(await readAll(again, blake3(b)), b);
    }
    assert.deepEqual((await (await again.batches()).has(batch.map((b) => b.digest))), [true, true, true, true]);
    await again.close();
    const checked = await fsck(root);
    assert.deepEqual(checked.findings.filter((f) => f.severity === 'error'), []);
    assert.equal(checked.blobs, 4);
  });

  it('still reads and finds small blobs stored one file each, as before packs', async () => {
    const root = await freshDir();
    const old = randomBytes(1234);
    const hex = b3Hex(blake3(old));
    await mkdir(join(root, 'blobs', hex.slice(0, 2)), { recursive: true });
    await writeFile(join(root, 'blobs', hex.slice(0, 2), hex), old);
    const s = new DiskBlobService(new DiskLayout(root));
    assert.ok(await s.stat(blake3(old)));
    assert.deepEqual(await readAll(s, blake3(old)), old);
    // Putting it again keeps the one copy.
    await putBytes(s, old);
    await s.close();
    assert.deepEqual(await readdir(join(root, 'packs')), []);
    assert.deepEqual(await readFile(join(root, 'blobs', hex.slice(0, 2), hex)), old);
  });
});
