import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClosureError, checkClosed, topoOrder } from '../../src/closure/closure.js';
import type { Closure, ClosureEntry } from '../../src/closure/closure.js';
import { absolute, sortStorePaths } from '../../src/nix/store-path.js';
import type { StorePath } from '../../src/nix/store-path.js';

/** A store path with a digest of twenty bytes `n`. */
function sp(n: number, name: string): StorePath {
  return { digest: new Uint8Array(20).fill(n), name };
}

function closure(spec: [StorePath, StorePath[]][]): Closure {
  const entries: ClosureEntry[] = spec.map(([path, refs]) => ({ path, references: sortStorePaths(refs), signatures: [] }));
  return { entries, source: 'test' };
}

const names = (es: ClosureEntry[]) => es.map((e) => e.path.name);

const A = sp(1, 'a');
const B = sp(2, 'b');
const C = sp(3, 'c');
const D = sp(4, 'd');
const E = sp(5, 'e');

test('checkClosed accepts a closed set with self-references', () => {
  checkClosed(closure([[A, [A, B]], [B, []]]));
  checkClosed(closure([]));
});

test('checkClosed names the entry and the missing reference', () => {
  assert.throws(
    () => checkClosed(closure([[A, [A]], [B, [C, A]]])),
    (e: unknown) => {
      assert.ok(e instanceof ClosureError);
      assert.equal(e.name, 'ClosureError');
      assert.ok(e.message.startsWith(`test: entry 1 (${absolute(B)}): references: ${absolute(C)} is not in the closure`), e.message);
      return true;
    },
  );
});

test('checkClosed rejects duplicate paths, naming both entries', () => {
  assert.throws(
    () => checkClosed(closure([[A, []], [B, []], [A, []]])),
    (e: unknown) => e instanceof ClosureError && e.message.includes(`entry 2 (${absolute(A)}): duplicate entry`) && /entry 0/.test(e.message),
  );
});

test('topoOrder: a chain given referrers first comes out references first', () => {
  // a -> b -> c -> d
  const c = closure([[A, [B]], [B, [C]], [C, [D]], [D, []]]);
  assert.deepEqual(names(topoOrder(c)), ['d', 'c', 'b', 'a']);
  // already ordered: unchanged
  const c2 = closure([[D, []], [C, [D]], [B, [C]], [A, [B]]]);
  assert.deepEqual(names(topoOrder(c2)), ['d', 'c', 'b', 'a']);
});

test('topoOrder: a diamond, ties in input order', () => {
  // a -> b, a -> c, b -> d, c -> d
  const c = closure([[A, [B, C]], [B, [D]], [C, [D]], [D, []]]);
  assert.deepEqual(names(topoOrder(c)), ['d', 'b', 'c', 'a']);
  // c listed before b: c comes first
  const c2 = closure([[A, [B, C]], [C, [D]], [B, [D]], [D, []]]);
  assert.deepEqual(names(topoOrder(c2)), ['d', 'c', 'b', 'a']);
  // independent entries keep the input order
  const c3 = closure([[E, []], [A, [D]], [C, []], [D, []]]);
  assert.deepEqual(names(topoOrder(c3)), ['e', 'c', 'd', 'a']);
});

test('topoOrder ignores self-references', () => {
  const c = closure([[A, [A, B]], [B, [B, C]], [C, [C]]]);
  assert.deepEqual(names(topoOrder(c)), ['c', 'b', 'a']);
  // everything self-referencing only: input order
  const c2 = closure([[B, [B]], [A, [A]]]);
  assert.deepEqual(names(topoOrder(c2)), ['b', 'a']);
});

test('topoOrder ignores references outside the set, and rejects cycles and duplicates', () => {
  assert.deepEqual(names(topoOrder(closure([[A, [E, B]], [B, [E]]]))), ['b', 'a']);
  assert.throws(
    () => topoOrder(closure([[A, [B]], [B, [C]], [C, [B]]])),
    (e: unknown) => e instanceof ClosureError && /cycle/.test(e.message) && e.message.includes(`${absolute(B)} -> ${absolute(C)} -> ${absolute(B)}`),
  );
  assert.throws(() => topoOrder(closure([[A, []], [A, []]])), ClosureError);
});

test('topoOrder on a larger random DAG: every entry after its references, a permutation of the input', () => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const n = 300;
  const paths = Array.from({ length: n }, (_, i) => ({ digest: new Uint8Array(20).map((_, j) => (j === 0 ? i & 255 : j === 1 ? i >> 8 : (i * 7 + j * 13) & 255)), name: `p${i}` }));
  // entry i may reference entries with a larger index; shuffle the listing
  const spec: [StorePath, StorePath[]][] = paths.map((p, i) => [p, paths.slice(i + 1).filter(() => rnd() < 0.03).concat(rnd() < 0.3 ? [p] : [])]);
  for (let i = spec.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [spec[i], spec[j]] = [spec[j], spec[i]];
  }
  const c = closure(spec);
  checkClosed(c);
  const out = topoOrder(c);
  assert.equal(out.length, n);
  const pos = new Map(out.map((e, i) => [e.path.name, i]));
  assert.equal(pos.size, n);
  for (const e of out) for (const r of e.references) assert.ok(r.name === e.path.name || pos.get(r.name)! < pos.get(e.path.name)!);
});
