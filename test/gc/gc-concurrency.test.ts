// The collector in a loop while 8 copies of overlapping closures and a hook
// drain upload to a daemon, against the same on-disk store. Before each
// round, "twins" — old paths holding the very files the copies upload — are
// pushed at an old time, so each collection deletes blobs the uploads have
// just found present: the race this design is about. Every copy must
// succeed (retrying what lost its content), every path be present and
// whole afterwards, fsck --nar clean, and every NAR equal nix-store --dump.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { startDaemonProcess, CLI, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixStoreDump } from '../helpers/nix.js';
import { buildGc, cli, DAY, deleteFromNix, freshSalt, testClock } from './gc-fixture.js';

const ROUNDS = 2;
const GROUPS = 4;
let tmp: string;
let data: string;
let daemon: DaemonProcess | undefined;
let shared: string;
let twins: string[];
let live: string[];

function narOf(store: string, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, 'nar', '--store', store, path], { env: nixEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d) => out.push(d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`nar ${path}: ${code} ${err}`))));
  });
}

before(async () => {
  const salt = freshSalt();
  const argstr = { rounds: String(ROUNDS), groups: String(GROUPS) };
  [shared] = await buildGc(salt, ['shared'], argstr);
  twins = await buildGc(salt, ['twins'], argstr);
  live = await buildGc(salt, ['live'], argstr);
  assert.equal(live.length, ROUNDS * GROUPS);
  tmp = await mkdtemp(join(tmpdir(), 'gc-concurrency-'));
  data = join(tmp, 'data');
  daemon = await startDaemonProcess({ args: ['--data', data] });
});

after(async () => {
  await daemon?.stop();
  await deleteFromNix([...(live ?? []), ...(twins ?? [])]);
  await deleteFromNix([shared].filter(Boolean));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('gc racing uploads (daemon, 8 copies, hook drain)', () => {
  it('never accepts a PathInfo with missing content; every copy succeeds', async () => {
    const store = `file://${data}`;
    const old = await testClock(Date.now() - 30 * DAY);
    let retried = 0;
    let collections = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const seed = await cli(['copy', '--quiet', '--store', store, ...twins], old.env());
      assert.equal(seed.code, 0, seed.stderr);
      let stop = false;
      const gcLoop = (async () => {
        while (!stop) {
          const r = await cli(['gc', '--store', store, '--keep-since', '1d', '--grace', '0', '--json']);
          assert.equal(r.code, 0, r.stderr);
          collections++;
        }
      })();
      const mine = live.slice(round * GROUPS, (round + 1) * GROUPS);
      const copies = [];
      for (let i = 0; i < 8; i++) {
        // Overlapping closures: each copy takes two groups (and the shared path).
        const paths = [mine[i % GROUPS], mine[(i + 1) % GROUPS]];
        copies.push(cli(['copy', '--store', daemon!.addr, ...paths]));
      }
      // The hook queues one output; the drain uploads it.
      const spool = join(tmp, `spool-${round}`);
      const hookEnv = { ...nixEnv(), NIX_CASTORE_HOOK_MODE: 'queue', NIX_CASTORE_SPOOL: spool, OUT_PATHS: mine[0], DRV_PATH: '' };
      const hook = await cli(['hook'], hookEnv);
      assert.equal(hook.code, 0, hook.stderr);
      const drain = cli(['drain', '--spool', spool, '--store', daemon!.addr]);
      const results = await Promise.all([...copies, drain]);
      stop = true;
      await gcLoop;
      for (const r of results) {
        assert.equal(r.code, 0, r.stderr);
        if (/copying again/.test(r.stderr)) retried++;
      }
      assert.deepEqual((await readdir(spool)).filter((f) => !f.startsWith('.')), [], 'the drain uploaded its entry');
    }
    process.stderr.write(`gc-concurrency: ${collections} collections, ${retried} copies ran again after losing content\n`);
    const last = await cli(['gc', '--store', store, '--keep-since', '1d', '--grace', '0']);
    assert.equal(last.code, 0, last.stderr);
    await daemon!.stop();
    daemon = undefined;
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    for (const p of [...live, shared]) assert.ok((await narOf(store, p)).equals(await nixStoreDump(p)), p);
  });
});
