// The hook's spool on a full filesystem (a 64 KiB tmpfs, filled up). Draining
// needs no room (it removes entries, which frees some): a drain must still
// take its lock, upload what it can and keep, unchanged, an entry whose
// retry it cannot record, leaving no temp files behind.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix } from '../copy/verify-store.js';
import { runCli } from '../copy/run-cli.js';

let tmp: string;
let mnt: string;
let d: DaemonProcess;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-spool-full-'));
  mnt = join(tmp, 'small-fs');
  await mkdir(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a 64 KiB tmpfs and needs root (as CI has): ${(err as Error).message}`);
  }
  d = await startDaemonProcess();
});
after(async () => {
  await d?.stop();
  try {
    execFileSync('umount', [mnt]);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

describe('spool on a full disk', () => {
  it('drain takes its lock, uploads what it can, keeps the failing entry as it was', async () => {
    const spool = join(mnt, 'spool');
    const queue = async (outPath: string) => {
      const q = await runCli(['hook', '--mode', 'queue', '--spool', spool], { env: { ...nixEnv(), OUT_PATHS: outPath, DRV_PATH: '' } });
      assert.equal(q.code, 0, q.stderr);
    };
    // Queued first, so drained first: its failure must not stop the next one.
    await queue('/nix/store/00000000000000000000000000000000-never-built');
    const file = join(tmp, 'full-disk.txt');
    await writeFile(file, `queued on a full disk ${Date.now()} ${Math.random()}\n`);
    const path = (await runNix('nix-store', ['--add', file])).stdout.toString().trim();
    await queue(path);
    const [failing] = (await readdir(spool)).sort();
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(mnt, 'fill')}`, 'bs=4k'], { stdio: 'pipe' });
    } catch {
      // dd stops at ENOSPC: the disk is full
    }

    const r = await runCli(['drain', '--spool', spool, '--store', d.addr]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /never-built.*could not be recorded \(ENOSPC/);
    assert.match(r.stderr, /1 uploaded, 1 left/);
    assert.deepEqual(await readdir(spool), [failing], 'the failing entry is kept; no lock, no temp files');
    const store = openStore(sameAddr(d.addr));
    try {
      await assertStoreMatchesNix(store, [path]);
    } finally {
      await store.close();
    }
  });
});
