// Ingesting real store paths (built by Nix): one read pass gives the same
// NAR hash and size as Nix, the castore holds everything needed, and the NAR
// rendered back from the castore equals `nix-store --dump` byte for byte.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fixtureClosure, nixPathInfo, nixStoreDump, FIXTURE_PATHS, type FixtureClosure } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { ingestPath, IngestError } from '../../src/upload/ingest.js';
import { BlobUploader } from '../../src/upload/blob-uploader.js';
import { renderNar } from '../../src/store/render-nar.js';
import { parseNarHash } from '../../src/nix/hash.js';
import { DEFAULT_RETRY } from '../../src/upload/retry.js';

let fx: FixtureClosure;
before(async () => {
  fx = await fixtureClosure();
});

describe('ingestPath on real store paths', () => {
  for (const formula of ['head', 'legacy'] as const) {
    for (const { key } of FIXTURE_PATHS) {
      it(`${key} (${formula} sizes): NAR hash/size as Nix's; rendered NAR = nix-store --dump`, async () => {
        const path = fx.byKey[key];
        const store = openStore(sameAddr('memory://'));
        const uploader = new BlobUploader(store.blobs, 8, DEFAULT_RETRY);
        const r = await ingestPath(path, Buffer.from(basename(path)), { formula, blobs: uploader });
        const [info] = await nixPathInfo([path]);
        assert.equal(r.narSize, info.narSize);
        assert.deepEqual(r.narSha256, Buffer.from(parseNarHash(info.narHash!)));
        if (r.root.type === 'directory') {
          const rootDigest = await putClosure(store.directories, r.directories);
          assert.deepEqual(Buffer.from(rootDigest), Buffer.from(r.root.digest));
        } else {
          assert.equal(r.directories.length, 0);
        }
        const nar = Buffer.concat(await fromAsync(renderNar(r.root, store)));
        assert.ok(nar.equals(await nixStoreDump(path)), 'castore NAR equals nix-store --dump');
        const sent = uploader.stats.blobsSent;
        const fresh = new BlobUploader(store.blobs, 8, DEFAULT_RETRY);
        await ingestPath(path, Buffer.from(basename(path)), { formula, blobs: fresh });
        assert.equal(fresh.stats.blobsSent, 0, 'a second ingest sends no blob');
        assert.equal(fresh.stats.blobsSkipped, sent, 'every blob was found by Stat');
        await store.close();
      });
    }
  }

  it('names and symlink targets that are not UTF-8: the bytes as they are, in byte order (= nix-store --dump)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ingest-bytes-'));
    const root = Buffer.from(join(dir, 'tree'));
    const at = (...names: (string | Buffer)[]) => Buffer.concat([root, ...names.flatMap((n) => [Buffer.from('/'), Buffer.from(n)])]);
    try {
      mkdirSync(root);
      // Latin-1 é, a lone continuation byte, a byte that sorts after every ASCII name, and UTF-8 é.
      const odd = [Buffer.from([0x63, 0xe9]), Buffer.from([0x80, 0x41]), Buffer.from([0xff]), Buffer.from('c\u00e9')];
      for (const n of odd) writeFileSync(at(n), n);
      mkdirSync(at('sub'));
      writeFileSync(at('sub', Buffer.from([0xfe, 0x20])), 'x');
      symlinkSync(Buffer.from([0x2e, 0x2f, 0xe9, 0xff]), at('link'));
      const store = openStore(sameAddr('memory://'));
      const r = await ingestPath(root.toString(), Buffer.from('tree'), { formula: 'head', blobs: new BlobUploader(store.blobs, 2, DEFAULT_RETRY) });
      await putClosure(store.directories, r.directories);
      const nar = Buffer.concat(await fromAsync(renderNar(r.root, store)));
      const dump = await nixStoreDump(root.toString());
      assert.ok(nar.equals(dump), 'castore NAR equals nix-store --dump');
      assert.equal(r.narSize, dump.length);
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a fifo, naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ingest-fifo-'));
    try {
      execFileSync('mkfifo', [join(dir, 'pipe')]);
      const store = openStore(sameAddr('memory://'));
      await assert.rejects(
        ingestPath(dir, Buffer.from('x'), { formula: 'head', blobs: new BlobUploader(store.blobs, 2, DEFAULT_RETRY) }),
        (e: Error) => e instanceof IngestError && /pipe: unsupported file type \(fifo\)/.test(e.message),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

async function fromAsync<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
