// Space on a scale-out store, measured by RGW's own accounting
// (`radosgw-admin bucket stats`): after half of a real-files closure's paths
// are collected, the bucket's bytes drop by at least 90% of the bytes only
// those paths held. Their files are small, so they share packs with the
// kept paths: the packs are rewritten with their live blobs and the old
// ones deleted. A reader that learnt a blob's place before the rewrite reads
// it from the new pack; a blob the collection deleted no longer looks
// present to a store that had read it, so a PathInfo naming it is refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import pg from 'pg';
import { freshScaleoutAddr, rgwBucketStats, type ScaleoutAddr } from '../helpers/scaleout.js';
import { nixStoreDump } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { renderNar } from '../../src/store/render-nar.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { isKind } from '../../src/castore/errors.js';
import type { Store } from '../../src/store/store.js';
import type { GcReport } from '../../src/gc/report.js';
import { buildGc, cli, deleteFromNix, freshSalt } from './gc-fixture.js';

const GROUPS = 6;
let live: string[];
let shared: string;
let s: ScaleoutAddr;

async function fileBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await fileBytes(p);
    else if (e.isFile()) total += (await lstat(p)).size;
  }
  return total;
}

async function narFrom(store: Store, path: string): Promise<Buffer> {
  const info = await store.pathInfos.get(parseAbsolute(path).digest);
  assert.ok(info?.node, `${path} is in the store`);
  const parts: Uint8Array[] = [];
  for await (const c of renderNar(info.node, store)) parts.push(c);
  return Buffer.concat(parts);
}

/** `paths` grouped by the pack holding their largest file, in the order given. */
async function packGroups(s: ScaleoutAddr, paths: string[]): Promise<string[][]> {
  const store = openStore(sameAddr(s.addr));
  const c = new pg.Client({ connectionString: s.pgUrl });
  await c.connect();
  try {
    const where = new Map<string, string>();
    for (const p of paths) {
      const info = await store.pathInfos.get(parseAbsolute(p).digest);
      let biggest: { size: number; digest: Uint8Array } = { size: -1, digest: new Uint8Array() };
      for await (const d of store.directories.getRecursive((info!.node as { digest: Uint8Array }).digest)) {
        for (const f of d.files) if (Number(f.size) > biggest.size) biggest = { size: Number(f.size), digest: f.digest };
      }
      const r = await c.query<{ object: string }>('SELECT object FROM blobs WHERE digest = $1', [Buffer.from(biggest.digest)]);
      where.set(p, r.rows[0].object);
    }
    const groups = new Map<string, string[]>();
    for (const p of paths) groups.set(where.get(p)!, [...(groups.get(where.get(p)!) ?? []), p]);
    return [...groups.values()];
  } finally {
    await c.end();
    await store.close();
  }
}

before(async () => {
  const salt = freshSalt();
  const argstr = { rounds: '1', groups: String(GROUPS) };
  [shared] = await buildGc(salt, ['shared'], argstr);
  live = await buildGc(salt, ['live'], argstr);
  s = await freshScaleoutAddr('gc-space');
  // Raw blobs: the bucket's bytes are compared with the unreachable files'
  // bytes (compressed entries are collected alike: test/scaleout/compression).
  s.addr += '&compression=none';
});

after(async () => {
  await s?.drop().catch(() => {});
  await deleteFromNix(live ?? []);
  await deleteFromNix([shared].filter(Boolean));
});

