// Uploads that must not publish anything, against a real daemon: the NAR
// files and narinfos are exactly what Nix 2.8 writes (`nix copy --to
// file://…`), sent by hand so each can be broken on purpose. Each failure
// gets its documented status, nothing becomes visible, and `fsck --nar`
// finds the store clean afterwards.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { readFile, readdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheFixture, deleteCacheFixture, keyPair, type CacheFixture } from '../helpers/cache-fixtures.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { runCli } from '../copy/run-cli.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { cacheUrlOf, request, type RawResponse } from './http-helpers.js';

const SALT = `upload-failures-${process.pid}`;
const TOKEN = 'the-write-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };

let fx: CacheFixture;
let tmp: string;
let tokenFile: string;
/** Nix's own binary cache of the fixture (xz). */
let nixCache: string;
const daemons: DaemonProcess[] = [];

interface Upload {
  narinfo: string;
  /** `nar/….nar.xz` */
  url: string;
  nar: Buffer;
}

async function uploadOf(path: string): Promise<Upload> {
  const narinfo = await readFile(join(nixCache, `${path.slice(11, 43)}.narinfo`), 'utf8');
  const url = /^URL: (.*)$/m.exec(narinfo)![1];
  return { narinfo, url, nar: await readFile(join(nixCache, url)) };
}

const hashName = (file: Buffer, ext: string) => `nar/${nixbase32.encode(createHash('sha256').update(file).digest())}.nar${ext}`;

before(async () => {
  fx = await cacheFixture(SALT);
  tmp = await mkdtemp(join(tmpdir(), 'upload-failures-'));
  tokenFile = join(tmp, 'token');
  await writeFile(tokenFile, TOKEN);
  nixCache = join(tmp, 'nix-cache');
  await runNix('nix', ['copy', '--to', `file://${nixCache}`, fx.top]);
});

