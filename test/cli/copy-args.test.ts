// STOREPATH arguments of 'copy': store paths, their basenames and links to
// them (./result) are taken; anything else is refused with what it takes,
// before Nix reads it as a flake reference or tries to substitute it.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { CLI } from '../helpers/daemon.js';
import { nixEnv, requireNix, runNix } from '../helpers/nix.js';

let tmp: string;
let storePath: string;

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'copy-args-'));
  await writeFile(join(tmp, 'args.txt'), 'copy arguments\n');
  storePath = (await runNix('nix-store', ['--add', join(tmp, 'args.txt')])).stdout.toString().trim();
  await symlink(storePath, join(tmp, 'result'));
});
after(() => rm(tmp, { recursive: true, force: true }));

const copy = (...args: string[]) => spawnSync(process.execPath, [CLI, 'copy', '-q', '--json', '--store', 'memory://', ...args], { encoding: 'utf8', env: nixEnv(), cwd: tmp });

it('takes a store path, its basename and a link to it', () => {
  for (const arg of [storePath, basename(storePath), './result']) {
    const r = copy(arg);
    assert.equal(r.status, 0, `${arg}: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout).uploaded, [storePath], arg);
  }
});

it('refuses what is not a store path on this machine, saying what it takes', () => {
  const cases: [string, RegExp][] = [
    [tmp, /is not in the Nix store \(\/nix\/store\): copy takes store paths, their basenames, or links to them such as \.\/result/],
    [`/nix/store/${'a'.repeat(32)}-absent`, /does not exist here: copy reads the files of store paths on this machine/],
    ['not-a-basename', /is not a store path or the basename of one/],
  ];
  for (const [arg, message] of cases) {
    const r = copy(arg);
    assert.equal(r.status, 2, `${arg}: ${r.stderr}`);
    assert.match(r.stderr, message, arg);
    assert.doesNotMatch(r.stderr, /flake|substitut|download/i, arg);
  }
  // A manifest that cannot be written is refused before anything is uploaded.
  const target = join(tmp, 'would-be-store');
  const m = spawnSync(process.execPath, [CLI, 'copy', '-q', '--manifest', join(tmp, 'no', 'such', 'dir', 'm.json'), '--store', `file://${target}`, storePath], { encoding: 'utf8', env: nixEnv() });
  assert.equal(m.status, 2, m.stderr);
  assert.match(m.stderr, /--manifest \S+m\.json: cannot write there/);
  assert.equal(existsSync(target), false, 'nothing was uploaded');
  const key = copy('--key', 'closure', storePath);
  assert.equal(key.status, 2, key.stderr);
  assert.match(key.stderr, /--key applies to --attrs, not to store paths/);
});
