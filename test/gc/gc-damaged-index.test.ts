// A pack whose index has one damaged entry with whole entries after it is
// damage, not a torn tail: the records after it were acknowledged. The
// collector keeps such a pack as it is (and says so) instead of copying
// the entries before the damage and removing the rest with the pack.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INDEX_ENTRY } from '../../src/castore/disk/pack-format.js';
import { runNix } from '../helpers/nix.js';
import { cli, DAY, deleteFromNix, testClock } from './gc-fixture.js';

let tmp: string;
const paths: string[] = [];

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'gc-damaged-index-'));
  // Two paths of small files (packed blobs), distinct contents.
  for (const name of ['kept', 'garbage']) {
    const dir = join(tmp, `${name}-${process.pid}-${Date.now()}`);
    await mkdir(dir);
    for (let i = 0; i < 12; i++) await writeFile(join(dir, `f${i}`), `${name} file ${i} ${Date.now()} ${'x'.repeat(200 + i)}\n`);
    paths.push((await runNix('nix-store', ['--add', dir])).stdout.toString().trim());
  }
});
after(async () => {
  await deleteFromNix(paths);
  await rm(tmp, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

it('keeps a pack with a damaged index entry in the middle whole, and warns', async () => {
  const data = join(tmp, 'data');
  const store = `file://${data}`;
  const old = await testClock(Date.now() - 30 * DAY);
  const seed = await cli(['copy', '--quiet', '--store', store, ...paths], old.env());
  assert.equal(seed.code, 0, seed.stderr);
  // The first path is read now: kept by --keep-since 1d; the second is garbage.
  const read = await cli(['nar', '--store', store, paths[0]]);
  assert.equal(read.code, 0, read.stderr);

  const packs = join(data, 'packs');
  const idxName = (await readdir(packs)).find((f) => f.endsWith('.idx'))!;
  const idx = await readFile(join(packs, idxName));
  const entries = idx.length / INDEX_ENTRY;
  assert.ok(entries >= 20, `${entries} entries in one blob pack`);
  // Entry 2 damaged (its check field), with the rest of both paths' entries after it.
  idx[2 * INDEX_ENTRY + 44] ^= 0xff;
  await writeFile(join(packs, idxName), idx);
  const before = new Map<string, string>();
  for (const f of await readdir(packs)) before.set(f, sha(await readFile(join(packs, f))));

  const gc = await cli(['gc', '--data', data, '--keep-since', '1d', '--grace', '0']);
  assert.equal(gc.code, 0, gc.stdout + gc.stderr);
  assert.match(gc.stdout + gc.stderr, new RegExp(`blob pack ${idxName.replace(/\.idx$/, '')}: index entry 2 is damaged and whole entries follow it; the pack is kept as it is`));
  for (const [f, h] of before) assert.equal(sha(await readFile(join(packs, f))), h, `${f} unchanged`);
});
