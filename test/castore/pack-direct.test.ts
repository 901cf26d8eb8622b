// Blob packs written with O_DIRECT (pack-store.ts with slabs): each batch
// rewrites the pack's last partial block and ends padded; the padding is
// overwritten by the next batch and cut off at close. Batches that find no
// slab go through the page cache in the same pack. Real files; SIGKILL in
// a real child process.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { PackStore } from '../../src/castore/disk/pack-store.js';
import { AlignedSlabs } from '../../src/castore/disk/aligned-slabs.js';
import { directWriteCount, directWritesWork } from '../../src/castore/disk/direct-io.js';
import { RECORD_HEADER } from '../../src/castore/disk/pack-format.js';
import { blake3, b3Hex } from '../../src/castore/digest.js';
import { StoreChecker, type Finding } from '../../src/fsck/fsck.js';

let tmp: string;
let works = false;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-direct-packs-'));
  works = await directWritesWork(tmp, new AlignedSlabs(1));
});
after(() => rm(tmp, { recursive: true, force: true }));

let n = 0;
async function freshDir(): Promise<string> {
  const d = join(tmp, `s${n++}`);
  await mkdir(join(d, 'packs'), { recursive: true });
  return d;
}

const blobsOf = (count: number, max: number): Buffer[] => Array.from({ length: count }, () => randomBytes(1 + Math.floor(Math.random() * max)));

async function checkAll(s: PackStore, blobs: Buffer[]): Promise<void> {
  for (const b of blobs) assert.deepEqual(await s.read(b3Hex(blake3(b))), b, `blob of ${b.length} bytes`);
}

async function packSizes(dir: string): Promise<number[]> {
  const names = (await readdir(dir)).filter((f) => f.endsWith('.pack'));
  return Promise.all(names.map(async (f) => (await stat(join(dir, f))).size));
}

describe('blob packs with O_DIRECT', () => {
  it('batches of any size follow each other in one pack; close cuts the padding off', async (t) => {
    if (!works) return t.skip('the temp filesystem takes no O_DIRECT writes');
    const dir = join(await freshDir(), 'packs');
    const s = new PackStore(dir, new AlignedSlabs(4));
    const before = directWriteCount();
    const all: Buffer[] = [];
    // One blob, a few, then batches of several MiB (more slabs than the writer has).
    for (const [count, max] of [[1, 10], [3, 5000], [40, 100_000], [1, 3], [200, 60_000], [7, 4096]] as const) {
      const batch = blobsOf(count, max);
      await Promise.all(batch.map((b) => s.append(blake3(b), b)));
      all.push(...batch);
      await checkAll(s, all); // readable right after, from this process
    }
    assert.ok(directWriteCount() - before >= 6, 'written with O_DIRECT');
    const fresh = new PackStore(dir);
    await checkAll(fresh, all); // and from the index alone
    await fresh.close();
    await s.close();
    const expected = all.reduce((sum, b) => sum + RECORD_HEADER + b.length, 0);
    assert.deepEqual(await packSizes(dir), [expected], 'exactly the records, no padding');
  });

  it('a batch that finds no slab goes through the page cache, and the next direct one follows it', async (t) => {
    if (!works) return t.skip('the temp filesystem takes no O_DIRECT writes');
    const dir = join(await freshDir(), 'packs');
    const slabs = new AlignedSlabs(2);
    const s = new PackStore(dir, slabs);
    const all: Buffer[] = [];
    for (let round = 0; round < 6; round++) {
      const held = round % 2 === 1 ? [slabs.take(), slabs.take()] : []; // every other batch finds none
      const batch = blobsOf(5 + round * 7, 9000);
      await Promise.all(batch.map((b) => s.append(blake3(b), b)));
      for (const h of held) if (h) slabs.give(h);
      all.push(...batch);
    }
    await checkAll(s, all);
    await s.close();
    const fresh = new PackStore(dir);
    await checkAll(fresh, all);
    await fresh.close();
    assert.equal(slabs.idle, slabs.size, 'every slab came back');
  });

  it('after SIGKILL mid-write every acknowledged blob is there and sound; fsck finds no error', async (t) => {
    if (!works) return t.skip('the temp filesystem takes no O_DIRECT writes');
    const root = await freshDir();
    const dir = join(root, 'packs');
    const acked: string[] = [];
    const code = `import { PackStore } from '${new URL('../../src/castore/disk/pack-store.js', import.meta.url).href}';
       import { AlignedSlabs } from '${new URL('../../src/castore/disk/aligned-slabs.js', import.meta.url).href}';
       import { blake3 } from '${new URL('../../src/castore/digest.js', import.meta.url).href}';
       import { randomBytes } from 'node:crypto';
       const s = new PackStore(${JSON.stringify(dir)}, new AlignedSlabs(4));
       for (;;) {
         const batch = Array.from({ length: 64 }, () => randomBytes(1 + Math.floor(Math.random() * 60000)));
         await Promise.all(batch.map(async (b) => { const d = blake3(b); await s.append(d, b); console.log(d.toString('hex') + ' ' + b.length); }));
       }`;
    const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: p.stdout! }).on('line', (l) => acked.push(l));
    const exited = new Promise((r) => p.on('exit', r));
    while (acked.length < 600) await new Promise((r) => setTimeout(r, 5));
    p.kill('SIGKILL');
    await exited;
    const s = new PackStore(dir);
    for (const line of acked) {
      const [hex, len] = line.split(' ');
      const data = await s.read(hex);
      assert.ok(data, `acknowledged blob ${hex} lost`);
      assert.equal(data.length, Number(len));
      assert.equal(b3Hex(blake3(data)), hex);
    }
    await s.close();
    const findings: Finding[] = [];
    const counts = await new StoreChecker(root, { onFinding: (f) => findings.push(f) }).run();
    assert.ok(counts.blobs >= acked.length);
    assert.deepEqual(findings.filter((f) => f.severity === 'error'), []);
  });
});
