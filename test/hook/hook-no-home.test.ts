// bin/nix-castore-hook in queue mode where nix-daemon runs it: under systemd
// nix-daemon has no HOME, and a hand-written wrapper (README) may set only
// NIX_CASTORE_HOOK_MODE. The build must stand and every output be queued in
// the spool drain reads by default (the user's home from the passwd entry),
// not fail on the shell's "HOME: parameter not set".
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from '../helpers/daemon.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { listEntries } from '../../src/upload/spool.js';

const CHAIN = fileURLToPath(new URL('../../../test/fixtures/hook-chain.nix', import.meta.url));
const HOOK = fileURLToPath(new URL('../../../bin/nix-castore-hook', import.meta.url));

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-hook-no-home-'));
});
after(() => rm(tmp, { recursive: true, force: true }));

describe('post-build-hook without HOME', () => {
  it('queue mode: the build stands and each output is queued in the default spool', async () => {
    // As installed: nix-castore-hook next to a nix-castore executable.
    const bin = join(tmp, 'bin');
    await mkdir(bin);
    await symlink(HOOK, join(bin, 'nix-castore-hook'));
    await writeFile(join(bin, 'nix-castore'), `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
    await chmod(join(bin, 'nix-castore'), 0o755);
    const env = nixEnv([`post-build-hook = ${join(bin, 'nix-castore-hook')}`], { NIX_CASTORE_HOOK_MODE: 'queue' });
    for (const name of ['HOME', 'XDG_STATE_HOME', 'NIX_CASTORE_SPOOL']) delete env[name];
    const salt = `${Date.now()}-${Math.random()}`;
    const r = await runNix('nix-build', [CHAIN, '--no-out-link', '--argstr', 'salt', salt, '-A', 'top'], { env });
    const top = r.stdout.toString().trim();
    const { stdout } = await runNix('nix-store', ['-qR', '--include-outputs', (await runNix('nix-store', ['-q', '--deriver', top])).stdout.toString().trim()]);
    const drvs = stdout.toString().split('\n').filter((p) => /nix-castore-hook-step-\d\.drv$/.test(p));
    assert.equal(drvs.length, 5);
    const spool = join(userInfo().homedir, '.local', 'state', 'nix-castore', 'spool');
    const mine = (await listEntries(spool)).filter((e) => e.drvPath && drvs.includes(e.drvPath));
    try {
      assert.deepEqual(mine.map((e) => e.drvPath).sort(), [...drvs].sort(), `one entry per build in ${spool}:\n${r.stderr}`);
    } finally {
      await Promise.all(mine.map((e) => unlink(join(spool, e.id))));
    }
  });
});
