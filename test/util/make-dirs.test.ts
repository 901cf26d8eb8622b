// mkdir -p that ends: parents made, existing directories fine, a file in
// the way refused, and an answer (not a spin at 100% CPU, as Node's own
// recursive mkdir gives) where an existing directory says ENOENT for a
// child, as everywhere under /proc — then the daemon and the hook, given
// such a directory, exit saying so.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirs, makeDirsSync } from '../../src/util/make-dirs.js';
import { runCli } from '../copy/run-cli.js';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'make-dirs-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

it('makes missing parents, accepts what exists, refuses a file in the way', async () => {
  await makeDirs(join(tmp, 'a/b/c'));
  assert.ok(statSync(join(tmp, 'a/b/c')).isDirectory());
  await makeDirs(join(tmp, 'a/b/c'));
  makeDirsSync(join(tmp, 's/t'));
  makeDirsSync(join(tmp, 's/t'));
  assert.ok(statSync(join(tmp, 's/t')).isDirectory());
  await writeFile(join(tmp, 'file'), 'x');
  await assert.rejects(makeDirs(join(tmp, 'file')), { code: 'ENOTDIR' });
  await assert.rejects(makeDirs(join(tmp, 'file/sub')), { code: 'ENOTDIR' });
  assert.throws(() => makeDirsSync(join(tmp, 'file')), { code: 'ENOTDIR' });
});

const procfs = existsSync('/proc/self');

it('a directory that answers ENOENT for its children (/proc) ends in that error', { skip: !procfs && 'no /proc here' }, async () => {
  await assert.rejects(makeDirs('/proc/nix-castore-test/sub'), { code: 'ENOENT' });
  assert.throws(() => makeDirsSync('/proc/nix-castore-test/sub'), { code: 'ENOENT' });
});

it('the daemon and the queued hook given such a directory say so and exit', { skip: !procfs && 'no /proc here', timeout: 120_000 }, async () => {
  const daemon = await runCli(['daemon', '--data', '/proc/nix-castore-test/data', '--listen', `unix:${join(tmp, 'd.sock')}`]);
  assert.equal(daemon.code, 2, daemon.stderr);
  assert.match(daemon.stderr, /cannot create the data directory \/proc\/nix-castore-test\/data: ENOENT/);
  const hook = await runCli(['hook', '--mode', 'queue', '--spool', '/proc/nix-castore-test/spool'], {
    env: { ...process.env, DRV_PATH: `/nix/store/${'a'.repeat(32)}-x.drv`, OUT_PATHS: `/nix/store/${'b'.repeat(32)}-x` },
  });
  assert.equal(hook.code, 0, 'the hook never fails the build');
  assert.match(hook.stderr, /not queued: ENOENT/);
});
