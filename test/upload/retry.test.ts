import { it } from 'node:test';
import assert from 'node:assert/strict';
import { withRetry } from '../../src/upload/retry.js';
import { CastoreError } from '../../src/castore/errors.js';

const fast = { attempts: 4, baseMs: 1, maxMs: 5 };

it('retries transient failures, then succeeds', async () => {
  let calls = 0;
  const logs: string[] = [];
  const v = await withRetry('op', async () => {
    if (++calls < 3) throw new CastoreError('unavailable', 'connection reset');
    return 'ok';
  }, fast, (m) => logs.push(m));
  assert.equal(v, 'ok');
  assert.equal(calls, 3);
  assert.equal(logs.length, 2);
  assert.match(logs[0], /op: connection reset; retry 1\/3/);
});

it('gives up after the last attempt and reports the error', async () => {
  let calls = 0;
  await assert.rejects(withRetry('op', async () => {
    calls++;
    throw new CastoreError('too-large', 'RESOURCE_EXHAUSTED');
  }, fast), /RESOURCE_EXHAUSTED/);
  assert.equal(calls, 4);
});

it('does not retry permanent failures', async () => {
  let calls = 0;
  await assert.rejects(withRetry('op', async () => {
    calls++;
    throw new CastoreError('invalid', 'bad');
  }, fast), /bad/);
  assert.equal(calls, 1);
});
