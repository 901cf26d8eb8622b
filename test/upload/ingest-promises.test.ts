// Ingesting a directory of small files does their work without a promise
// of its own per file: the async NAR writer it replaced cost several
// promises, generator objects and iterator results per file, most of a
// copy's garbage (and the old generation's growth that set its peak RSS).
// Counted with async_hooks, which sees every promise created: a bound,
// not a time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { ingestPath } from '../../src/upload/ingest.js';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { DEFAULT_RETRY } from '../../src/upload/retry.js';
import { promisesDuring } from '../helpers/promises.js';

const FILES = 3000;

describe('ingest: per-file cost', () => {
  it(`${FILES} small files already in the store: fewer than 2 promises per file, all told`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ingest-promises-'));
    try {
      const root = join(dir, 'tree');
      for (let d = 0; d < 10; d++) {
        mkdirSync(join(root, `d${d}`), { recursive: true });
        for (let i = 0; i < FILES / 10; i++) writeFileSync(join(root, `d${d}`, `f${i}`), `file ${d}/${i}\n`);
      }
      const store = openStore(sameAddr('memory://'));
      // The first ingest stores the blobs; the second finds every digest in its run's dedup (no upload at all),
      // so what is counted is the walk's own cost.
      const uploader = new BlobUploader(store.blobs, 8, DEFAULT_RETRY);
      const first = await ingestPath(root, Buffer.from('tree'), { formula: 'head', blobs: uploader });
      let again: Awaited<ReturnType<typeof ingestPath>> | undefined;
      const promises = await promisesDuring(async () => {
        again = await ingestPath(root, Buffer.from('tree'), { formula: 'head', blobs: uploader });
      });
      assert.deepEqual(again!.narSha256, first.narSha256);
      assert.equal(again!.directories.length, 11);
      assert.equal(uploader.stats.blobsSent, FILES);
      assert.ok(promises < 2 * FILES, `${promises} promises for ${FILES} files`);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
