// The scale-out collector within a tiny memory budget, against real Ceph
// (radosgw) and PostgreSQL: its marks outgrow an 8 KiB budget and spill,
// and the rows left are exactly the directories and blobs of the kept
// paths; fsck --nar is clean afterwards.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { runCli } from '../copy/run-cli.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import { blake3 } from '../../src/castore/digest.js';
import type { Directory, Node } from '../../src/castore/messages.js';
import type { PathInfo } from '../../src/store/messages.js';
import { encode as nix32 } from '../../src/nix/nixbase32.js';
import { collectScaleout } from '../../src/gc/scaleout-gc.js';

const PATHS = 24;
const DAY = 86_400_000;
const stores: ScaleoutAddr[] = [];
after(async () => {
  for (const s of stores) await s.drop().catch(() => {});
});

async function rows(pgUrl: string, table: 'blobs' | 'directories'): Promise<string[]> {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    return (await c.query<{ digest: Buffer }>(`SELECT digest FROM ${table}`)).rows.map((r) => r.digest.toString('hex')).sort();
  } finally {
    await c.end();
  }
}

describe('scale-out gc within a memory budget', () => {
  it('spills its marks beyond an 8 KiB budget and leaves exactly the kept paths’ objects', { timeout: 10 * 60_000 }, async () => {
    const s = await freshScaleoutAddr('gc-memory');
    stores.push(s);
    const store = openStore(sameAddr(s.addr));
    const live = { blobs: new Set<string>(), dirs: new Set<string>() };
    const old: Buffer[] = [];
    try {
      for (let i = 0; i < PATHS; i++) {
        const isOld = i % 2 === 1;
        const blobs: string[] = [];
        const subdirs: Directory[] = [];
        for (let j = 0; j < 3; j++) {
          // One file per directory is shared by every path; the rest are its own.
          const datas = Array.from({ length: 20 }, (_, k) => Buffer.from(k === 0 ? `shared ${j}` : `path ${i} dir ${j} file ${k}`));
          const digests = await Promise.all(datas.map((d) => putBytes(store.blobs, d)));
          blobs.push(...digests.map((d) => d.toString('hex')));
          subdirs.push({ directories: [], files: datas.map((d, k) => ({ name: Buffer.from(`f${String(k).padStart(2, '0')}`), digest: digests[k], size: d.length, executable: false })), symlinks: [] });
        }
        const rootDir: Directory = {
          directories: subdirs.map((d, j) => ({ name: Buffer.from(`d${j}`), digest: directoryDigest(d), size: directorySize(d) })),
          files: [],
          symlinks: [],
        };
        const rootD = await putClosure(store.directories, [...subdirs, rootDir]);
        const storeDigest = blake3(Buffer.from(`${s.addr} ${i}`)).subarray(0, 20);
        const node: Node = { type: 'directory', name: Buffer.from(`${nix32(storeDigest)}-mem-${i}`), digest: rootD, size: directorySize(rootDir) };
        const nar = await store.pathInfos.calculateNar(node);
        const info: PathInfo = { node, references: [], narinfo: { narSize: nar.narSize, narSha256: nar.narSha256, signatures: [], referenceNames: [] } };
        await store.pathInfos.put(info);
        if (isOld) old.push(Buffer.from(storeDigest));
        else {
          for (const b of blobs) live.blobs.add(b);
          for (const d of [...subdirs, rootDir]) live.dirs.add(directoryDigest(d).toString('hex'));
        }
      }
    } finally {
      await store.close();
    }
    const c = new pg.Client({ connectionString: s.pgUrl });
    await c.connect();
    await c.query(`UPDATE pathinfos SET pushed_at = now() - interval '60 days' WHERE digest = ANY($1::bytea[])`, [old]);
    await c.end();

    const report = await collectScaleout(s.addr, { keepSinceMs: 30 * DAY, graceMs: 0, nowMs: Date.now(), memoryBytes: 8192 });
    assert.deepEqual(report.memory, { budgetBytes: 8192, spilled: true });
    assert.equal(report.paths.deleted, PATHS / 2);
    assert.deepEqual(await rows(s.pgUrl, 'blobs'), [...live.blobs].sort());
    assert.deepEqual(await rows(s.pgUrl, 'directories'), [...live.dirs].sort());
    const fsck = await runCli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});
