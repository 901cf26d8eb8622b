// The daemon checks the size of every file of a Directory and PathInfo Put
// against its store (twice per file of a closure). On the on-disk store
// the files' sizes are looked up in one batch per round: one look at the
// collector's epoch and no promise per packed blob, which was ~3 per file
// of the daemon's garbage. Real on-disk store; promises counted with
// async_hooks (a bound, not a time); wrong sizes still refused.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { putBytes } from '../../src/castore/blob-service.js';
import type { Directory } from '../../src/castore/messages.js';
import { fileSizeChecks } from '../../src/store/check-content.js';
import { promisesDuring } from '../helpers/promises.js';

const FILES = 2000;

describe('file size checks on the on-disk store', () => {
  it(`${FILES} packed files: far fewer promises than files, and a wrong size refused`, async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'size-checks-'));
    const store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
    try {
      const files: Directory['files'] = [];
      for (let i = 0; i < FILES; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) => Buffer.from(`file number ${i + k} `.repeat(1 + ((i + k) % 7))));
        const digests = await Promise.all(batch.map((b) => putBytes(store.blobs, b)));
        batch.forEach((b, k) => files.push({ name: Buffer.from(`f${String(i + k).padStart(5, '0')}`), digest: digests[k], size: b.length, executable: false }));
      }
      const dir: Directory = { directories: [], files, symlinks: [] };

      const checks = fileSizeChecks(store.blobs)!;
      const promises = await promisesDuring(async () => {
        await checks.add(dir);
        await checks.flush();
      });
      assert.ok(promises * 10 < FILES, `${promises} promises to check ${FILES} packed files`);

      const wrong: Directory = { directories: [], files: [{ ...files[7], size: files[7].size + 1 }], symlinks: [] };
      const again = fileSizeChecks(store.blobs)!;
      await again.add(wrong);
      await assert.rejects(() => again.flush(), /size|bytes/i);
    } finally {
      await store.close();
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
