// What `npm install -g nix-castore` gives: a fresh `npm pack` of this tree,
// installed globally into a temp prefix, provides both commands, and they
// run — the hook's queue fast path too, and the hook run from the
// package's own bin/ (as a nix.conf pointing into it would).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

let tmp: string;
let prefix: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'npm-pack-'));
  prefix = join(tmp, 'prefix');
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: ROOT });
  const [{ filename }] = JSON.parse(stdout) as { filename: string }[];
  // Dependencies from npm's cache where it has them (the tree's own npm install filled it).
  await run('npm', ['install', '-g', '--prefer-offline', '--no-audit', '--no-fund', '--prefix', prefix, join(tmp, filename)], { cwd: tmp, maxBuffer: 64 << 20 });
});
after(() => rm(tmp, { recursive: true, force: true }));

describe('npm pack, installed globally', () => {
  it('provides nix-castore and nix-castore-hook, and both run', async () => {
    assert.deepEqual((await readdir(join(prefix, 'bin'))).sort(), ['nix-castore', 'nix-castore-hook']);
    const cli = await run(join(prefix, 'bin', 'nix-castore'), ['--help']);
    assert.match(cli.stdout, /^Usage: nix-castore <command>/);
    const hook = await run(join(prefix, 'bin', 'nix-castore-hook'), ['--help']);
    assert.match(hook.stdout, /^Usage: nix-castore hook /);
  });

  it('the installed hook queues a build in queue mode', async () => {
    const spool = join(tmp, 'spool');
    const out = '/nix/store/00000000000000000000000000000000-npm-pack-test';
    await run(join(prefix, 'bin', 'nix-castore-hook'), [], {
      env: { ...process.env, NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool, OUT_PATHS: out, DRV_PATH: '' },
    });
    const entries = (await readdir(spool)).filter((n) => n.endsWith('.json'));
    assert.equal(entries.length, 1);
    assert.deepEqual(JSON.parse(await readFile(join(spool, entries[0]), 'utf8')).outPaths, [out]);
  });

  it("the hook run from the package's own bin/ finds the CLI", async () => {
    const hook = await run(join(prefix, 'lib', 'node_modules', 'nix-castore', 'bin', 'nix-castore-hook'), ['--help']);
    assert.match(hook.stdout, /^Usage: nix-castore hook /);
  });
});
