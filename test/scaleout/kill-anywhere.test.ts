// A daemon of the scale-out store SIGKILLed at a random moment of a copy:
// fsck finds no index entry pointing at missing bytes (orphaned bytes are
// only warnings), and the copy re-run through another daemon completes.
// Kill delays are uniform in [0, T], T a whole copy measured first.
// SCALEOUT_KILL_SEED=<n> replays a run, SCALEOUT_KILL_TRIALS=<n> sets the
// number of trials (default 6).
import { it, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFixture, type CopyFixture } from '../helpers/copy-fixtures.js';
import { startDaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';
import { seededRandom, seedFromEnv } from '../helpers/seeded-random.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { assertStoreMatchesNix, publishedPaths } from '../copy/verify-store.js';
import { runCli } from '../copy/run-cli.js';

const SEED = seedFromEnv('SCALEOUT_KILL_SEED');
const TRIALS = Number(process.env.SCALEOUT_KILL_TRIALS || 6);

let fx: CopyFixture;
before(async () => {
  fx = await copyFixture('scaleout');
});

it(`daemon A killed anywhere in a copy (SCALEOUT_KILL_SEED=${SEED}): fsck clean, the copy completes through B`, async (t) => {
  const rng = seededRandom(SEED);
  // T: one whole copy through a daemon on a fresh store.
  let T: number;
  {
    const s = await freshScaleoutAddr('kill-measure');
    const d = await startDaemonProcess({ args: ['--store', s.addr] });
    const t0 = performance.now();
    const r = await runCli(['copy', '--store', d.addr, '--attrs', fx.attrsJsonFile, '--jobs', '2']);
    T = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    await d.stop();
    await s.drop();
  }
  t.diagnostic(`SCALEOUT_KILL_SEED=${SEED}, ${TRIALS} trials, kill delays uniform in [0, ${T.toFixed(0)}] ms`);
  const published: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const delay = rng.uniform(0, T);
    const ctx = `trial ${i + 1}/${TRIALS} (SCALEOUT_KILL_SEED=${SEED}), A killed after ${delay.toFixed(0)} ms`;
    const s = await freshScaleoutAddr(`kill-${i}`);
    const a = await startDaemonProcess({ args: ['--store', s.addr] });
    const b = await startDaemonProcess({ args: ['--store', s.addr] });
    const viaB = openStore(sameAddr(s.addr));
    try {
      const timer = setTimeout(() => a.child.kill('SIGKILL'), delay);
      await runCli(['copy', '--store', a.addr, '--attrs', fx.attrsJsonFile, '--jobs', '2']);
      clearTimeout(timer);
      a.child.kill('SIGKILL'); // the copy may have finished first

      const fsck = await runCli(['fsck', '--store', s.addr]);
      assert.equal(fsck.code, 0, `${ctx}: fsck right after the kill:\n${fsck.stdout}\n${fsck.stderr}`);
      const partial = await publishedPaths(viaB);
      published.push(partial.length);
      await assertStoreMatchesNix(viaB, partial);

      const again = await runCli(['copy', '--store', b.addr, '--attrs', fx.attrsJsonFile]);
      assert.equal(again.code, 0, `${ctx}: the copy through B:\n${again.stderr}`);
      assert.deepEqual(await publishedPaths(viaB), fx.closure, ctx);
      await assertStoreMatchesNix(viaB, fx.closure);
      const after = await runCli(['fsck', '--store', s.addr, '--verify-blobs']);
      assert.equal(after.code, 0, `${ctx}: fsck after the re-copy:\n${after.stdout}\n${after.stderr}`);
    } finally {
      await viaB.close();
      await a.stop();
      await b.stop();
      await s.drop();
    }
  }
  t.diagnostic(`paths published when A died: ${published.join(', ')} of ${fx.closure.length}`);
});
