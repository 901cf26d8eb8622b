// Collectors racing to take over a dead collector's lock: however their
// steps interleave (each is made to pause as it removes the stale lock,
// the moment two used to both think they won, and the winner holds on as
// it starts, so every other one tries meanwhile), exactly one collects; the
// others say another collection is running, and the store stays whole.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../helpers/daemon.js';
import { nixEnv } from '../helpers/nix.js';
import { buildGc, cli, DAY, deleteFromNix, freshSalt, testClock } from './gc-fixture.js';

let tmp: string;
let paths: string[] = [];

before(async () => {
  const salt = freshSalt();
  paths = [...(await buildGc(salt, ['twins'], { groups: '1' })), ...(await buildGc(salt, ['live'], { groups: '1', rounds: '1' }))];
  tmp = await mkdtemp(join(tmpdir(), 'gc-lock-'));
});
after(async () => {
  await deleteFromNix(paths);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

it('of six collectors taking over a dead one\'s lock at once, one collects and five are turned away', async () => {
  const data = join(tmp, 'data');
  const old = await testClock(Date.now() - 30 * DAY);
  const seed = await cli(['copy', '--quiet', '--store', `file://${data}`, ...paths], old.env());
  assert.equal(seed.code, 0, seed.stderr);
  // The lock of a collector that died (a pid no process has any more).
  const dead = spawnSync('true').pid!;
  await writeFile(join(data, 'gc', 'lock'), `${dead} 0123456789abcdef\n`);
  const preload = join(tmp, 'slow-stale-removal.cjs');
  await writeFile(
    preload,
    `const fs = require('node:fs');
const pause = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
for (const name of ['unlinkSync', 'renameSync']) {
  const real = fs[name];
  fs[name] = function (file, ...rest) {
    if (String(file).endsWith('/gc/lock')) pause();
    return real.call(this, file, ...rest);
  };
}
// The one that wins holds on (3 s) as it starts marking: every other one tries while it holds the lock.
const fsp = require('node:fs/promises');
const writeFile = fsp.writeFile;
fsp.writeFile = function (file, ...rest) {
  if (String(file).endsWith('/gc/marking')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
  return writeFile.call(this, file, ...rest);
};
require('node:module').syncBuiltinESMExports();
`,
  );
  const runs = Array.from({ length: 6 }, () => {
    const c = spawn(process.execPath, ['--require', preload, CLI, 'gc', '--data', data, '--keep-since', '1d', '--grace', '0'], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    return new Promise<{ code: number | null; out: string }>((r) => c.once('exit', (code) => r({ code, out })));
  });
  const results = await Promise.all(runs);
  const won = results.filter((r) => r.code === 0);
  const all = results.map((r, i) => `#${i} exit ${r.code}:\n${r.out}`).join('\n');
  assert.equal(won.length, 1, all);
  for (const r of results.filter((x) => x.code !== 0)) assert.match(r.out, /another garbage collection \(pid \d+\) is running on this store/, all);
  const fsck = await cli(['fsck', '--data', data, '--nar']);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
});
