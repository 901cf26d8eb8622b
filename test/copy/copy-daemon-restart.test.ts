// A daemon restarted while a copy runs (a deploy, systemd's RestartSec, a
// crash) is waited for: the copy's calls retry for at least ~14 s in all
// (COPY_RETRY), so a daemon SIGKILLed mid-copy and back 6 s later on the
// same socket and data gets the rest, and the copy ends with exit 0 and a
// complete store. While it waits, a line a second says it is retrying.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyFixture } from '../helpers/copy-fixtures.js';
import { CLI, CLI_NODE_FLAGS, startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv } from '../helpers/nix.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix, publishedPaths } from './verify-store.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('a copy whose daemon is killed midway and back 6 s later completes', async () => {
  const fx = await copyFixture('daemon-restart');
  const tmp = await mkdtemp(join(tmpdir(), 'copy-daemon-restart-'));
  const sock = join(tmp, 'store.sock');
  const dataDir = join(tmp, 'data');
  const daemonAt = () => startDaemonProcess({ dataDir, args: ['--data', dataDir], extraArgs: ['--listen', `unix:${sock}`] });
  let d: DaemonProcess | undefined = await daemonAt();
  const copy = spawn(process.execPath, [...CLI_NODE_FLAGS, CLI, 'copy', '--store', `grpc+unix://${sock}`, '--attrs', fx.attrsJsonFile, '--jobs', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: nixEnv(),
  });
  let log = '';
  copy.stderr!.on('data', (c) => (log += c));
  const exited = new Promise<number | null>((r) => copy.once('exit', (code) => r(code)));
  try {
    // Killed once the first path is published, with more to go.
    for (let i = 0; i < 1200 && !/uploaded /.test(log) && copy.exitCode === null; i++) await sleep(25);
    assert.match(log, /uploaded /);
    await d.stop('SIGKILL');
    d = undefined;
    await sleep(6000);
    assert.equal(copy.exitCode, null, `the copy waits for the daemon:\n${log}`);
    d = await daemonAt();
    assert.equal(await exited, 0, log);
    assert.match(log, /retry \d+\/9 in \d+ ms/);
    // Every call in flight retries: at most a line a second says so (~8 s of outage).
    const retryLines = log.split('\n').filter((l) => /; retry \d+\/9 in \d+ ms/.test(l));
    assert.ok(retryLines.length <= 15, `${retryLines.length} retry lines:\n${retryLines.join('\n')}`);
    const store = openStore(sameAddr(`grpc+unix://${sock}`));
    try {
      assert.deepEqual(await publishedPaths(store), fx.closure);
      await assertStoreMatchesNix(store, fx.closure);
    } finally {
      await store.close();
    }
  } finally {
    copy.kill('SIGKILL');
    await d?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
});
