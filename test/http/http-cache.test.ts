// The Nix binary cache server in-process, over a memory store holding known
// PathInfos: exact narinfo text (signed on the fly and not), NAR bodies and
// headers, HEAD, and every way a request can be refused.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openStore, sameAddr, type Store } from '../../src/addr/open.js';
import { putBytes } from '../../src/castore/blob-service.js';
import { blake3 } from '../../src/castore/digest.js';
import type { PathInfo } from '../../src/store/messages.js';
import { CaHash, parseNarHash } from '../../src/nix/hash.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';
import { narBytes } from '../../src/nix/nar.js';
import { parsePublicKey, parseSecretKey, verify } from '../../src/nix/signature.js';
import { parseHttpAddr, startHttpCache, type RunningHttpCache } from '../../src/server/http-cache.js';
import { request } from './http-helpers.js';

const b = (s: string) => Buffer.from(s, 'utf8');

// store.md §7: tvix's test key pair.
const SECRET = parseSecretKey(
  'cache.example.com-1:cCta2MEsRNuYCgWYyeRXLyfoFpKhQJKn8gLMeXWAb7vIpRKKo/3JoxJ24OYa3DxT2JVV38KjK/1ywHWuMe2JEw==',
);
const PUBLIC = parsePublicKey('cache.example.com-1:yKUSiqP9yaMSduDmGtw8U9iVVd/Coyv9csB1rjHtiRM=');

const HELLO = b('Hello World!');
const HELLO_BASE = '925f1jb1ajrypjbyq7rylwryqwizvhp0-hello.txt';
const HELLO_HASH = '925f1jb1ajrypjbyq7rylwryqwizvhp0';
const HELLO_NAR = '0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3';
const LINK_BASE = '00bgd045z0d4icpbc2yyz4gx48ak44la-hello-link';
const LINK_HASH = '00bgd045z0d4icpbc2yyz4gx48ak44la';
const LINK_NAR = '1d532aj15kk6fkxp8ar1aqy52kq644d3kh6hkz4q59jk4hdjp1cs';

const ONES = Buffer.alloc(64, 1);
const ONES_B64 = ONES.toString('base64');

/** hello.txt as `tvix-store import` records it (store.md §6), with three stored signatures. */
const HELLO_INFO: PathInfo = {
  node: { type: 'file', name: b(HELLO_BASE), digest: blake3(HELLO), size: HELLO.length, executable: false },
  references: [],
  narinfo: {
    narSize: 128,
    narSha256: parseNarHash(`sha256:${HELLO_NAR}`),
    signatures: [
      { name: 'cache.example.com-1', data: Buffer.alloc(64) }, // stale: replaced by a fresh one
      { name: 'bad name!', data: ONES }, // not valid in narinfo text: skipped
      { name: 'other-1', data: ONES }, // kept
    ],
    referenceNames: [],
    ca: { type: CaHash.NAR_SHA256, digest: parseNarHash(`sha256:${HELLO_NAR}`) },
  },
};

/** A symlink to hello.txt that refers to itself and hello.txt (stored unsorted), with a deriver. */
const LINK_INFO: PathInfo = {
  node: { type: 'symlink', name: b(LINK_BASE), target: b(`/nix/store/${HELLO_BASE}`) },
  references: [nixbase32.decode(HELLO_HASH), nixbase32.decode(LINK_HASH)],
  narinfo: {
    narSize: 168,
    narSha256: parseNarHash(`sha256:${LINK_NAR}`),
    signatures: [{ name: 'other-1', data: ONES }],
    referenceNames: [HELLO_BASE, LINK_BASE],
    deriver: { name: 'hello-link', digest: nixbase32.decode('5rwxzi7pal3qhpsyfc16gzkh939q1np6') },
  },
};

