// NARs served compressed on the fly: a NAR ingested from `nix-store --dump`
// (nar-ingest.ts) is served as .nar, .nar.zst and .nar.xz, each giving the
// dump back through Debian's tools; the narinfo names the configured form;
// a client that goes away stops the rendering and compression.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import * as http from 'node:http';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { ingestNar } from '../../src/castore/nar-ingest.js';
import { pathInfoOf } from '../../src/cache/publish.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { parseHttpAddr, startHttpCache, type RunningHttpCache } from '../../src/server/http-cache.js';
import { requireNix } from '../helpers/nix.js';
import { request } from './http-helpers.js';

const STORE_PATH = '/nix/store/0c6kzph7l0dcbfmjap64f0czdafn3b7x-served';
const HASH = STORE_PATH.slice(11, 43);

let tmp: string;
let store: Store;
let dump: Buffer;
let narHash: string;
let cache: RunningHttpCache;
const logs: string[] = [];

before(async () => {
  await requireNix();
  tmp = await mkdtemp(join(tmpdir(), 'compressed-serving-'));
  const dir = join(tmp, 'served');
  await mkdir(join(dir, 'sub'), { recursive: true });
  await writeFile(join(dir, 'random.bin'), createCipheriv('aes-256-ctr', Buffer.alloc(32, 2), Buffer.alloc(16)).update(Buffer.alloc(24 << 20)));
  for (let i = 0; i < 50; i++) await writeFile(join(dir, 'sub', `f${i}`), `small file ${i}\n`.repeat(i));
  dump = execFileSync('nix-store', ['--dump', dir], { maxBuffer: 1 << 28 });
  store = openStore(sameAddr('memory://'));
  const got = await ingestNar((async function* () { for (let o = 0; o < dump.length; o += 100_000) yield dump.subarray(o, o + 100_000); })(), store);
  assert.equal(got.narSize, dump.length);
  narHash = nixbase32.encode(got.narSha256);
  const ni = { storePath: parseAbsolute(STORE_PATH), url: '', compression: 'none', narHash: got.narSha256, narSize: got.narSize, references: [], signatures: [] };
  await store.pathInfos.put(pathInfoOf(ni, got));
  cache = await startHttpCache(store, parseHttpAddr('127.0.0.1:0'), { log: (l) => logs.push(l) });
});

after(async () => {
  await cache?.close();
  await store?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('compressed NARs', () => {
  it('the narinfo points at .nar.zst by default, without FileHash/FileSize', async () => {
    const r = await request(cache.url, `/${HASH}.narinfo`);
    assert.equal(r.status, 200);
    const text = r.body.toString();
    assert.match(text, new RegExp(`^URL: nar/${HASH}-${narHash}\\.nar\\.zst$`, 'm'));
    assert.match(text, /^Compression: zstd$/m);
    assert.doesNotMatch(text, /FileHash|FileSize/);
  });

  for (const [ext, tool] of [['.nar.zst', 'zstd'], ['.nar.xz', 'xz']] as const) {
    it(`${ext}: ${tool} -d gives nix-store --dump's bytes; chunked, no Content-Length`, async () => {
      const r = await request(cache.url, `/nar/${HASH}-${narHash}${ext}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], undefined);
      assert.ok(r.body.length < dump.length);
      assert.ok(execFileSync(tool, ['-d', '-c'], { input: r.body, maxBuffer: 1 << 28 }).equals(dump));
    });
  }

  it('.nar: the dump itself, with Content-Length', async () => {
    const r = await request(cache.url, `/nar/${HASH}-${narHash}.nar`);
    assert.equal(r.headers['content-length'], String(dump.length));
    assert.ok(r.body.equals(dump));
  });

  it('--compression xz / none: the narinfo says so', async () => {
    for (const [compression, ext] of [['xz', '.nar.xz'], ['none', '.nar']] as const) {
      const c = await startHttpCache(store, parseHttpAddr('127.0.0.1:0'), { compression, log: () => {} });
      try {
        const text = (await request(c.url, `/${HASH}.narinfo`)).body.toString();
        assert.match(text, new RegExp(`^URL: nar/${HASH}-${narHash}${ext.replace(/\./g, '\\.')}\\nCompression: ${compression}$`, 'm'));
      } finally {
        await c.close();
      }
    }
  });

  it('a client that goes away stops the work', async () => {
    logs.length = 0;
    const { port } = new URL(cache.url);
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: Number(port), path: `/nar/${HASH}-${narHash}.nar.xz`, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      setImmediate(() => req.once('error', reject));
    });
    for (let i = 0; i < 800 && !logs.some((l) => /\.nar\.xz 200/.test(l)); i++) await new Promise((r) => setTimeout(r, 25));
    const line = logs.find((l) => /\.nar\.xz 200/.test(l));
    assert.ok(line, logs.join('\n'));
    assert.match(line, /client went away/);
    const sent = Number(/ 200 (\d+) /.exec(line)![1]);
    assert.ok(sent < dump.length / 2, line);
  });
});
