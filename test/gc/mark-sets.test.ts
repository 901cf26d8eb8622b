// The collector's digest sets: the exact table, and the set that spills
// beyond its budget. Membership asked bucket by bucket is exact whatever
// went to disk; `has` is exact for what is in memory; scratch files go
// with dispose.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DigestTable } from '../../src/util/digest-table.js';
import { SpillingDigestSet } from '../../src/util/spilling-digest-set.js';

const digest = (i: number): Buffer => createHash('sha256').update(`digest ${i}`).digest();

let tmp: string | undefined;
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('DigestTable', () => {
  it('holds exactly what was added, growing as needed, at any offset', () => {
    const t = new DigestTable(16);
    for (let i = 0; i < 50_000; i += 2) assert.equal(t.add(digest(i)), true);
    assert.equal(t.add(digest(0)), false, 'twice: not new');
    assert.equal(t.size, 25_000);
    for (let i = 0; i < 1000; i++) assert.equal(t.has(digest(i)), i % 2 === 0, `digest ${i}`);
    const padded = Buffer.concat([Buffer.alloc(7), digest(4)]);
    assert.equal(t.has(padded, 7), true);
    assert.equal([...t].length, 25_000);
  });

  it('says it is full at its limit instead of growing', () => {
    const t = new DigestTable(16, 64);
    let n = 0;
    while (!t.full) t.add(digest(n++));
    assert.equal(n, 48);
    assert.throws(() => t.add(digest(n)), /full/);
  });
});

describe('SpillingDigestSet', () => {
  it('spills beyond its budget and answers exactly by bucket; dispose removes its files', async () => {
    tmp = await mkdtemp(join(tmpdir(), 'mark-sets-'));
    const s = new SpillingDigestSet('test', 16 << 10, tmp);
    const added = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      if (i % 3 === 0) continue;
      s.add(digest(i));
      s.add(digest(i)); // duplicates are harmless
      added.add(digest(i).toString('hex'));
      await s.drain();
    }
    assert.equal(s.spilled, true);
    assert.equal(s.onDisk, true);
    const byBucket = new Map<number, string[]>();
    for (let i = 0; i < 20_000; i++) {
      const d = digest(i);
      byBucket.set(d[0], [...(byBucket.get(d[0]) ?? []), d.toString('hex')]);
    }
    for (let b = 0; b < 256; b++) {
      const set = await s.bucket(b);
      for (const hex of byBucket.get(b) ?? []) assert.equal(set.has(Buffer.from(hex, 'hex')), added.has(hex), `bucket ${b}: ${hex}`);
    }
    assert.ok((await readdir(tmp)).length > 0, 'scratch files exist');
    await s.dispose();
    assert.deepEqual(await readdir(tmp), []);
  });

  it('stays in memory (no files) within its budget', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mark-sets-mem-'));
    try {
      const s = new SpillingDigestSet('test', 1 << 20, dir);
      for (let i = 0; i < 1000; i++) s.add(digest(i));
      assert.equal(s.spilled, false);
      assert.equal(s.has(digest(5)), true);
      assert.equal((await s.bucket(digest(5)[0])).has(digest(5)), true);
      assert.equal((await s.bucket(0)).has(digest(1001)), false);
      await s.dispose();
      assert.deepEqual(await readdir(dir), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
