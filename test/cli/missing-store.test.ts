// A mistyped store path: the commands that read or maintain a store say
// there is none there (exit 2) instead of laying out an empty store and
// reporting on it; the directory is not created.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../helpers/daemon.js';

it('stats, path-info, nar, gc and pin refuse a store directory that does not exist, and create none', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'missing-store-'));
  try {
    const missing = join(tmp, 'typo');
    const path = `/nix/store/${'a'.repeat(32)}-hello`;
    for (const args of [
      ['stats', '--store', `file://${missing}`],
      ['path-info', '--store', `file://${missing}`, path],
      ['nar', '--store', `file://${missing}`, path],
      ['gc', '--data', missing, '--keep-since', '1d', '--dry-run'],
      ['gc', '--store', `file://${missing}`, '--keep-since', '1d'],
      ['pin', 'list', '--data', missing],
    ]) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NIX_CASTORE_STORE: '' } });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`there is no store at ${missing}: ${args[0]} works on an existing one`));
      assert.equal(existsSync(missing), false, `${args.join(' ')} created ${missing}`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

it('fsck of a directory that is not a castore (a binary cache) and import from one that is not a binary cache say so', async () => {
  const tmp = await mkdtemp(join(tmpdir(), 'not-a-store-'));
  try {
    const cache = join(tmp, 'cache');
    await mkdir(join(cache, 'nar'), { recursive: true });
    await writeFile(join(cache, 'nix-cache-info'), 'StoreDir: /nix/store\n');
    const fsck = spawnSync(process.execPath, [CLI, 'fsck', '--data', cache], { encoding: 'utf8' });
    assert.notEqual(fsck.status, 0, fsck.stdout);
    assert.match(fsck.stderr, /holds no castore/);
    const empty = join(tmp, 'empty');
    await mkdir(empty);
    const imp = spawnSync(process.execPath, [CLI, 'import', '--store', `file://${join(tmp, 'store')}`, empty], { encoding: 'utf8' });
    assert.equal(imp.status, 2, imp.stderr);
    assert.match(imp.stderr, /is not a Nix binary cache: it has no nix-cache-info and no \.narinfo files/);
    // An empty directory is a fresh store: fsck finds it clean.
    const fresh = spawnSync(process.execPath, [CLI, 'fsck', '--data', empty], { encoding: 'utf8' });
    assert.equal(fresh.status, 0, fresh.stderr);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