describe('gc returns the space of a scale-out store', () => {
  it("RGW's bucket bytes drop by ≥ 90% of the unreachable bytes when half the paths go; readers keep reading", async () => {
    assert.equal((await cli(['copy', '--quiet', '--store', s.addr, ...live])).code, 0);
    // Which paths share a pack depends on timing (a pack is sealed 50 ms
    // after it opens): of each pack's paths (the shared one, always kept,
    // first), every other one goes, so more than a quarter of each pack dies.
    const keep: string[] = [];
    const drop: string[] = [];
    for (const group of await packGroups(s, [shared, ...live])) {
      group.forEach((p, i) => p !== shared && (i % 2 === 0 ? keep : drop).push(p));
    }
    assert.equal((await cli(['pin', 'add', 'half', ...keep, '--store', s.addr])).code, 0);
    let unreachable = 0;
    for (const p of drop) unreachable += await fileBytes(p);

    // A long-running reader: it learns where the blobs of a kept and of a dropped path are.
    const reader = openStore(sameAddr(s.addr));
    try {
      assert.ok((await narFrom(reader, keep[0])).equals(await nixStoreDump(keep[0])));
      const dropped = await reader.pathInfos.get(parseAbsolute(drop[0]).digest);
      await narFrom(reader, drop[0]);
      // Its files' blobs: the big one is its own (no kept path has the same bytes).
      const files: { name: string; digest: Uint8Array; size: number }[] = [];
      for await (const d of reader.directories.getRecursive((dropped!.node as { digest: Uint8Array }).digest)) {
        for (const f of d.files) files.push({ name: Buffer.from(f.name).toString(), digest: f.digest, size: Number(f.size) });
      }
      const big = files.find((f) => f.name === 'big')!;
      assert.equal(await reader.blobs.sizeOf!(big.digest), big.size);

      const before = (await rgwBucketStats(s.bucket))!;
      assert.ok(before, 'NIX_CASTORE_TEST_CEPH_CONF names the test cluster (scripts/scaleout/ceph-up.sh)');
      const dry = await cli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0', '--json', '--dry-run']);
      assert.equal(dry.code, 0, dry.stderr);
      const dryReport = JSON.parse(dry.stdout) as GcReport;
      assert.deepEqual((await rgwBucketStats(s.bucket))!.bytes, before.bytes, 'a dry run changes nothing');
      const gc = await cli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0', '--json']);
      assert.equal(gc.code, 0, gc.stderr);
      const report = JSON.parse(gc.stdout) as GcReport;
      assert.deepEqual(report.deleted, drop.map((p) => basename(p)).sort());
      const afterStats = (await rgwBucketStats(s.bucket))!;
      process.stderr.write(
        `scaleout-gc-space: RGW bucket ${before.bytes} → ${afterStats.bytes} bytes, ${before.objects} → ${afterStats.objects} objects ` +
          `(${before.bytes - afterStats.bytes} reclaimed; ${unreachable} unreachable file bytes; report ${JSON.stringify(report.bytes)}, packs ${JSON.stringify(report.packs)})\n`,
      );
      assert.ok(report.packs.rewritten >= 1, `packs shared by kept and dropped paths are rewritten: ${JSON.stringify(report.packs)}`);
      assert.ok(before.bytes - afterStats.bytes >= 0.9 * unreachable, `the bucket dropped by ${before.bytes - afterStats.bytes} bytes, less than 90% of ${unreachable}`);
      assert.deepEqual(dryReport.packs, { ...report.packs, deleted: 0 }, 'the dry run counted the packs to rewrite');
      assert.equal(report.bytes.before, before.bytes, 'gc reports the bucket bytes RGW counts');
      assert.equal(report.bytes.after, afterStats.bytes, 'gc reports the bucket bytes RGW counts');

      // What it read of the dropped path no longer counts as present.
      assert.equal(await reader.blobs.stat(big.digest), undefined, 'a collected blob the reader had read is not present');
      assert.equal(await reader.blobs.sizeOf!(big.digest), undefined);
      // The reader's cached places are stale (its packs are gone): it reads the new packs.
      (reader.blobs as unknown as { packCache: { windows: Map<string, unknown> } }).packCache.windows.clear();
      assert.ok((await narFrom(reader, keep[0])).equals(await nixStoreDump(keep[0])), 'a kept path reads the same after the rewrite');
      await assert.rejects(reader.pathInfos.put(dropped!), (err: unknown) => isKind(err, 'precondition'), 'a PathInfo whose content was collected is refused');
    } finally {
      await reader.close();
    }
    for (const p of keep) {
      const r = await cli(['nar', '--store', s.addr, p]);
      assert.equal(r.code, 0, r.stderr);
    }
    const fsck = await cli(['fsck', '--store', s.addr, '--nar', '--verify-blobs']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    assert.match(fsck.stdout, / 0 orphaned \(0 bytes\), 0 bytes unindexed inside packs/, 'no object, nor part of a pack, is left that no row names');
  });
});