const HELLO_NARINFO_SIGNED = [
  `StorePath: /nix/store/${HELLO_BASE}`,
  `URL: nar/${HELLO_HASH}-${HELLO_NAR}.nar`,
  'Compression: none',
  `FileHash: sha256:${HELLO_NAR}`,
  'FileSize: 128',
  `NarHash: sha256:${HELLO_NAR}`,
  'NarSize: 128',
  'References: ',
  `Sig: other-1:${ONES_B64}`,
  // store.md §7 vector: the signature of hello.txt's fingerprint by the test key
  'Sig: cache.example.com-1:zazb8ZBxSMPJW8uW+o9rJwknF02nnZdTddlorI/WIr6BIjKVOnx1DziLlgPppwc8xT2QGfRF+V/fWcto5WnACw==',
  `CA: fixed:r:sha256:${HELLO_NAR}`,
  '',
].join('\n');

const LINK_NARINFO_UNSIGNED = [
  `StorePath: /nix/store/${LINK_BASE}`,
  `URL: nar/${LINK_HASH}-${LINK_NAR}.nar`,
  'Compression: none',
  `FileHash: sha256:${LINK_NAR}`,
  'FileSize: 168',
  `NarHash: sha256:${LINK_NAR}`,
  'NarSize: 168',
  `References: ${LINK_BASE} ${HELLO_BASE}`,
  'Deriver: 5rwxzi7pal3qhpsyfc16gzkh939q1np6-hello-link.drv',
  `Sig: other-1:${ONES_B64}`,
  '',
].join('\n');

const LINK_FINGERPRINT = `1;/nix/store/${LINK_BASE};sha256:${LINK_NAR};168;/nix/store/${LINK_BASE},/nix/store/${HELLO_BASE}`;

let store: Store;
let signed: RunningHttpCache;
let unsigned: RunningHttpCache;
const logs: string[] = [];

before(async () => {
  store = openStore(sameAddr('memory://'));
  await putBytes(store.blobs, HELLO);
  await store.pathInfos.put(HELLO_INFO);
  await store.pathInfos.put(LINK_INFO);
  const loopback = parseHttpAddr('127.0.0.1:0');
  signed = await startHttpCache(store, loopback, { signingKey: SECRET, compression: 'none', log: (l) => logs.push(l) });
  unsigned = await startHttpCache(store, loopback, { priority: 41, compression: 'none', log: () => {} });
});

after(async () => {
  await signed.close();
  await unsigned.close();
  await store.close();
});

describe('nix-cache-info', () => {
  it('says StoreDir, WantMassQuery and the priority (default 30, configurable)', async () => {
    const r = await request(signed.url, '/nix-cache-info');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/x-nix-cache-info');
    assert.equal(r.body.toString(), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    const u = await request(unsigned.url, '/nix-cache-info');
    assert.equal(u.body.toString(), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n');
  });
});

describe('narinfo', () => {
  it('is byte-for-byte the expected text, signed on the fly (store.md §6–7 vector)', async () => {
    const r = await request(signed.url, `/${HELLO_HASH}.narinfo`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/x-nix-narinfo');
    assert.equal(r.body.toString(), HELLO_NARINFO_SIGNED);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(HELLO_NARINFO_SIGNED));
  });

  it('sorts references, names the deriver, keeps only the stored signatures without a key', async () => {
    const r = await request(unsigned.url, `/${LINK_HASH}.narinfo`);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), LINK_NARINFO_UNSIGNED);
  });

  it("with a key: the key's signature verifies over the fingerprint", async () => {
    const r = await request(signed.url, `/${LINK_HASH}.narinfo`);
    const text = r.body.toString();
    assert.equal(text, LINK_NARINFO_UNSIGNED + text.slice(LINK_NARINFO_UNSIGNED.length));
    const sigs = text.split('\n').filter((l) => l.startsWith('Sig: cache.example.com-1:'));
    assert.equal(sigs.length, 1);
    const data = Buffer.from(sigs[0].slice('Sig: cache.example.com-1:'.length), 'base64');
    assert.ok(verify(LINK_FINGERPRINT, { name: 'cache.example.com-1', data }, PUBLIC));
  });

  it('HEAD: same status and headers, no body', async () => {
    const r = await request(signed.url, `/${HELLO_HASH}.narinfo`, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(HELLO_NARINFO_SIGNED));
    assert.equal(r.body.length, 0);
    const missing = await request(signed.url, `/${'1'.repeat(32)}.narinfo`, 'HEAD');
    assert.equal(missing.status, 404);
  });

  it('404 for a path the store does not have', async () => {
    const r = await request(signed.url, `/${'1'.repeat(32)}.narinfo`);
    assert.equal(r.status, 404);
    assert.match(r.body.toString(), /not in the store/);
  });
});

