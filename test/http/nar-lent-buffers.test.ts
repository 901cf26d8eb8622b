// A NAR served over HTTP from the on-disk store reads its large files into
// the store's lent buffers, each given back once the socket has its bytes
// (zstd: once copied into a frame): a few MiB cycle through a NAR of any size, instead
// of a fresh 1 MiB per chunk (a page fault per 4 KiB, and as external
// memory ~25 full garbage collections per GiB served). A client that reads
// slowly still gets the exact NAR: no buffer is read into again while the
// response still holds it. In-process cache, real on-disk store, real
// sockets.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { fileAddr } from '../../src/addr/parse.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { directoryDigest, directorySize } from '../../src/castore/directory.js';
import type { Directory } from '../../src/castore/messages.js';
import { putClosure } from '../../src/castore/directory-service.js';
import { narBytes, type NarEntry } from '../../src/nix/nar.js';
import { decompress } from '../../src/nix/compression.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { readBuffersAllocated } from '../../src/castore/disk/read-ahead.js';
import { parseHttpAddr, startHttpCache, type RunningHttpCache } from '../../src/server/http-cache.js';
import { ByteBudget } from '../../src/util/byte-budget.js';
import { request } from './http-helpers.js';

const MiB = 1 << 20;
const HASH = '0123456789abcdfghijklmnpqrsvwxyz';
const BASE = `${HASH}-lent`;

/** Bytes that differ at every offset and between files (a buffer read into again too early shows). */
function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let o = 0; o + 4 <= size; o += 4) b.writeUInt32LE(((o + seed * 7919) * 2654435761) >>> 0, o);
  return b;
}

/** The body of a response, pausing now and then (the response backs up in the server). */
async function* slowly(res: http.IncomingMessage): AsyncGenerator<Uint8Array> {
  let sincePause = 0;
  for await (const d of res) {
    yield d as Buffer;
    sincePause += (d as Buffer).length;
    if (sincePause >= 2 * MiB) {
      sincePause = 0;
      await new Promise((r) => setTimeout(r, 15));
    }
  }
}

/** GETs `url` slowly and hashes the body, decompressed if it is zstd. */
async function slowGet(url: string): Promise<{ status: number; sha256: string; length: number }> {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(url, { agent: false }, resolve).on('error', reject));
  const h = createHash('sha256');
  let length = 0;
  for await (const d of url.endsWith('.zst') ? decompress(slowly(res), 'zstd') : slowly(res)) {
    h.update(d);
    length += d.length;
  }
  return { status: res.statusCode ?? 0, sha256: h.digest('hex'), length };
}

describe('HTTP NAR serving from the on-disk store, lent buffers', () => {
  let tmp: string;
  let store: Store;
  let cache: RunningHttpCache;
  let narUrl: string;
  let expected: { sha256: string; length: number };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'nar-lent-'));
    store = openStore(sameAddr(fileAddr(join(tmp, 'store'))));
    // Large files of whole MiBs and with short tails (a tail under 16 KiB is copied by the writer, its buffer given back at once), and small ones.
    const files: [string, Buffer][] = [
      ['a-large', patterned(20 * MiB + 777, 1)],
      ['b-small', patterned(3000, 2)],
      ['c-large', patterned(9 * MiB, 3)],
      ['d-tail', patterned(5 * MiB + 5000, 4)],
      ['e-small', patterned(100, 5)],
    ];
    const dir: Directory = { directories: [], files: [], symlinks: [] };
    for (const [name, data] of files) dir.files.push({ name: Buffer.from(name), digest: await putBytes(store.blobs, data), size: data.length, executable: false });
    await putClosure(store.directories, [dir]);
    const entries: NarEntry[] = files.map(([name, data]) => ({ name: Buffer.from(name), node: { type: 'regular', executable: false, size: data.length, contents: () => [data] } }));
    const nar = Buffer.from(await narBytes({ type: 'directory', entries: async () => entries }));
    const narSha256 = createHash('sha256').update(nar).digest();
    expected = { sha256: narSha256.toString('hex'), length: nar.length };
    await store.pathInfos.put({
      node: { type: 'directory', name: Buffer.from(BASE), digest: directoryDigest(dir), size: directorySize(dir) },
      references: [],
      narinfo: { narSize: nar.length, narSha256, signatures: [], referenceNames: [] },
    });
    cache = await startHttpCache(store, parseHttpAddr('127.0.0.1:0'), { compression: 'none', log: () => {} });
    narUrl = `${cache.url}/nar/${HASH}-${nixbase32.encode(narSha256)}.nar`;
  });

  after(async () => {
    await cache.close();
    await store.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it('serves the exact NAR to slow readers, one and three at once, through a handful of read buffers', async () => {
    const before = readBuffersAllocated();
    const one = await slowGet(narUrl);
    assert.deepEqual(one, { status: 200, ...expected });
    const three = await Promise.all([slowGet(narUrl), slowGet(narUrl), slowGet(narUrl)]);
    for (const r of three) assert.deepEqual(r, { status: 200, ...expected });
    // 4 NARs of 36 chunks of large files: a fresh buffer per chunk would be 144.
    const allocated = readBuffersAllocated() - before;
    assert.ok(allocated <= 32, `${allocated} read buffers allocated for 4 NARs of 36 large-file chunks each`);
  });

  it("counts each compressor's memory in the daemon's budget: .nar.xz's encoder, .nar.zst's frames", async () => {
    // 12 MiB: a .nar (~2.3 MiB) and a .nar.zst (~9.3 MiB) fit, a .nar.xz (level 2: 17 MiB more) does not.
    const budgeted = await startHttpCache(store, parseHttpAddr('127.0.0.1:0'), { compression: 'none', log: () => {}, budget: new ByteBudget(12 * MiB) });
    try {
      const url = narUrl.replace(cache.url, budgeted.url);
      assert.deepEqual(await slowGet(url), { status: 200, ...expected });
      assert.deepEqual(await slowGet(`${url}.zst`), { status: 200, ...expected });
      const xz = await request(budgeted.url, new URL(`${url}.xz`).pathname);
      assert.equal(xz.status, 503, xz.body.toString());
      assert.equal(xz.headers['retry-after'], '5');
      // A .nar.zst whose client does not read holds its share; a second one at the same time would pass the budget.
      const first = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${url}.zst`, { agent: false }, resolve).on('error', reject));
      try {
        assert.equal(first.statusCode, 200);
        first.pause();
        const second = await request(budgeted.url, new URL(`${url}.zst`).pathname);
        assert.equal(second.status, 503, second.body.toString());
      } finally {
        first.destroy();
      }
    } finally {
      await budgeted.close();
    }
  });

  it('serves the same NAR as zstd, each chunk reused once copied into a frame', async () => {
    const before = readBuffersAllocated();
    const zstd = await Promise.all([slowGet(`${narUrl}.zst`), slowGet(`${narUrl}.zst`)]);
    for (const r of zstd) assert.deepEqual(r, { status: 200, ...expected });
    const allocated = readBuffersAllocated() - before;
    assert.ok(allocated <= 24, `${allocated} read buffers allocated for 2 zstd NARs of 36 large-file chunks each`);
  });
});
