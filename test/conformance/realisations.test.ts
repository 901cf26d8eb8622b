// Where the binary cache keeps realisations (src/cache/realisations.ts),
// against each backend openRealisations builds: memory, a directory (file://
// stores, --upload-staging), and the scale-out store's PostgreSQL. Both
// names Nix uses are kept apart; a later upload replaces an earlier one;
// records outlive the process where the backend is durable.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRealisations } from '../../src/cache/open-staging.js';
import { DiskStaging } from '../../src/cache/staging.js';
import { checkRealisation, isRealisationKey, type RealisationStore } from '../../src/cache/realisations.js';
import { fileAddr } from '../../src/addr/parse.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';
import { PgRealisations } from '../../src/cache/pg-realisations.js';
import pg from 'pg';

type Backend = { open(): RealisationStore; durable: boolean; cleanup(): Promise<void> };

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

const backends: [string, () => Promise<Backend>][] = [
  ['memory', async () => {
    const m = openRealisations('memory://');
    return { open: () => m, durable: false, cleanup: async () => {} };
  }],
  ['an on-disk store\'s directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'realisations-conf-'));
    return { open: () => openRealisations(fileAddr(dir)), durable: true, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }],
  ['PostgreSQL', async () => {
    const s = await freshScaleoutAddr('realisations');
    return { open: () => openRealisations(s.addr), durable: true, cleanup: () => s.drop() };
  }],
];

const OLD = `sha256:${'0a'.repeat(32)}!out`;
const NEW = '0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello-2.12.drv/dev';
const doi = (outPath: string, id?: string) => JSON.stringify({ dependentRealisations: {}, id, outPath, signatures: [] });

for (const [name, make] of backends) {
  describe(`realisations: ${name}`, () => {
    it('put, get, replace; both kinds of name', async () => {
      const b = await make();
      cleanups.push(b.cleanup);
      const s = b.open();
      assert.equal(await s.get(OLD), undefined);
      await s.put(OLD, doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD));
      await s.put(NEW, doi('1c6kzph7l0dcbfmjap64f0czdafn3b7x-b'));
      assert.equal(await s.get(OLD), doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD));
      assert.equal(await s.get(NEW), doi('1c6kzph7l0dcbfmjap64f0czdafn3b7x-b'));
      await s.put(OLD, doi('2c6kzph7l0dcbfmjap64f0czdafn3b7x-c', OLD));
      assert.equal(await s.get(OLD), doi('2c6kzph7l0dcbfmjap64f0czdafn3b7x-c', OLD));
      await s.close?.();
    });

    it('records outlive the process where the backend is durable', async () => {
      const b = await make();
      cleanups.push(b.cleanup);
      const first = b.open();
      await first.put(OLD, doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD));
      await first.close?.();
      if (!b.durable) return;
      const second = b.open();
      assert.equal(await second.get(OLD), doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD));
      await second.close?.();
    });
  });
}

describe('realisations in PostgreSQL, read by a read-only daemon', () => {
  it('a read of a database without the table finds nothing and creates nothing (its role may not create)', async () => {
    const s = await freshScaleoutAddr('realisations-ro');
    cleanups.push(() => s.drop());
    const r = new PgRealisations(s.pgUrl);
    assert.equal(await r.get(OLD), undefined);
    await r.close();
    const c = new pg.Client({ connectionString: s.pgUrl });
    await c.connect();
    try {
      const { rows } = await c.query<{ t: string | null }>("SELECT to_regclass('nix_castore_realisations')::text AS t");
      assert.equal(rows[0].t, null);
    } finally {
      await c.end();
    }
  });
});

describe('realisations kept beside staged NARs (--upload-staging DIR)', () => {
  it('expiring old staged NARs leaves them alone, however old', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'realisations-staging-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const r = openRealisations('memory://', dir);
    await r.put(OLD, doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD));
    await utimes(join(dir, 'realisations'), 0, 0);
    assert.equal(await new DiskStaging(dir).expire(1), 0);
    assert.equal(await r.get(OLD), doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD));
  });
});

describe('realisation names and contents', () => {
  it('names: Nix 2.8\'s and later Nix\'s forms; nothing else', () => {
    for (const k of [OLD, NEW, `sha256:${'ff'.repeat(32)}!bin`]) assert.ok(isRealisationKey(k), k);
    for (const k of ['', 'sha256:00!out', `sha256:${'0A'.repeat(32)}!out`, `sha256:${'0a'.repeat(32)}!`, `sha256:${'0a'.repeat(32)}!a/b`,
      '0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello.drv', '0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello/out', '../x.drv/out', `${NEW}/x`, '0c6kzph7l0dcbfmjap64f0czdafn3b7x-hello.drv/..']) {
      assert.equal(isRealisationKey(k), false, k);
    }
  });

  it("outPath: Nix 2.8's basename or later Nix's whole store path, nothing else", () => {
    assert.equal(checkRealisation(NEW, JSON.stringify({ outPath: '/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', signatures: [] })).outPath, '0c6kzph7l0dcbfmjap64f0czdafn3b7x-a');
    assert.equal(checkRealisation(OLD, doi('0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', OLD)).outPath, '0c6kzph7l0dcbfmjap64f0czdafn3b7x-a');
    for (const bad of ['/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-a/bin', '/tmp/0c6kzph7l0dcbfmjap64f0czdafn3b7x-a', '0c6kzph7l0dcbfmjap64f0czdafn3b7x', '']) {
      assert.throws(() => checkRealisation(NEW, JSON.stringify({ outPath: bad })), /outPath/, bad);
    }
  });

  it('the signed fingerprint lists dependencies sorted, whatever order the upload had', () => {
    const deps = { [`sha256:${'bb'.repeat(32)}!out`]: '1c6kzph7l0dcbfmjap64f0czdafn3b7x-b', [`sha256:${'aa'.repeat(32)}!out`]: '0c6kzph7l0dcbfmjap64f0czdafn3b7x-a' };
    const r = checkRealisation(OLD, JSON.stringify({ outPath: '2c6kzph7l0dcbfmjap64f0czdafn3b7x-c', id: OLD, dependentRealisations: deps }));
    assert.equal(
      r.fingerprint,
      `{"dependentRealisations":{"sha256:${'aa'.repeat(32)}!out":"0c6kzph7l0dcbfmjap64f0czdafn3b7x-a","sha256:${'bb'.repeat(32)}!out":"1c6kzph7l0dcbfmjap64f0czdafn3b7x-b"},"id":"${OLD}","outPath":"2c6kzph7l0dcbfmjap64f0czdafn3b7x-c"}`,
    );
  });
});
