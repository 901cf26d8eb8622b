// Stats and size lookups of an on-disk store look at the collector's epoch
// before answering (gc-fence.ts): many lookups at once share one look, and
// every lookup still sees an epoch bump made before it was asked.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskBlobService } from '../../src/castore/disk/disk-blob-service.js';
import { DiskLayout } from '../../src/castore/disk/disk-layout.js';
import { blake3 } from '../../src/castore/digest.js';
import { putBytes } from '../../src/castore/blob-service.js';

describe('gc fence: looks at the epoch', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'fence-looks-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('2000 Stats and sizes asked at once share a few looks, and answer right', async () => {
    const layout = new DiskLayout(join(root, 'a'));
    const blobs = new DiskBlobService(layout);
    const present = Buffer.from('present blob');
    await putBytes(blobs, present);
    const absent = Array.from({ length: 1000 }, (_, i) => blake3(Buffer.from(`absent ${i}`)));
    const before = layout.gc.looks;
    const [stats, sizes] = await Promise.all([
      Promise.all([blake3(present), ...absent].map((d) => blobs.stat(d))),
      Promise.all([blake3(present), ...absent].map((d) => blobs.sizeOf(d))),
    ]);
    const looks = layout.gc.looks - before;
    console.log(`2002 lookups, ${looks} looks at the epoch`);
    assert.ok(stats[0] && sizes[0] === present.length, 'the present blob is found');
    assert.ok(stats.slice(1).every((s) => s === undefined) && sizes.slice(1).every((s) => s === undefined), 'absent blobs are not');
    assert.ok(looks >= 1 && looks <= 4, `2002 lookups took ${looks} looks at the epoch`);
  });

  it('a sync asked after the epoch moved drops cached knowledge, even with a look pending', async () => {
    const layout = new DiskLayout(join(root, 'b'));
    await layout.init();
    let dropped = 0;
    layout.gc.onEpochChange(async () => void dropped++);
    await mkdir(layout.gc.dir, { recursive: true });
    await layout.gc.sync(); // first look: nothing cached yet
    assert.equal(dropped, 0);

    const pending = layout.gc.sync();
    writeFileSync(layout.gc.epochFile, '1\n'); // synchronous: the look asked for above is not taken yet
    const asked = layout.gc.sync();
    await Promise.all([pending, asked]);
    assert.equal(dropped, 1, 'the bump was seen by the look both waited for');

    await layout.gc.sync();
    assert.equal(dropped, 1, 'an unchanged epoch drops nothing');
    await writeFile(layout.gc.epochFile, '2\n');
    await layout.gc.sync();
    assert.equal(dropped, 2, 'a later bump is seen by the next sync');
  });
});
