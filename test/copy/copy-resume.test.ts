// A copy killed with SIGKILL midway, then run again, ends complete and
// consistent: nothing published half-done, everything published verifies.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix, publishedPaths } from './verify-store.js';
import { runCli } from './run-cli.js';

it('resumes after the client is killed midway', async () => {
  const fx = await copyFixture('resume');
  const d = await startDaemonProcess();
  const store = openStore(sameAddr(d.addr));
  try {
    // Kill as soon as the first path is published (or the 100 MiB upload is under way).
    const killed = await runCli(['copy', '--store', d.addr, '--attrs', fx.attrsJsonFile, '--jobs', '1'], {
      killAfter: (stderr) => /uploaded /.test(stderr),
    });
    assert.equal(killed.signal, 'SIGKILL', `the copy was killed midway:\n${killed.stderr}`);
    const partial = await publishedPaths(store);
    assert.ok(partial.length < fx.closure.length, 'killed before the end');
    await assertStoreMatchesNix(store, partial); // whatever got published is complete and correct

    const again = await runCli(['copy', '--store', d.addr, '--attrs', fx.attrsJsonFile, '--json']);
    assert.equal(again.code, 0, again.stderr);
    const report = JSON.parse(again.stdout);
    assert.equal(report.skipped.length, partial.length);
    assert.deepEqual(await publishedPaths(store), fx.closure);
    await assertStoreMatchesNix(store, fx.closure);
  } finally {
    await store.close();
    await d.stop();
  }
});
