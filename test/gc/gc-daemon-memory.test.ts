// `gc --memory S` against a daemon: the budget travels in AdminService's
// CollectGarbageRequest (field 5) and the daemon's collector uses it; none
// given is the default; more than half of the daemon's machine's memory is
// refused and nothing is deleted. A daemon's --gc-memory is what a
// request that names none gets.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runCli } from '../copy/run-cli.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import type { GcReport } from '../../src/gc/report.js';
import { putPath } from './reference-paths.js';

const A = `/nix/store/${'f'.repeat(32)}-gc-memory-a`;

describe('gc --memory through a daemon', () => {
  let dir: string | undefined;
  let daemon: DaemonProcess | undefined;
  let second: DaemonProcess | undefined;
  after(async () => {
    await daemon?.stop();
    await second?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reaches the daemon’s collector; too much is refused, deleting nothing', async () => {
    dir = await mkdtemp(join(tmpdir(), 'gc-daemon-memory-'));
    daemon = await startDaemonProcess({ args: ['--data', dir] });
    const remote = openStore(sameAddr(daemon.addr));
    const present = async () => (await remote.pathInfos.get(parseAbsolute(A).digest)) !== undefined;
    try {
      await putPath(remote, A, 'a\n', []);
      const gc = (...flags: string[]) => runCli(['gc', '--store', daemon!.addr, '--keep-since', '0', '--grace', '0', '--dry-run', '--json', ...flags]);

      const small = await gc('--memory', '1MiB');
      assert.equal(small.code, 0, small.stderr);
      assert.deepEqual((JSON.parse(small.stdout) as GcReport).memory?.budgetBytes, 1 << 20);
      const none = await gc();
      assert.equal(none.code, 0, none.stderr);
      assert.deepEqual((JSON.parse(none.stdout) as GcReport).memory?.budgetBytes, 64 << 20, 'the default');

      const huge = await runCli(['gc', '--store', daemon.addr, '--keep-since', '0', '--grace', '0', '--memory', '1000TiB']);
      assert.equal(huge.code, 2, huge.stdout + huge.stderr);
      assert.match(huge.stderr, /INVALID_ARGUMENT: --memory 1000TiB is more than half of the daemon's machine's memory; ask for at most \d+MiB/);
      assert.ok(await present(), 'nothing was deleted');
      const tiny = await runCli(['gc', '--store', daemon.addr, '--keep-since', '0', '--memory', '10K']);
      assert.equal(tiny.code, 2, 'refused before asking the daemon');
      assert.match(tiny.stderr, /--memory must be at least 1MiB/);

      const real = await runCli(['gc', '--store', daemon.addr, '--keep-since', '0', '--grace', '0', '--memory', '2MiB', '--json']);
      assert.equal(real.code, 0, real.stderr);
      const report = JSON.parse(real.stdout) as GcReport;
      assert.deepEqual(report.deleted, [A.slice(11)]);
      assert.equal(report.memory?.budgetBytes, 2 << 20);
      assert.equal(await present(), false);
    } finally {
      await remote.close();
    }
    const fsck = await runCli(['fsck', '--store', fileAddr(dir), '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it("a daemon's --gc-memory is the budget of requests that name none (no --gc-interval needed)", async () => {
    const data = await mkdtemp(join(tmpdir(), 'gc-daemon-memory-default-'));
    try {
      const refused = await runCli(['daemon', '--data', data, '--listen', `unix:${join(data, 'never.sock')}`, '--gc-memory', '10K']);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, /--gc-memory must be at least 1MiB/);
      second = await startDaemonProcess({ args: ['--data', data, '--gc-memory', '3MiB'] });
      const gc = (...flags: string[]) => runCli(['gc', '--store', second!.addr, '--keep-since', '0', '--dry-run', '--json', ...flags]);
      const none = await gc();
      assert.equal(none.code, 0, none.stderr);
      assert.equal((JSON.parse(none.stdout) as GcReport).memory?.budgetBytes, 3 << 20, "the daemon's --gc-memory");
      const own = await gc('--memory', '2MiB');
      assert.equal(own.code, 0, own.stderr);
      assert.equal((JSON.parse(own.stdout) as GcReport).memory?.budgetBytes, 2 << 20, "the request's own");
    } finally {
      await second?.stop();
      second = undefined;
      await rm(data, { recursive: true, force: true });
    }
  });
});
