// The staged-NAR store (src/cache/staging.ts) behind HTTP uploads, against
// each backend: memory, a directory (file:// stores), and the scale-out
// store's PostgreSQL. Records survive reopening where they must, aliases
// map uploaded file names to store paths, old records expire.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskStaging, MemoryStaging, type NarStaging, type StagedNar } from '../../src/cache/staging.js';
import { PgStaging } from '../../src/cache/pg-staging.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';

type Backend = { open(): NarStaging; durable: boolean; cleanup(): Promise<void> };

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

const backends: [string, () => Promise<Backend>][] = [
  ['memory', async () => {
    const m = new MemoryStaging();
    return { open: () => m, durable: false, cleanup: async () => {} };
  }],
  ['directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'staging-conf-'));
    return { open: () => new DiskStaging(join(dir, 'staged-nars')), durable: true, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }],
  ['PostgreSQL', async () => {
    const s = await freshScaleoutAddr('staging');
    return { open: () => new PgStaging(s.pgUrl), durable: true, cleanup: () => s.drop() };
  }],
];

function record(root: StagedNar['root'], stagedAt = Date.now()): StagedNar {
  return { narSha256: randomBytes(32), narSize: 1234, root, stagedAt, fileSha256: randomBytes(32) };
}

const ROOTS: StagedNar['root'][] = [
  { type: 'directory', name: Buffer.alloc(0), digest: randomBytes(32), size: 17 },
  { type: 'file', name: Buffer.alloc(0), digest: randomBytes(32), size: 5, executable: true },
  { type: 'symlink', name: Buffer.alloc(0), target: Buffer.from('/nix/store/x\n\0') },
];

for (const [name, make] of backends) {
  describe(`staged NARs: ${name}`, () => {
    it('put, get (every root type), delete', async () => {
      const b = await make();
      cleanups.push(b.cleanup);
      const s = b.open();
      for (const root of ROOTS) {
        const r = record(root);
        assert.equal(await s.get(r.narSha256), undefined);
        await s.put(r);
        assert.deepEqual(await s.get(r.narSha256), r);
        await s.delete(r.narSha256);
        assert.equal(await s.get(r.narSha256), undefined);
      }
      await s.close?.();
    });

    it('aliases: the uploaded file name maps to its store hash', async () => {
      const b = await make();
      cleanups.push(b.cleanup);
      const s = b.open();
      const f = randomBytes(32);
      assert.equal(await s.getAlias(f), undefined);
      await s.putAlias(f, '0c6kzph7l0dcbfmjap64f0czdafn3b7x');
      assert.equal(await s.getAlias(f), '0c6kzph7l0dcbfmjap64f0czdafn3b7x');
      await s.close?.();
    });

    it('records outlive the process where the backend is durable', async () => {
      const b = await make();
      cleanups.push(b.cleanup);
      const r = record(ROOTS[0]);
      const first = b.open();
      await first.put(r);
      await first.putAlias(r.fileSha256, '0c6kzph7l0dcbfmjap64f0czdafn3b7x');
      await first.close?.();
      if (!b.durable) return;
      const second = b.open();
      assert.deepEqual(await second.get(r.narSha256), r);
      assert.equal(await second.getAlias(r.fileSha256), '0c6kzph7l0dcbfmjap64f0czdafn3b7x');
      await second.close?.();
    });

    it('expire forgets only records older than the limit, never aliases', async () => {
      const b = await make();
      cleanups.push(b.cleanup);
      const s = b.open();
      const fresh = record(ROOTS[1]);
      await s.put(fresh);
      await s.putAlias(fresh.fileSha256, '0c6kzph7l0dcbfmjap64f0czdafn3b7x');
      assert.equal(await s.expire(3600_000), 0);
      assert.ok(await s.get(fresh.narSha256));
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(await s.expire(1), 1);
      assert.equal(await s.get(fresh.narSha256), undefined);
      assert.equal(await s.getAlias(fresh.fileSha256), '0c6kzph7l0dcbfmjap64f0czdafn3b7x');
      await s.close?.();
    });
  });
}
