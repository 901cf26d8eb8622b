// SIGTERM to a daemon draining a backlog of the hook's spool (--drain-spool):
// it finishes the entry it is uploading and stops, leaving the rest queued
// for the next start, instead of uploading the whole backlog first (which
// outlasts systemd's stop timeout, ending in SIGKILL). Real daemon, real
// Nix paths, entries queued by the real `nix-castore hook --mode queue`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';

const ENTRIES = 30;

describe('daemon --drain-spool stopped with a backlog', () => {
  it('finishes the entry in flight, stops, and leaves the rest queued; the next start drains them', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'drain-stop-'));
    const spool = join(tmp, 'spool');
    const dataDir = join(tmp, 'data');
    try {
      for (let i = 0; i < ENTRIES; i++) {
        await writeFile(join(tmp, `entry-${i}.txt`), `drain-stop ${process.pid} ${Date.now()} ${i}\n`);
        const path = (await runNix('nix-store', ['--add', join(tmp, `entry-${i}.txt`)])).stdout.toString().trim();
        const q = await runCli(['hook', '--mode', 'queue', '--spool', spool], { env: { ...nixEnv(), OUT_PATHS: path, DRV_PATH: '' } });
        assert.equal(q.code, 0, q.stderr);
      }
      const queued = async () => (await readdir(spool)).filter((n) => n.endsWith('.json')).length;
      assert.equal(await queued(), ENTRIES);

      const d = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--drain-spool', spool], env: nixEnv() });
      // Stopped once the drain is under way.
      while (!/drain: uploaded/.test(d.stderr()) && d.child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await d.stop('SIGTERM'), 0, d.stderr());
      const [, afterStop = ''] = d.stderr().split('SIGTERM, shutting down');
      const uploadedAfter = afterStop.match(/drain: uploaded/g)?.length ?? 0;
      assert.ok(uploadedAfter <= 1, `at most the entry in flight is uploaded after SIGTERM, not ${uploadedAfter}:\n${d.stderr()}`);
      const left = await queued();
      assert.ok(left > 0, 'the rest stays queued');

      // The next start drains what is left.
      const again = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--drain-spool', spool], env: nixEnv() });
      try {
        const deadline = Date.now() + 120_000; // not a timing assertion: a drain that never ends is given up on
        while ((await queued()) > 0 && again.child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.equal(await queued(), 0, again.stderr());
      } finally {
        await again.stop();
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
