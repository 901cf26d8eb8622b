// --gc-interval across restarts: the interval counts from the start recorded
// with the store (its last scheduled collection, or the first schedule), not
// from each daemon start, so a daemon restarted more often than its interval
// (deploys, reboots, Restart=on-failure) still collects. On disk and on the
// scale-out store (shared by its daemons). Real daemons.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr } from '../helpers/scaleout.js';

const NEXT = /collecting garbage every \S+ \(next (\S+)\)/;

/** Starts a daemon with `args`, returns when its next collection is due as it logged it, and stops it. */
async function nextCollection(args: string[]): Promise<string> {
  const d = await startDaemonProcess({ args });
  try {
    // The schedule reads the store's record as the daemon starts: wait for
    // its line. Not a timing assertion: a daemon that never logs one is
    // given up on here.
    const deadline = Date.now() + 60_000;
    while (!NEXT.test(d.stderr()) && d.child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const m = NEXT.exec(d.stderr());
    assert.ok(m, d.stderr());
    return m[1];
  } finally {
    await d.stop();
  }
}

describe('--gc-interval across daemon restarts', () => {
  it('on disk: a restart keeps the due time, and one past it collects at once', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'gc-schedule-'));
    const store = ['--data', join(tmp, 'data'), '--gc-keep-since', '1d'];
    try {
      const first = await nextCollection([...store, '--gc-interval', '1h']);
      assert.match(first, /^\d{4}-\d\d-\d\dT/);
      assert.equal(await nextCollection([...store, '--gc-interval', '1h']), first, 'restarted: the same due time, not an hour from the restart');
      // A shorter interval that has passed since that start: due now.
      assert.equal(await nextCollection([...store, '--gc-interval', '1s']), 'now');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('scale-out: the due time is the store\'s, whichever daemon restarts', async () => {
    const s = await freshScaleoutAddr('gc-schedule');
    try {
      const first = await nextCollection(['--store', s.addr, '--gc-interval', '1h', '--gc-keep-since', '1d']);
      assert.match(first, /^\d{4}-\d\d-\d\dT/);
      assert.equal(await nextCollection(['--store', s.addr, '--gc-interval', '1h', '--gc-keep-since', '1d']), first);
    } finally {
      await s.drop();
    }
  });

  it('scale-out: two daemons due at the same time collect once per round, the other one skips it (no failed run)', async () => {
    const s = await freshScaleoutAddr('gc-schedule-two');
    const args = ['--store', s.addr, '--gc-interval', '2s', '--gc-keep-since', '1d'];
    const a = await startDaemonProcess({ args });
    const b = await startDaemonProcess({ args });
    try {
      const both = () => a.stderr() + b.stderr();
      // Until each has skipped a round the other claimed. Not a timing
      // assertion: daemons that never skip are given up on here.
      const deadline = Date.now() + 60_000;
      const skipped = (d: typeof a) => /another daemon of this store started a collection/.test(d.stderr());
      while (!(skipped(a) && skipped(b)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(skipped(a) && skipped(b), both());
      assert.doesNotMatch(both(), /gc failed/);
      assert.match(both(), /reclaimed/);
    } finally {
      await a.stop();
      await b.stop();
      await s.drop();
    }
  });
});
