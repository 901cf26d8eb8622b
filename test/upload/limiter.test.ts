import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter } from '../../src/util/limiter.js';

test('Limiter: never more than max at once, waiters run in arrival order, failures free their slot', async () => {
  const lim = new Limiter(3);
  let active = 0;
  let peak = 0;
  const started: number[] = [];
  const n = 5000; // enough waiters to exercise the queue's compaction
  const runs = Array.from({ length: n }, (_, i) =>
    lim.run(async () => {
      started.push(i);
      peak = Math.max(peak, ++active);
      await new Promise((r) => setImmediate(r));
      active--;
      if (i % 7 === 0) throw new Error(`job ${i}`);
      return i;
    }),
  );
  const results = await Promise.allSettled(runs);
  assert.equal(peak, 3);
  assert.deepEqual(started, Array.from({ length: n }, (_, i) => i));
  results.forEach((r, i) => {
    if (i % 7 === 0) assert.equal(r.status, 'rejected');
    else assert.deepEqual(r, { status: 'fulfilled', value: i });
  });
  // Still usable after the queue drained.
  assert.equal(await lim.run(async () => 'again'), 'again');
});
