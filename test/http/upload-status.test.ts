// What an upload's status says: a body that is not a NAR is 400 "malformed
// NAR upload" (not "cut short", though the daemon stops reading it), and a
// store whose disk is full answers 507 with what happened, whichever write
// met it; a PUT whose body never starts (Nix 2.8's retry after a 5xx sends
// the headers only) is answered 408 after --stream-stall-timeout, not left
// to the connection's idle timeout. A real daemon, a real 24 MiB tmpfs.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { narBytes } from '../../src/nix/nar.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { cacheUrlOf, request } from './http-helpers.js';

const TOKEN = 'upload-status-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
let tmp: string;
let mnt: string;
let daemon: DaemonProcess;
let url: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'upload-status-'));
  mnt = join(tmp, 'small-fs');
  await mkdir(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`this test mounts a 24 MiB tmpfs and needs root (as CI has): ${(err as Error).message}`);
  }
  await writeFile(join(tmp, 'token'), TOKEN);
  daemon = await startDaemonProcess({ args: ['--data', mnt, '--http', '127.0.0.1:0', '--auth-token-file', join(tmp, 'token'), '--stream-stall-timeout', '2'] });
  url = await cacheUrlOf(daemon);
});

after(async () => {
  await daemon?.stop();
  try {
    execFileSync('umount', [mnt]);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

const name = (file: Buffer) => `/nar/${nixbase32.encode(createHash('sha256').update(file).digest())}.nar`;
const put = (target: string, body: Buffer) => request(url, target, 'PUT', { ...AUTH, 'content-length': String(body.length) }, body);

async function narOf(data: Buffer): Promise<Buffer> {
  return Buffer.from(await narBytes({ type: 'regular', executable: false, size: data.length, contents: async function* () { yield data; } }));
}

it('a body that is not a NAR: 400 malformed, not "cut short"', async () => {
  const junk = randomBytes(200_000);
  const r = await put(name(junk), junk);
  assert.equal(r.status, 400, r.body.toString());
  assert.match(r.body.toString(), /^malformed NAR upload: /);
});

it('a full disk: 507 saying the storage is full, for a large upload and for a small one after it', async () => {
  const big = await narOf(randomBytes(40 << 20));
  const r = await put(name(big), big);
  assert.equal(r.status, 507, r.body.toString());
  assert.match(r.body.toString(), /storage is full, nothing was stored: .*(ENOSPC|no space)/i);
  // Fill what is left, then a small upload meets the same condition.
  execFileSync('sh', ['-c', `cat /dev/zero > ${join(mnt, 'filler')} 2>/dev/null; true`]);
  const small = await narOf(randomBytes(64 << 10));
  const s = await put(name(small), small);
  assert.equal(s.status, 507, s.body.toString());
  assert.match(s.body.toString(), /storage is full/);
});

it('a PUT whose body never starts: 408 after the stall timeout, and the connection is closed', async () => {
  const { port } = new URL(url);
  const answer = await new Promise<string>((resolve, reject) => {
    let got = '';
    const s = net.connect(Number(port), '127.0.0.1', () => {
      s.write(`PUT /nar/${'0'.repeat(52)}.nar HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 1000\r\n\r\n`);
    });
    // Not a timing assertion: a daemon that waits for the body for ever is given up on here.
    const guard = setTimeout(() => (s.destroy(), resolve(`(no answer in 60 s) ${got}`)), 60_000);
    s.on('data', (d) => (got += d));
    s.on('error', reject);
    s.on('close', () => (clearTimeout(guard), resolve(got)));
  });
  assert.match(answer, /^HTTP\/1\.1 408 /);
  assert.match(answer, /no byte of the request body arrived in 2 s/);
  // And its handler ends: the request is logged and counted, and what it
  // held of --max-buffered-bytes is given back (it was held for good, so
  // each such retry of Nix's took ~1 MiB of the budget until a restart).
  // Not a timing assertion: a handler that never ends is given up on here.
  const line = /PUT \/nar\/0{52}\.nar 408 .*no byte of the body in 2 s/;
  const deadline = Date.now() + 60_000;
  let metrics = '';
  while (Date.now() < deadline) {
    metrics = (await request(url, '/metrics')).body.toString();
    if (line.test(daemon.stderr()) && /^nix_castore_buffered_bytes 0$/m.test(metrics)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(daemon.stderr(), line);
  assert.match(metrics, /^nix_castore_http_requests_total\{route="nar",status="408"\} 1$/m);
  assert.match(metrics, /^nix_castore_buffered_bytes 0$/m);
});
