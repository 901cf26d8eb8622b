// Issue 18: `nix copy --to` uploads count against the daemon's budget of
// bytes held for clients: a NAR upload the budget cannot take is answered
// 503 with Retry-After (Nix retries those) before any of it is read.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { cacheUrlOf, request } from './http-helpers.js';

let daemon: DaemonProcess;
let url: string;

before(async () => {
  // 1 MiB: less than one NAR upload holds (its store writer's bytes and the body in flight).
  daemon = await startDaemonProcess({ args: ['--store', 'memory://', '--http', '127.0.0.1:0'], env: { ...process.env, NIX_CASTORE_MAX_BUFFERED_BYTES: '1M' } });
  url = await cacheUrlOf(daemon);
});
after(async () => {
  await daemon?.stop();
});

it('a NAR upload beyond the budget gets 503 with Retry-After', async () => {
  const r = await request(url, `/nar/${'0'.repeat(52)}.nar`, 'PUT', { 'Content-Type': 'application/x-nix-nar' }, Buffer.alloc(1000));
  assert.equal(r.status, 503, r.body.toString());
  assert.match(r.headers['retry-after'] ?? '', /^\d+$/);
  assert.match(r.body.toString(), /--max-buffered-bytes/);
  assert.equal((await request(url, '/nix-cache-info')).status, 200, 'reads are served');
});