describe('nar', () => {
  it('GET streams the NAR with Content-Length = NarSize', async () => {
    const expected = Buffer.from(
      await narBytes({ type: 'regular', executable: false, size: HELLO.length, contents: async function* () { yield HELLO; } }),
    );
    const r = await request(signed.url, `/nar/${HELLO_HASH}-${HELLO_NAR}.nar`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/x-nix-nar');
    assert.equal(r.headers['content-length'], '128');
    assert.deepEqual(r.body, expected);
    const link = await request(signed.url, `/nar/${LINK_HASH}-${LINK_NAR}.nar`);
    assert.equal(link.status, 200);
    assert.equal(link.body.length, 168);
    assert.equal(link.headers['content-length'], '168');
  });

  it('HEAD gives Content-Length without a body', async () => {
    const r = await request(signed.url, `/nar/${HELLO_HASH}-${HELLO_NAR}.nar`, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '128');
    assert.equal(r.body.length, 0);
  });

  it('404 when the NAR hash in the URL is stale, or the path is unknown', async () => {
    const stale = await request(signed.url, `/nar/${HELLO_HASH}-${LINK_NAR}.nar`);
    assert.equal(stale.status, 404);
    assert.equal((await request(signed.url, `/nar/${HELLO_HASH}-${LINK_NAR}.nar`, 'HEAD')).status, 404);
    const unknown = await request(signed.url, `/nar/${'1'.repeat(32)}-${HELLO_NAR}.nar`);
    assert.equal(unknown.status, 404);
  });
});

describe('refused requests', () => {
  it('400 for malformed narinfo and NAR names', async () => {
    for (const target of [
      '/abc.narinfo',
      '/.narinfo',
      `/${HELLO_HASH.toUpperCase()}.narinfo`,
      `/${'e'.repeat(32)}.narinfo`, // e is not a nixbase32 digit
      `/${HELLO_BASE}.narinfo`,
      '/nar/abc.nar',
      `/nar/${HELLO_HASH}.nar`,
      `/nar/${HELLO_HASH}-${HELLO_NAR.slice(1)}.nar`,
      `/nar/${HELLO_HASH}-${HELLO_NAR}x.nar`,
      '/nar/%2e%2e.nar',
      '/nar/..%2f..%2fetc%2fpasswd.nar',
    ]) {
      const r = await request(signed.url, target);
      assert.equal(r.status, 400, target);
    }
  });

  it('404 for everything else, including traversal attempts', async () => {
    for (const target of [
      '/',
      '/../',
      '/../nix-cache-info',
      '/nar/../x',
      `/nar/../${HELLO_HASH}.narinfo`,
      `/x/../${HELLO_HASH}.narinfo`,
      '/%2e%2e/%2e%2e/etc/passwd',
      '/..%2f..%2fetc%2fpasswd',
      '/etc/passwd',
      '//nix-cache-info',
      '/nix-cache-info/',
      '/nix-cache-info/..',
      '/nar/',
      '/nar',
      `/nar/${HELLO_NAR}.nar`, // Nix's own naming (file hash only): what `nix copy --to` asks for before uploading
      `/nar/${HELLO_HASH}-${HELLO_NAR}.nar.bz2`,
      `/nar/${HELLO_HASH}-${HELLO_NAR}.nar.br`,
      `/nar/x/${HELLO_HASH}-${HELLO_NAR}.nar`,
      `/${HELLO_HASH}.ls`,
      `/log/${HELLO_BASE}`,
      'http://example.org/nix-cache-info',
      '*',
    ]) {
      const r = await request(signed.url, target);
      assert.equal(r.status, 404, target);
      assert.doesNotMatch(r.body.toString(), /root:/, target);
    }
  });

  it('405 for methods other than GET and HEAD', async () => {
    for (const [method, target] of [
      ['POST', '/nix-cache-info'],
      ['PUT', `/${HELLO_HASH}.narinfo`],
      ['DELETE', `/nar/${HELLO_HASH}-${HELLO_NAR}.nar`],
      ['OPTIONS', '/'],
      ['PATCH', '/nowhere'],
    ]) {
      const r = await request(signed.url, target, method);
      assert.equal(r.status, 405, `${method} ${target}`);
      assert.equal(r.headers.allow, 'GET, HEAD');
    }
  });
});

describe('failures of the store', () => {
  // The same PathInfos over a castore whose blobs have gone missing, or
  // whose record claims another size.
  it('500 before any byte when the content is missing or longer than the NarSize stated', async () => {
    const broken: Store = { ...store, blobs: { ...store.blobs, read: async () => undefined, stat: store.blobs.stat.bind(store.blobs), put: store.blobs.put.bind(store.blobs), close: async () => {} } };
    const lines: string[] = [];
    const cache = await startHttpCache(broken, parseHttpAddr('127.0.0.1:0'), { log: (l) => lines.push(l) });
    try {
      const r = await request(cache.url, `/nar/${HELLO_HASH}-${HELLO_NAR}.nar`);
      assert.equal(r.status, 500);
      assert.match(r.body.toString(), /not found/);
    } finally {
      await cache.close();
    }

    const lying: Store = {
      ...store,
      pathInfos: {
        ...store.pathInfos,
        get: async (digest: Uint8Array) => {
          const info = await store.pathInfos.get(digest);
          return info && { ...info, narinfo: { ...info.narinfo!, narSize: 100 } };
        },
        close: async () => {},
      },
    };
    const cache2 = await startHttpCache(lying, parseHttpAddr('127.0.0.1:0'), { log: (l) => lines.push(l) });
    try {
      // The renderer stops at the stated NarSize: here within its first piece, so before any byte.
      const r = await request(cache2.url, `/nar/${HELLO_HASH}-${HELLO_NAR}.nar`);
      assert.equal(r.status, 500);
      assert.match(r.body.toString(), /longer than the 100 bytes its PathInfo states/);
    } finally {
      await cache2.close();
    }
  });
});

describe('access log', () => {
  it('one line per request: method, target, status, bytes, milliseconds', async () => {
    logs.length = 0;
    await request(signed.url, `/nar/${HELLO_HASH}-${HELLO_NAR}.nar`);
    await request(signed.url, '/nar/../x', 'HEAD');
    await request(signed.url, '/a\tb', 'POST').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 50));
    assert.match(logs[0], new RegExp(`^nix-castore http: GET /nar/${HELLO_HASH}-${HELLO_NAR}\\.nar 200 128 \\d+\\.\\dms$`));
    assert.match(logs[1], /^nix-castore http: HEAD \/nar\/\.\.\/x 404 0 \d+\.\dms$/);
  });
});

describe('parseHttpAddr', () => {
  it('host:port, [v6]:port, and a bare port on loopback', () => {
    assert.deepEqual(parseHttpAddr('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseHttpAddr('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseHttpAddr('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseHttpAddr('8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseHttpAddr(':8080'), { host: '127.0.0.1', port: 8080 });
    for (const bad of ['', 'localhost', 'http://x:1', '1.2.3.4:99999', 'unix:/x', '[::1]']) {
      assert.throws(() => parseHttpAddr(bad), /HTTP address/, bad);
    }
  });
});
