// A mistyped store path: the commands that read or maintain a store say
// there is none there (exit 2) instead of laying out an empty store and
// reporting on it; the directory is not created.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
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
