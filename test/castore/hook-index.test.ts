// The hook index (src/castore/delta/hook-index.ts): kept across restarts,
// a torn last record cut off, bounded in memory and on disk.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HookIndex, MAX_HOOKS } from '../../src/castore/delta/hook-index.js';
import { blake3 } from '../../src/castore/digest.js';

const d = (s: string | number) => blake3(Buffer.from(String(s)));

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'hook-index-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

describe('the hook index', () => {
  it('finds what was added after a reopen, the newest blob winning a hook', async () => {
    const path = join(tmp, 'reopen');
    const a = await HookIndex.atPath(path);
    await a.add(d('blob1'), [d('h1'), d('h2')]);
    await a.add(d('blob2'), [d('h2'), d('h3')]);
    await a.close();
    const b = await HookIndex.atPath(path);
    assert.deepEqual(b.get(d('h1')), d('blob1'));
    assert.deepEqual(b.get(d('h2')), d('blob2'));
    assert.deepEqual(b.get(d('h3')), d('blob2'));
    assert.equal(b.get(d('h4')), undefined);
    await b.close();
  });

  it('cuts off a record torn by a crash, and later records are read right', async () => {
    const path = join(tmp, 'torn');
    const a = await HookIndex.atPath(path);
    await a.add(d('blob1'), [d('h1')]);
    await a.close();
    await appendFile(path, Buffer.alloc(20, 0xff)); // part of a record
    const b = await HookIndex.atPath(path);
    assert.equal((await stat(path)).size, 48);
    await b.add(d('blob2'), [d('h2')]);
    await b.close();
    const c = await HookIndex.atPath(path);
    assert.deepEqual(c.get(d('h1')), d('blob1'));
    assert.deepEqual(c.get(d('h2')), d('blob2'));
    await c.close();
  });

  it('keeps the newest MAX_HOOKS entries, and its file within twice that', async () => {
    const path = join(tmp, 'bounded');
    const a = await HookIndex.atPath(path);
    const n = 2 * MAX_HOOKS + 100;
    for (let i = 0; i < n; i += 1000) {
      const hooks = [];
      for (let j = i; j < Math.min(n, i + 1000); j++) hooks.push(d(j));
      await a.add(d(`blob${i}`), hooks);
    }
    assert.equal(a.size, MAX_HOOKS);
    assert.equal(a.get(d(0)), undefined);
    assert.deepEqual(a.get(d(n - 1)), d(`blob${n - 1 - ((n - 1) % 1000)}`));
    await a.close();
    assert.ok((await stat(path)).size <= 2 * MAX_HOOKS * 48, `${(await stat(path)).size} bytes`);
    const b = await HookIndex.atPath(path);
    assert.equal(b.size, MAX_HOOKS);
    assert.deepEqual(b.get(d(n - 1)), d(`blob${n - 1 - ((n - 1) % 1000)}`));
    await b.close();
  });

  it('in memory only: nothing on disk', async () => {
    const m = HookIndex.inMemory();
    await m.add(d('blob'), [d('h')]);
    assert.deepEqual(m.get(d('h')), d('blob'));
    await m.close();
  });
});
