import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ChunkPool, NarError, NarTokens, narBytes, narHashAndSize, narInto, narString, writeNar } from '../../src/nix/nar.js';
import type { NarNode } from '../../src/nix/nar.js';
import * as nixbase32 from '../../src/nix/nixbase32.js';

const enc = new TextEncoder();
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

function file(contents: string | Uint8Array, executable = false, size?: number): NarNode {
  const b = typeof contents === 'string' ? enc.encode(contents) : contents;
  return { type: 'regular', executable, size: size ?? b.length, contents: () => chunks(b) };
}

function symlink(target: string): NarNode {
  return { type: 'symlink', target: enc.encode(target) };
}

function dir(entries: [string | Uint8Array, NarNode][]): NarNode {
  return {
    type: 'directory',
    entries: async function* () {
      for (const [name, node] of entries) yield { name: typeof name === 'string' ? enc.encode(name) : name, node };
    },
  };
}

const COMPLICATED = dir([
  ['.keep', file('')],
  ['aa', symlink('/nix/store/somewhereelse')],
  ['keep', dir([['.keep', file('')]])],
]);

// store.md §5.4
const VECTORS: [string, () => NarNode, number, string, string][] = [
  ['regular file "Hello World!"', () => file('Hello World!'), 128,
    '03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040', '0h40zg6hakjv951nyhdad7mv9za56m3za5gnpiw5s1hbwcxzdrq3'],
  ['symlink -> /nix/store/somewhereelse', () => symlink('/nix/store/somewhereelse'), 136,
    '097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1', '1wcwacrb5q36hpsx1shk0dkm26hwbmqmgi0nm973h9jqkdz3jz89'],
  ['COMPLICATED directory', () => COMPLICATED, 840,
    'ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a', '06li2smqgskxxr291x1cgzf61rzm7c8f93bisnglq0nzm1wj5mgb'],
  ['empty directory', () => dir([]), 96,
    'a50a5ab6d992f5598edd92105059fae9acfc192981e08bd88534c2167e92526a', '0sjjj9z1dhilhpc8pq4154czrb79z9cm044jvn75kxcjv6v5l2m5'],
  ['empty regular file', () => file(''), 112,
    '77ac62e2629d8e45f624589c0c8bf99e24b3a722349bf1e79bc186008534e246', '0ip26j2h11n1kgkz36rl4akv694yz65hr72q4kv4b3lxcbi65b3p'],
  ['executable file "Hello World!"', () => file('Hello World!', true), 160,
    '3b63b97bae149b3e6650437b9077c3d75b130192145792ec94ea3af96a8c567a', '0yjniimgjfpajkn94mqlj80i6nypqdvr0ys3a1k3x6qlmrxvjqrv'],
];

for (const [label, node, size, sha, nix32] of VECTORS) {
  test(`NAR vector: ${label}`, async () => {
    const bytes = await narBytes(node());
    assert.equal(bytes.length, size);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), sha);
    const r = await narHashAndSize(node());
    assert.equal(r.size, size);
    assert.equal(toHex(r.sha256), sha);
    assert.equal(nixbase32.encode(r.sha256), nix32);
  });
}

test('NAR-start token byte layout', async () => {
  const expected =
    '0d00000000000000' + '6e69782d617263686976652d31000000' + '0100000000000000' + '2800000000000000' +
    '0400000000000000' + '7479706500000000';
  assert.equal(toHex(NarTokens.NAR_START), expected);
  const bytes = await narBytes(file('Hello World!'));
  assert.equal(toHex(bytes.subarray(0, 56)), expected);
});

test('token sizes of store.md §5.2', () => {
  assert.equal(NarTokens.NAR_START.length, 56);
  assert.equal(NarTokens.SYMLINK.length, 32);
  assert.equal(NarTokens.REGULAR.length, 32);
  assert.equal(NarTokens.EXECUTABLE.length, 64);
  assert.equal(NarTokens.DIRECTORY.length, 24);
  assert.equal(NarTokens.ENTRY_START.length, 48);
  assert.equal(NarTokens.NODE_START.length, 48);
  assert.equal(NarTokens.CLOSE.length, 16);
});

