// --http-public-reads: a team cache whose machines substitute without a
// netrc while only pushers hold the token. Real Nix pushes with the token
// (netrc) and substitutes without one, signatures required; uploads without
// the token are still 401, and without the flag reads need it too.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFixture, deleteCacheFixture, freshNixEnv, keyPair, netrcFile, type CacheFixture } from '../helpers/cache-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import { cacheUrlOf, request } from './http-helpers.js';

const TOKEN = 'public-reads-token';
let fx: CacheFixture;
let tmp: string;
let key: { public: string; secret: string };
const daemons: DaemonProcess[] = [];

before(async () => {
  fx = await cacheFixture(`public-reads-${process.pid}`);
  tmp = await mkdtemp(join(tmpdir(), 'public-reads-'));
  key = await keyPair('public-reads-1');
  await writeFile(join(tmp, 'cache.key'), key.secret, { mode: 0o600 });
  await writeFile(join(tmp, 'token'), TOKEN, { mode: 0o600 });
});

after(async () => {
  for (const d of daemons) await d.stop();
  await deleteCacheFixture(fx);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function cache(name: string, extra: string[]): Promise<string> {
  const d = await startDaemonProcess({ args: ['--data', join(tmp, name), '--http', '127.0.0.1:0', '--sign-key-file', join(tmp, 'cache.key'), '--auth-token-file', join(tmp, 'token'), ...extra] });
  daemons.push(d);
  return cacheUrlOf(d);
}

it('machines without the token substitute; uploads still need it', async () => {
  const url = await cache('public', ['--http-public-reads']);
  const netrc = await netrcFile(join(tmp, 'netrc'), TOKEN);
  await runNix('nix', ['copy', '--to', url, fx.top], { env: freshNixEnv(join(tmp, 'push-cache'), [`netrc-file = ${netrc}`]) });
  assert.equal((await request(url, '/nix-cache-info')).status, 200);
  assert.equal((await request(url, `/${fx.top.slice(11, 43)}.narinfo`, 'HEAD')).status, 200);
  const root = join(tmp, 'root');
  const env = freshNixEnv(join(tmp, 'pull-cache'), [`substituters = ${url}`, `trusted-public-keys = ${key.public}`, 'require-sigs = true', `netrc-file = ${join(tmp, 'no-netrc')}`]);
  await runNix('nix-store', ['--store', root, '-r', fx.top], { env });
  for (const p of fx.closure) await runNix('nix-store', ['--store', root, '--verify-path', p], { env });
  const put = await request(url, '/nix-cache-info', 'PUT', { 'content-length': '21' }, Buffer.from('StoreDir: /nix/store\n'));
  assert.equal(put.status, 401, put.body.toString());
});

it('without the flag a read needs the token; the flag alone is refused', async () => {
  const url = await cache('private', []);
  assert.equal((await request(url, '/nix-cache-info')).status, 401);
  const r = await runCli(['daemon', '--data', join(tmp, 'x'), '--listen', `unix:${join(tmp, 'x.sock')}`, '--http', '127.0.0.1:0', '--http-public-reads']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--http-public-reads applies to --http with --auth-token-file/);
});