after(async () => {
  for (const d of daemons) await d.stop('SIGKILL');
  await deleteCacheFixture(fx);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function startCache(data: string, extra: string[] = ['--auth-token-file', tokenFile]): Promise<{ d: DaemonProcess; url: string }> {
  const d = await startDaemonProcess({ args: ['--data', data, '--http', '127.0.0.1:0', ...extra] });
  daemons.push(d);
  return { d, url: await cacheUrlOf(d) };
}

const put = (url: string, target: string, body: Uint8Array, headers: Record<string, string> = AUTH) =>
  request(url, `/${target}`, 'PUT', { ...headers, 'content-length': String(body.length) }, body);

async function assertStatus(r: Promise<RawResponse>, status: number, body?: RegExp): Promise<void> {
  const res = await r;
  assert.equal(res.status, status, res.body.toString());
  if (body) assert.match(res.body.toString(), body);
}

async function notPublished(url: string, path: string): Promise<void> {
  const r = await request(url, `/${path.slice(11, 43)}.narinfo`, 'GET', AUTH);
  assert.equal(r.status, 404, r.body.toString());
}

async function fsckClean(data: string): Promise<void> {
  const r = await runCli(['fsck', '--data', data, '--nar']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
}

async function stagedRecords(data: string): Promise<string[]> {
  return (await readdir(join(data, 'staged-nars')).catch(() => [] as string[])).filter((n) => n.endsWith('.json') || n.endsWith('.tmp'));
}

describe('refused uploads', () => {
  let cache: { d: DaemonProcess; url: string };
  let data: string;
  before(async () => {
    data = join(tmp, 'data-refused');
    cache = await startCache(data);
  });

  it('a NAR whose bytes do not hash to its name: 400, nothing staged', async () => {
    const u = await uploadOf(fx.file);
    const tampered = Buffer.from(u.nar);
    tampered[tampered.length >> 1] ^= 1;
    await assertStatus(put(cache.url, u.url, tampered), 400, /hashes to|malformed/);
    assert.deepEqual(await stagedRecords(data), []);
  });

  it('a tampered NAR under its own name is received, but the narinfo (NarHash kept) is refused: 400', async () => {
    const u = await uploadOf(fx.file);
    const nar = execFileSync('xz', ['-d', '-c'], { input: u.nar });
    nar[nar.indexOf('single')] ^= 1; // a byte of the file's contents
    const file = execFileSync('xz', ['-c'], { input: nar });
    await assertStatus(put(cache.url, hashName(file, '.xz'), file), 200);
    await assertStatus(put(cache.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 400, /no NAR with NarHash/);
    await notPublished(cache.url, fx.file);
  });

  it('a malformed NAR (entries out of order): 400 saying so', async () => {
    const entry = (name: string) => [str('entry'), str('('), str('name'), str(name), str('node'), str('('), str('type'), str('regular'), str('contents'), str('x'), str(')'), str(')')];
    const nar = Buffer.concat([str('nix-archive-1'), str('('), str('type'), str('directory'), ...entry('b'), ...entry('a'), str(')')]);
    await assertStatus(put(cache.url, hashName(nar, ''), nar), 400, /not sorted/);
  });

  it('a narinfo that is not one: 400', async () => {
    await assertStatus(put(cache.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from('StorePath: nonsense\n')), 400, /malformed narinfo/);
  });

  it('a narinfo whose references are not in the store: 400 naming them, nothing published', async () => {
    const u = await uploadOf(fx.link);
    await assertStatus(put(cache.url, u.url, u.nar), 200);
    await assertStatus(put(cache.url, `${fx.link.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 400, new RegExp(`does not have: ${fx.file}`));
    await notPublished(cache.url, fx.link);
  });

  it('no token or a wrong one: 401, nothing read', async () => {
    const u = await uploadOf(fx.file);
    await assertStatus(put(cache.url, u.url, u.nar, {}), 401);
    await assertStatus(put(cache.url, u.url, u.nar, { authorization: 'Bearer wrong' }), 401);
    await assertStatus(put(cache.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo), {}), 401);
    await notPublished(cache.url, fx.file);
  });

  it('a truncated upload (connection closed before Content-Length): nothing staged or published', async () => {
    const u = await uploadOf(fx.leaf);
    const before = await stagedRecords(data);
    const { port } = new URL(cache.url);
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(Number(port), '127.0.0.1', () => {
        s.write(`PUT /${u.url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${u.nar.length}\r\n\r\n`);
        s.end(u.nar.subarray(0, u.nar.length >> 1));
      });
      s.on('error', reject);
      s.on('close', () => resolve());
      s.resume();
    });
    await waitForLog(cache.d, new RegExp(`PUT /${u.url.replace(/\./g, '\\.')} 400 .*cut short`));
    assert.deepEqual(await stagedRecords(data), before);
    await assertStatus(put(cache.url, `${fx.leaf.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 400, /no NAR with NarHash/);
  });

  it('a client killed mid-upload (SIGKILL): nothing staged or published', async () => {
    const u = await uploadOf(fx.leaf);
    const before = await stagedRecords(data);
    const file = join(tmp, 'leaf.nar.xz');
    await writeFile(file, u.nar);
    const { port } = new URL(cache.url);
    // Sends the headers and half the body, then kills itself.
    const script = `
      const s = require('net').connect(${port}, '127.0.0.1', () => {
        const nar = require('fs').readFileSync(${JSON.stringify(file)});
        s.write('PUT /${u.url} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer ${TOKEN}\\r\\nContent-Length: ' + nar.length + '\\r\\n\\r\\n');
        s.write(nar.subarray(0, nar.length >> 1), () => process.kill(process.pid, 'SIGKILL'));
      });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const signal = await new Promise((r) => child.on('exit', (_code, sig) => r(sig)));
    assert.equal(signal, 'SIGKILL');
    const line = new RegExp(`PUT /${u.url.replace(/\./g, '\\.')} 400 .*cut short`, 'g');
    await waitForLog(cache.d, line, 2);
    assert.deepEqual(await stagedRecords(data), before);
    await notPublished(cache.url, fx.leaf);
  });

  it('fsck --nar finds the store clean after all of that', async () => {
    await fsckClean(data);
  });
});

describe('access', () => {
  it('a read-only daemon: 403 for every upload', async () => {
    const c = await startCache(join(tmp, 'data-ro'), ['--read-only']);
    const u = await uploadOf(fx.file);
    await assertStatus(put(c.url, u.url, u.nar, {}), 403, /read-only/);
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo), {}), 403, /read-only/);
    await assertStatus(put(c.url, 'nix-cache-info', Buffer.from('StoreDir: /nix/store\n'), {}), 403);
  });

  it('a daemon that signs takes no uploads without a token: 403', async () => {
    const key = await keyPair('failures-sign-1');
    const sk = join(tmp, 'sign.key');
    await writeFile(sk, key.secret);
    const c = await startCache(join(tmp, 'data-signs'), ['--sign-key-file', sk]);
    const u = await uploadOf(fx.file);
    await assertStatus(put(c.url, u.url, u.nar, {}), 403, /auth-token-file/);
  });

  it('--trusted-upload-keys: an unsigned narinfo gets 403, a signed one is published', async () => {
    const key = await keyPair('failures-trusted-1');
    const c = await startCache(join(tmp, 'data-trusted'), ['--auth-token-file', tokenFile, '--trusted-upload-keys', key.public]);
    const u = await uploadOf(fx.file);
    await assertStatus(put(c.url, u.url, u.nar), 200);
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 403, /no valid signature/);
    await notPublished(c.url, fx.file);
    const sk = join(tmp, 'trusted.key');
    await writeFile(sk, key.secret);
    const signedCache = join(tmp, 'nix-cache-signed');
    await runNix('nix', ['store', 'sign', '--key-file', sk, fx.file]);
    await runNix('nix', ['copy', '--to', `file://${signedCache}`, fx.file]);
    const signed = await readFile(join(signedCache, `${fx.file.slice(11, 43)}.narinfo`));
    assert.match(signed.toString(), /Sig: failures-trusted-1:/);
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, signed), 200, /published/);
  });
});

describe('one path uploaded in two compressions (two clients, or one whose cache had it absent)', () => {
  /** The same NAR as Nix would upload it with compression=none: its own file, URL and FileHash. */
  const uncompressed = (u: Upload): { url: string; nar: Buffer; narinfo: string } => {
    const nar = execFileSync('xz', ['-d', '-c'], { input: u.nar });
    const url = hashName(nar, '');
    const narinfo = u.narinfo
      .replace(/^URL: .*$/m, `URL: ${url}`)
      .replace(/^Compression: .*$/m, 'Compression: none')
      .replace(/^FileHash: .*$/m, `FileHash: sha256:${url.slice(4, 56)}`)
      .replace(/^FileSize: .*$/m, `FileSize: ${nar.length}`);
    return { url, nar, narinfo };
  };
  const served = async (url: string, target: string): Promise<Buffer> => {
    const r = await request(url, `/${target}`, 'GET', AUTH);
    assert.equal(r.status, 200, `${target}: ${r.body.toString()}`);
    return target.endsWith('.xz') ? execFileSync('xz', ['-d', '-c'], { input: r.body }) : r.body;
  };

  it('one after the other: the second narinfo is "already present", and the file it names is served too', async () => {
    const data = join(tmp, 'data-twice');
    const c = await startCache(data);
    const u = await uploadOf(fx.file);
    const plain = uncompressed(u);
    await assertStatus(put(c.url, u.url, u.nar), 200);
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 200, /published/);
    await assertStatus(put(c.url, plain.url, plain.nar), 200);
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(plain.narinfo)), 200, /already present/);
    assert.ok((await served(c.url, plain.url)).equals(plain.nar), 'the second client substitutes from the URL its narinfo names');
    assert.ok((await served(c.url, u.url)).equals(plain.nar));
    assert.deepEqual(await stagedRecords(data), [], 'its staged record is claimed');
  });

  it('both NARs before either narinfo: each narinfo\'s file is served', async () => {
    const data = join(tmp, 'data-interleaved');
    const c = await startCache(data);
    const u = await uploadOf(fx.file);
    const plain = uncompressed(u);
    await assertStatus(put(c.url, u.url, u.nar), 200);
    await assertStatus(put(c.url, plain.url, plain.nar), 200); // replaces the first's staged record: same NarHash
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 200, /published/);
    await assertStatus(put(c.url, `${fx.file.slice(11, 43)}.narinfo`, Buffer.from(plain.narinfo)), 200, /already present/);
    assert.ok((await served(c.url, u.url)).equals(plain.nar));
    assert.ok((await served(c.url, plain.url)).equals(plain.nar));
  });
});

describe('a daemon killed between the NAR and its narinfo', () => {
  it('accepts the narinfo after a restart, and the path is served whole', async () => {
    const data = join(tmp, 'data-killed');
    const first = await startCache(data);
    const u = await uploadOf(fx.leaf);
    await assertStatus(put(first.url, u.url, u.nar), 200);
    await first.d.stop('SIGKILL');
    const second = await startCache(data);
    await assertStatus(put(second.url, `${fx.leaf.slice(11, 43)}.narinfo`, Buffer.from(u.narinfo)), 200, /published/);
    const nar = await request(second.url, `/${/^URL: (.*)$/m.exec((await request(second.url, `/${fx.leaf.slice(11, 43)}.narinfo`, 'GET', AUTH)).body.toString())![1]}`, 'GET', AUTH);
    assert.equal(nar.status, 200);
    const dumped = (await runNix('nix-store', ['--dump', fx.leaf])).stdout;
    assert.ok(execFileSync('zstd', ['-d', '-c'], { input: nar.body, maxBuffer: 1 << 30 }).equals(dumped));
    assert.deepEqual(await stagedRecords(data), []);
    await second.d.stop();
    await fsckClean(data);
  });
});

function str(s: string): Buffer {
  const b = Buffer.from(s);
  const out = Buffer.alloc(8 + Math.ceil(b.length / 8) * 8);
  out.writeBigUInt64LE(BigInt(b.length));
  b.copy(out, 8);
  return out;
}

/** Waits (at most 20 s) until `re` matches `count` lines of the daemon's log. */
async function waitForLog(d: DaemonProcess, re: RegExp, count = 1): Promise<void> {
  const n = () => d.stderr().split('\n').filter((l) => new RegExp(re.source).test(l)).length;
  for (let i = 0; i < 800 && n() < count; i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(n() >= count, d.stderr());
}