test('regular file layout is byte-exact', async () => {
  const bytes = await narBytes(file('Hello World!'));
  const expected = Buffer.concat([
    NarTokens.NAR_START, NarTokens.REGULAR, narString('Hello World!'), NarTokens.CLOSE,
  ]);
  assert.equal(toHex(bytes), expected.toString('hex'));
});

test('narString', () => {
  assert.equal(toHex(narString(new Uint8Array(0))), '0000000000000000');
  assert.equal(toHex(narString('(')), '0100000000000000' + '2800000000000000');
  assert.equal(toHex(narString('12345678')), '0800000000000000' + toHex(enc.encode('12345678')));
  assert.equal(narString('123456789').length, 8 + 16);
});

test('file contents split across many chunks of odd sizes', async () => {
  const data = new Uint8Array(100_003).map((_, i) => (i * 7) & 0xff);
  const parts: Uint8Array[] = [];
  for (let off = 0, n = 1; off < data.length; off += n, n = (n * 3 + 1) % 40_000 || 1) {
    parts.push(data.subarray(off, Math.min(off + n, data.length)));
  }
  const a = await narBytes({ type: 'regular', executable: false, size: data.length, contents: () => chunks(...parts) });
  const b = await narBytes(file(data));
  assert.deepEqual(a, b);
  assert.equal(a.length, 56 + 32 + 8 + 100_008 + 16);
});

test('large file chunks are passed through without copying', async () => {
  const big = new Uint8Array(1 << 20).fill(7);
  const out: Uint8Array[] = [];
  for await (const c of writeNar({ type: 'regular', executable: false, size: big.length * 3, contents: () => chunks(big, big, big) })) {
    out.push(c);
  }
  assert.equal(out.filter((c) => c === big).length, 3);
  assert.equal(out.reduce((s, c) => s + c.length, 0), 56 + 32 + 8 + 3 * big.length + 16);
});

test('narInto: the same bytes as writeNar, through one reused buffer and the large chunks themselves', async () => {
  const big = new Uint8Array(1 << 20).fill(9);
  const entries: [string, NarNode][] = [];
  for (let i = 0; i < 3000; i++) entries.push([`f${String(i).padStart(5, '0')}`, file(`contents ${i}`, i % 3 === 0)]);
  entries.push(['large', { type: 'regular', executable: false, size: 2 * big.length, contents: () => chunks(big, big) }]);
  entries.push(['link', symlink('large')]);
  const tree = dir(entries);
  const got: Buffer[] = [];
  const arrays = new Set<ArrayBufferLike>();
  await narInto(tree, (bytes) => {
    arrays.add(bytes.buffer);
    got.push(Buffer.from(bytes)); // a copy: the sink may keep nothing
  });
  assert.deepEqual(Buffer.concat(got), Buffer.from(await narBytes(tree)));
  // The coalescing buffer (reused for ~200 KiB of tokens) and the large file's own array.
  assert.equal(arrays.size, 2);
  assert.ok(arrays.has(big.buffer));
});

test('small tokens are coalesced into few output chunks', async () => {
  const entries: [string, NarNode][] = [];
  for (let i = 0; i < 2000; i++) entries.push([`f${String(i).padStart(5, '0')}`, file('x')]);
  const out: Uint8Array[] = [];
  for await (const c of writeNar(dir(entries))) out.push(c);
  const total = out.reduce((s, c) => s + c.length, 0);
  assert.ok(total > 2000 * 100);
  assert.ok(out.length <= Math.ceil(total / 65536) + 1, `${out.length} chunks for ${total} bytes`);
  // the yielded chunks are independent (no buffer reused under the consumer)
  const again = await narBytes(dir(entries));
  assert.deepEqual(Buffer.concat(out), Buffer.from(again));
});

