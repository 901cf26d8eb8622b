import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syncDir, dirSyncCounts } from '../../src/castore/disk/dir-sync.js';

async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'dir-sync-'));
  return d;
}

test('callers arriving while a directory fsync runs share the next one', async () => {
  const dir = await freshDir();
  try {
    const before = dirSyncCounts();
    const first = syncDir(dir);
    const waiting = Array.from({ length: 100 }, () => syncDir(dir));
    await Promise.all([first, ...waiting]);
    const after = dirSyncCounts();
    assert.equal(after.opens - before.opens, 1, 'the directory is opened once');
    // The first call's fsync, then one more for everyone who came during it.
    assert.equal(after.syncs - before.syncs, 2);
    assert.ok(waiting.every((p) => p === waiting[0]), 'the waiters share one promise');
    assert.notEqual(waiting[0], first, 'a caller never rides on an fsync that started before it');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sequential calls each get an fsync of their own, on the same open handle', async () => {
  const dir = await freshDir();
  try {
    const before = dirSyncCounts();
    for (let i = 0; i < 5; i++) {
      await writeFile(join(dir, `t${i}`), 'x');
      await rename(join(dir, `t${i}`), join(dir, `f${i}`));
      await syncDir(dir);
    }
    const after = dirSyncCounts();
    assert.equal(after.syncs - before.syncs, 5);
    assert.equal(after.opens - before.opens, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a directory removed and made again at the same path is reopened', async () => {
  const parent = await freshDir();
  const dir = join(parent, 'shard');
  try {
    await mkdir(dir);
    await syncDir(dir);
    const before = dirSyncCounts();
    await rm(dir, { recursive: true });
    await mkdir(dir);
    await syncDir(dir);
    assert.equal(dirSyncCounts().opens - before.opens, 1, 'the stale handle is not reused');
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});

test('a missing directory rejects (does not throw synchronously)', async () => {
  const parent = await freshDir();
  try {
    const p = syncDir(join(parent, 'nope'));
    assert.ok(p instanceof Promise);
    await assert.rejects(p, /ENOENT/);
  } finally {
    await rm(parent, { recursive: true, force: true });
  }
});
