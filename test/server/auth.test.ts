// `nix-castore daemon --auth-token-file FILE`: every write RPC needs the
// metadata `authorization: Bearer <token>` (else UNAUTHENTICATED, nothing
// stored), reads stay open; the HTTP binary cache needs the token on every
// request (401 otherwise); `nix-castore copy` sends it when
// NIX_CASTORE_AUTH_TOKEN_FILE names the file.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storedBlobs } from '../helpers/stored-blobs.js';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { Writer, auth, symlinkPathInfo } from '../helpers/grpc-writes.js';
import { cacheUrlOf } from '../http/http-helpers.js';
import { runCli } from '../copy/run-cli.js';
import { nixEnv, runNix } from '../helpers/nix.js';
import { blake3 } from '../../src/castore/digest.js';
import { directoryDigest } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';
import { openStore, sameAddr } from '../../src/addr/open.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { sameToken, authorizes } from '../../src/server/access.js';

const TOKEN = 'tok-3f9c1e7d2b8a4f60a1c5e9d7b3f2a8c4';

let tmp: string;
let tokenFile: string;
let daemon: DaemonProcess;
let w: Writer;
let cacheUrl: string;

const dir = (label: string): Directory => ({ directories: [], files: [], symlinks: [{ name: Buffer.from(label), target: Buffer.from('t') }] });

async function blobFiles(): Promise<string[]> {
  return [...(await storedBlobs(daemon.dataDir)).keys()];
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'castore-auth-'));
  tokenFile = join(tmp, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const dataDir = join(tmp, 'data');
  daemon = await startDaemonProcess({ dataDir, args: ['--data', dataDir, '--auth-token-file', tokenFile, '--http', '127.0.0.1:0'] });
  w = new Writer(daemon.socket);
  cacheUrl = await cacheUrlOf(daemon);
});

after(async () => {
  w?.close();
  await daemon?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe('gRPC writes need the bearer token', () => {
  it('without a token: all three writes → UNAUTHENTICATED, nothing stored', async () => {
    const data = Buffer.from('no token, no blob');
    const { info, storeDigest } = symlinkPathInfo('no-token');
    const d = dir('no-token');
    for (const pkg of ['tvix', 'snix'] as const) {
      assert.equal((await w.putBlob(data, auth(), pkg)).name, 'UNAUTHENTICATED');
      assert.equal((await w.putDirectories([d], auth(), pkg)).name, 'UNAUTHENTICATED');
      const pi = await w.putPathInfo(info, auth(), pkg);
      assert.equal(pi.name, 'UNAUTHENTICATED');
      assert.match(pi.details, /authorization: Bearer/);
    }
    assert.equal((await w.statBlob(blake3(data))).name, 'NOT_FOUND');
    assert.equal((await w.getDirectory(directoryDigest(d))).name, 'NOT_FOUND');
    assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND');
    assert.deepEqual(await blobFiles(), [], 'no blob on disk');
  });

  it('a wrong token or a malformed header → UNAUTHENTICATED, nothing stored', async () => {
    const data = Buffer.from('wrong token');
    const { info, storeDigest } = symlinkPathInfo('wrong-token');
    const d = dir('wrong-token');
    const bad = [
      'Bearer wrong',
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      'Bearer ',
      TOKEN,
      `Token ${TOKEN}`,
      `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`, // Basic is for the HTTP cache only
      `Bearer ${TOKEN} ${TOKEN}`,
    ];
    for (const value of bad) {
      assert.equal((await w.putBlob(data, auth(value))).name, 'UNAUTHENTICATED', value);
      assert.equal((await w.putDirectories([d], auth(value))).name, 'UNAUTHENTICATED', value);
      assert.equal((await w.putPathInfo(info, auth(value))).name, 'UNAUTHENTICATED', value);
    }
    assert.equal((await w.statBlob(blake3(data))).name, 'NOT_FOUND');
    assert.equal((await w.getDirectory(directoryDigest(d))).name, 'NOT_FOUND');
    assert.equal((await w.getPathInfo(storeDigest)).name, 'NOT_FOUND');
  });

  it('the right token → OK; reads need none', async () => {
    const data = Buffer.from('right token');
    const { info, storeDigest } = symlinkPathInfo('right-token');
    const d = dir('right-token');
    const md = () => auth(`Bearer ${TOKEN}`);
    const blob = await w.putBlob(data, md());
    assert.equal(blob.name, 'OK', blob.details);
    assert.deepEqual(Buffer.from(blob.res!.digest), Buffer.from(blake3(data)));
    assert.equal((await w.putDirectories([d], md(), 'snix')).name, 'OK');
    assert.equal((await w.putPathInfo(info, md())).name, 'OK');
    assert.equal((await w.statBlob(blake3(data))).name, 'OK');
    assert.equal((await w.getDirectory(directoryDigest(d))).name, 'OK');
    assert.equal((await w.getPathInfo(storeDigest)).name, 'OK');
  });

  it('tokens are compared in constant time, over digests (length leaks nothing)', () => {
    assert.ok(sameToken(TOKEN, TOKEN));
    assert.ok(!sameToken(`${TOKEN}x`, TOKEN));
    assert.ok(!sameToken('', TOKEN));
    assert.ok(authorizes(`bearer ${TOKEN}`, TOKEN), 'the scheme is case-insensitive');
    assert.ok(!authorizes(undefined, TOKEN));
  });
});

describe('nix-castore copy against an auth-enabled daemon', () => {
  let storePath: string;
  before(async () => {
    const file = join(tmp, 'castore-auth-test.txt');
    await writeFile(file, 'nix-castore: copied with a bearer token\n');
    storePath = (await runNix('nix-store', ['--add', file])).stdout.toString().trim();
  });

  it('fails without NIX_CASTORE_AUTH_TOKEN_FILE (UNAUTHENTICATED), nothing published', async () => {
    const r = await runCli(['copy', '--store', daemon.addr, storePath], { env: nixEnv([], { NIX_CASTORE_AUTH_TOKEN_FILE: '' }) });
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /UNAUTHENTICATED/);
    assert.equal((await w.getPathInfo(parseAbsolute(storePath).digest)).name, 'NOT_FOUND');
  });

  it('succeeds with NIX_CASTORE_AUTH_TOKEN_FILE; the path is then in the store', async () => {
    const r = await runCli(['copy', '--store', daemon.addr, storePath, '--json'], { env: nixEnv([], { NIX_CASTORE_AUTH_TOKEN_FILE: tokenFile }) });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).uploaded, [storePath]);
    // Reads are open: a client without the token sees it.
    const store = openStore(sameAddr(daemon.addr));
    try {
      assert.ok(await store.pathInfos.get(parseAbsolute(storePath).digest));
    } finally {
      await store.close();
    }
    const nar = await runCli(['nar', '--store', daemon.addr, storePath], { env: nixEnv([], { NIX_CASTORE_AUTH_TOKEN_FILE: '' }) });
    assert.equal(nar.code, 0, nar.stderr);
  });

  it('an unreadable NIX_CASTORE_AUTH_TOKEN_FILE is a usage error (exit 2)', async () => {
    const r = await runCli(['copy', '--store', daemon.addr, storePath], { env: nixEnv([], { NIX_CASTORE_AUTH_TOKEN_FILE: join(tmp, 'missing') }) });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /NIX_CASTORE_AUTH_TOKEN_FILE/);
  });
});

