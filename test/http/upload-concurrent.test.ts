// Uploads racing each other in one daemon: the same NAR sent twice at once
// (two `nix copy` runs) is received twice and published once; two paths
// with byte-identical NARs share the uploaded file (Nix sees it present
// and does not send it again), and both are published.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { DiskStaging } from '../../src/cache/staging.js';
import { narBytes } from '../../src/nix/nar.js';
import { renderNarInfo } from '../../src/nix/narinfo.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { parseHttpAddr, startHttpCache, type RunningHttpCache } from '../../src/server/http-cache.js';
import { request } from './http-helpers.js';

let tmp: string;
let store: Store;
let cache: RunningHttpCache;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'upload-concurrent-'));
  store = openStore(sameAddr('memory://'));
  cache = await startHttpCache(store, parseHttpAddr('127.0.0.1:0'), { uploads: { staging: new DiskStaging(join(tmp, 'staged')) }, log: () => {} });
});

after(async () => {
  await cache?.close();
  await store?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function narOf(text: string): Promise<{ nar: Buffer; sha: Buffer }> {
  const data = Buffer.from(text);
  const nar = Buffer.from(await narBytes({ type: 'regular', executable: false, size: data.length, contents: async function* () { yield data; } }));
  return { nar, sha: createHash('sha256').update(nar).digest() };
}

function narinfo(path: string, sha: Buffer, size: number): Buffer {
  return Buffer.from(
    renderNarInfo({ storePath: parseAbsolute(path), url: `nar/${nixbase32.encode(sha)}.nar`, compression: 'none', narHash: sha, narSize: size, references: [], signatures: [] }),
  );
}

const put = (target: string, body: Buffer) => request(cache.url, target, 'PUT', { 'content-length': String(body.length) }, body);

describe('racing uploads', () => {
  it('the same NAR twice at once: both received, the path published once', async () => {
    const { nar, sha } = await narOf('same bytes, sent twice at once\n');
    const url = `/nar/${nixbase32.encode(sha)}.nar`;
    const results = await Promise.all([put(url, nar), put(url, nar), put(url, nar)]);
    for (const r of results) assert.equal(r.status, 200, r.body.toString());
    const path = '/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-twice';
    const r = await put(`/${path.slice(11, 43)}.narinfo`, narinfo(path, sha, nar.length));
    assert.equal(r.status, 200, r.body.toString());
    assert.equal((await request(cache.url, `/${path.slice(11, 43)}.narinfo`)).status, 200);
  });

  it('two paths with the same NAR: the second narinfo uses the file the first one sent', async () => {
    const { nar, sha } = await narOf('one NAR for two paths\n');
    const url = `/nar/${nixbase32.encode(sha)}.nar`;
    assert.equal((await put(url, nar)).status, 200);
    const a = '/nix/store/1c6kzph7l0dcbfmjap64f0czdafn3b7x-a';
    const b = '/nix/store/2c6kzph7l0dcbfmjap64f0czdafn3b7x-b';
    assert.equal((await put(`/${a.slice(11, 43)}.narinfo`, narinfo(a, sha, nar.length))).status, 200);
    // What Nix does next: HEAD the file, find it, send only the narinfo.
    assert.equal((await request(cache.url, url, 'HEAD')).status, 200);
    const r = await put(`/${b.slice(11, 43)}.narinfo`, narinfo(b, sha, nar.length));
    assert.equal(r.status, 200, r.body.toString());
    const served = await request(cache.url, `/${b.slice(11, 43)}.narinfo`);
    assert.equal(served.status, 200);
    const narUrl = /^URL: (.*)$/m.exec(served.body.toString())![1].replace(/\.zst$/, '');
    assert.ok((await request(cache.url, `/${narUrl}`)).body.equals(nar));
  });
});