test('deeply nested directories', async () => {
  let node: NarNode = file('leaf');
  for (let i = 0; i < 500; i++) node = dir([['d', node]]);
  const bytes = await narBytes(node);
  // each level: DIRECTORY + ENTRY_START + name + NODE_START + CLOSE(dir) + CLOSE(entry)
  const leaf = 32 + 8 + 8 + 16;
  assert.equal(bytes.length, 56 + leaf + 500 * (24 + 48 + 16 + 48 + 16 + 16));
});

async function rejects(node: NarNode, re: RegExp): Promise<void> {
  await assert.rejects(narBytes(node), (e: unknown) => {
    assert.ok(e instanceof NarError, `expected NarError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test('error: file contents shorter than size', async () => {
  await rejects(file('Hello', false, 12), /expected 12 bytes, got 5/);
  await rejects(file('', false, 1), /expected 1 bytes, got 0/);
});

test('error: file contents longer than size', async () => {
  await rejects(file('Hello World!', false, 5), /expected 5 bytes, got 12/);
  await rejects(file('x', false, 0), /expected 0 bytes, got 1/);
  await rejects(file(new Uint8Array(70_000), false, 69_999), /expected 69999 bytes, got 70000/);
});

test('error: invalid size', async () => {
  await rejects(file('', false, -1), /invalid file size -1/);
  await rejects(file('', false, 1.5), /invalid file size 1.5/);
});

test('error: too-long contents never reach the consumer', async () => {
  const big = new Uint8Array(100_000);
  const seen: Uint8Array[] = [];
  await assert.rejects(async () => {
    for await (const c of writeNar({ type: 'regular', executable: false, size: 10, contents: () => chunks(big) })) seen.push(c);
  }, NarError);
  assert.ok(!seen.includes(big));
});

test('error: entries not sorted', async () => {
  await rejects(dir([['b', file('')], ['a', file('')]]), /not sorted: "a" comes after "b"/);
  await rejects(dir([['aa', file('')], ['a', file('')]]), /not sorted/);
  // bytewise, not locale: "B" (0x42) < "a" (0x61)
  await narBytes(dir([['B', file('')], ['a', file('')]]));
  await rejects(dir([['a', file('')], ['B', file('')]]), /not sorted/);
  // nested directory
  await rejects(dir([['x', dir([['z', file('')], ['y', file('')]])]]), /not sorted: "y" comes after "z"/);
});

test('error: duplicate entries', async () => {
  await rejects(dir([['a', file('')], ['a', symlink('t')]]), /duplicate NAR entry name "a"/);
});

test('error: invalid entry names', async () => {
  await rejects(dir([['', file('')]]), /entry name: empty/);
  await rejects(dir([['.', file('')]]), /"\.": "\." and "\.\." are not allowed/);
  await rejects(dir([['..', file('')]]), /"\.\.": "\." and "\.\." are not allowed/);
  await rejects(dir([['foo/bar', file('')]]), /contains "\/"/);
  await rejects(dir([['a\0b', file('')]]), /contains NUL/);
  await rejects(dir([['X'.repeat(256), file('')]]), /256 bytes, at most 255/);
  // accepted: 255 bytes, names starting with dots that are not "." or ".."
  await narBytes(dir([['X'.repeat(255), file('')]]));
  await narBytes(dir([['...', file('')], ['..b', file('')], ['.a', file('')]]));
  // names are raw bytes (need not be UTF-8)
  await narBytes(dir([[new Uint8Array([0xff, 0xfe]), file('')]]));
});

test('error: invalid symlink targets', async () => {
  await rejects(symlink(''), /symlink target: empty/);
  await rejects(symlink('a\0b'), /contains NUL/);
  await rejects(symlink('x'.repeat(4096)), /4096 bytes, at most 4095/);
  await narBytes(symlink('x'.repeat(4095)));
});

test('early return closes open directory iterators', async () => {
  let closed = 0;
  const node: NarNode = {
    type: 'directory',
    entries: async function* () {
      try {
        yield { name: enc.encode('a'), node: file(new Uint8Array(200_000)) };
        yield { name: enc.encode('b'), node: file('') };
      } finally {
        closed++;
      }
    },
  };
  for await (const _ of writeNar(node)) break;
  assert.equal(closed, 1);
});

test('contents and entries given as arrays: the same bytes as given one by one, the same size checks', async () => {
  const big = new Uint8Array(40_000).fill(7);
  const parts = [enc.encode('abc'), big, enc.encode('de')];
  const size = 5 + big.length;
  const asArrays: NarNode = {
    type: 'directory',
    entries: async () => [
      { name: enc.encode('a'), node: { type: 'regular', executable: true, size, contents: () => parts } },
      { name: enc.encode('b'), node: { type: 'directory', entries: async () => [] } },
      { name: enc.encode('c'), node: { type: 'regular', executable: false, size: 0, contents: () => [] } },
    ],
  };
  const oneByOne: NarNode = {
    type: 'directory',
    entries: async function* () {
      yield { name: enc.encode('a'), node: { type: 'regular', executable: true, size, contents: () => chunks(...parts) } };
      yield { name: enc.encode('b'), node: { type: 'directory', entries: async function* () {} } };
      yield { name: enc.encode('c'), node: { type: 'regular', executable: false, size: 0, contents: () => chunks() } };
    },
  };
  assert.equal(toHex(await narBytes(asArrays)), toHex(await narBytes(oneByOne)));
  const wrong = (n: number): NarNode => ({ type: 'regular', executable: false, size: n, contents: () => parts });
  await assert.rejects(narBytes(wrong(size - 1)), /file contents too long/);
  await assert.rejects(narBytes(wrong(size + 1)), /file contents too short/);
  const unsorted: NarNode = { type: 'directory', entries: async () => [{ name: enc.encode('b'), node: symlink('x') }, { name: enc.encode('a'), node: symlink('x') }] };
  await assert.rejects(narBytes(unsorted), /not sorted/);
});

test('writeNar with a ChunkPool: chunks given back are reused, and only the pool\'s own buffers', async () => {
  // Two files passed through as views of one 64 KiB array (as a GET's socket chunk holds several
  // blobs): giving back the first must not let the pool write over the second.
  const shared = new Uint8Array(64 << 10).map((_, i) => i % 251);
  const entries: [string, NarNode][] = [];
  for (let i = 0; i < 3000; i++) entries.push([`f${String(i).padStart(5, '0')}`, file(`contents ${i}`)]);
  entries.push(['s1', { type: 'regular', executable: false, size: 20_000, contents: () => chunks(shared.subarray(0, 20_000)) }]);
  entries.push(['s2', { type: 'regular', executable: false, size: 20_000, contents: () => chunks(shared.subarray(20_000, 40_000)) }]);
  for (let i = 0; i < 3000; i++) entries.push([`t${String(i).padStart(5, '0')}`, file(`more ${i}`)]);
  const tree = dir(entries);
  const pool = new ChunkPool();
  const got: Buffer[] = [];
  const arrays = new Set<ArrayBufferLike>();
  for await (const c of writeNar(tree, pool)) {
    got.push(Buffer.from(c)); // a copy, then the chunk goes back at once
    arrays.add(c.buffer);
    pool.give(c);
  }
  assert.deepEqual(Buffer.concat(got), Buffer.from(await narBytes(tree)));
  assert.ok(arrays.has(shared.buffer), 'the shared array was passed through');
  assert.ok(arrays.size <= got.length / 2, `${arrays.size} arrays for ${got.length} chunks: the pool's buffers were reused`);
  assert.equal(shared[30_000], 30_000 % 251, 'the passed-through array was never written to');
});