describe('the HTTP binary cache needs the token on every request', () => {
  const get = (path: string, authorization?: string) => fetch(`${cacheUrl}${path}`, { headers: authorization ? { authorization } : {} });

  it('401 without a token or with a wrong one, for every target and method', async () => {
    for (const [path, method] of [['/nix-cache-info', 'GET'], ['/nix-cache-info', 'HEAD'], ['/00bgd045z0d4icpbc2yyz4gx48ak44la.narinfo', 'GET'], ['/nar/x.nar', 'GET'], ['/', 'POST']] as const) {
      for (const authorization of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, `Basic ${Buffer.from('u:wrong').toString('base64')}`]) {
        const res = await fetch(`${cacheUrl}${path}`, { method, headers: authorization ? { authorization } : {} });
        assert.equal(res.status, 401, `${method} ${path} with ${authorization}`);
        assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
        await res.arrayBuffer();
      }
    }
  });

  it('200 with the token (Bearer, or Basic with the token as password as Nix sends from netrc)', async () => {
    const res = await get('/nix-cache-info', `Bearer ${TOKEN}`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /StoreDir: \/nix\/store/);
    const basic = await get('/nix-cache-info', `Basic ${Buffer.from(`nix:${TOKEN}`).toString('base64')}`);
    assert.equal(basic.status, 200);
    await basic.text();
  });
});

describe('--auth-token-file checks', () => {
  for (const [label, content] of [['empty', '\n'], ['two words', 'a b\n']] as const) {
    it(`a token file that is ${label} → exit 2`, async () => {
      const f = join(tmp, `token-${label.replace(' ', '-')}`);
      await writeFile(f, content);
      const r = await runCli(['daemon', '--store', 'memory://', '--listen', `unix:${join(tmp, 'never.sock')}`, '--auth-token-file', f]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--auth-token-file/);
    });
  }
});
