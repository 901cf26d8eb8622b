// Uploads to the scale-out store: the staged NAR lives in PostgreSQL, so a
// NAR received by one daemon is published by the narinfo another daemon
// receives (as behind a load balancer), and plain Nix pushes to and pulls
// from such a daemon.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFixture, deleteCacheFixture, freshNixEnv, type CacheFixture } from '../helpers/cache-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';

const SALT = `scaleout-upload-${process.pid}`;

let fx: CacheFixture;
let tmp: string;
let s: ScaleoutAddr;
const daemons: DaemonProcess[] = [];

before(async () => {
  fx = await cacheFixture(SALT);
  tmp = await mkdtemp(join(tmpdir(), 'scaleout-upload-'));
  s = await freshScaleoutAddr('http-upload');
});

after(async () => {
  for (const d of daemons) await d.stop();
  await s?.drop();
  await deleteCacheFixture(fx);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function daemon(): Promise<string> {
  const d = await startDaemonProcess({ args: ['--store', s.addr, '--http', '127.0.0.1:0'] });
  daemons.push(d);
  return cacheUrlOf(d);
}

describe('uploads to the S3 + PostgreSQL store', () => {
  it('a NAR sent to one daemon, its narinfo to another: published', async () => {
    const [a, b] = [await daemon(), await daemon()];
    const nixCache = join(tmp, 'nix-cache');
    await runNix('nix', ['copy', '--to', `file://${nixCache}`, fx.file]);
    const narinfo = await readFile(join(nixCache, `${fx.file.slice(11, 43)}.narinfo`));
    const url = /^URL: (.*)$/m.exec(narinfo.toString())![1];
    const nar = await readFile(join(nixCache, url));
    const r1 = await request(a, `/${url}`, 'PUT', { 'content-length': String(nar.length) }, nar);
    assert.equal(r1.status, 200, r1.body.toString());
    const r2 = await request(b, `/${fx.file.slice(11, 43)}.narinfo`, 'PUT', { 'content-length': String(narinfo.length) }, narinfo);
    assert.equal(r2.status, 200, r2.body.toString());
    assert.equal((await request(a, `/${fx.file.slice(11, 43)}.narinfo`)).status, 200);
  });

  it('nix copy --to and nix-store -r back', async () => {
    const url = await daemon();
    await runNix('nix', ['copy', '--to', `${url}?compression=zstd`, fx.top], { env: freshNixEnv(join(tmp, 'push')) });
    const root = join(tmp, 'root');
    const env = freshNixEnv(join(tmp, 'pull'), [`substituters = ${url}`, 'require-sigs = false']);
    await runNix('nix-store', ['--store', root, '-r', fx.top], { env });
    for (const p of fx.closure) await runNix('nix-store', ['--store', root, '--verify-path', p], { env });
  });
});
