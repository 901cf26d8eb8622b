// The retention policy on its own: which paths are kept, and why.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideKept, parseDuration, parseSize, type PathRecord } from '../../src/gc/policy.js';

const H = 3_600_000;
const NOW = 1000 * H;

function paths(...ps: [key: string, refs: string[], narSize: number, pushedAgoH: number, readAgoH?: number][]): Map<string, PathRecord> {
  return new Map(ps.map(([key, refs, narSize, pushed, read]) => [key, { key, name: key, refs, narSize, pushedMs: NOW - pushed * H, readMs: read === undefined ? 0 : NOW - read * H }]));
}

describe('retention policy', () => {
  const store = paths(['app', ['lib', 'app'], 10, 100], ['lib', ['base'], 20, 100], ['base', [], 30, 100], ['new', ['base'], 5, 2], ['read', [], 40, 200, 1], ['old', [], 50, 300]);

  it('keeps pins and recent paths with their closures', () => {
    const k = decideKept(store, new Set(['app']), { keepSinceMs: 24 * H, graceMs: 0, nowMs: NOW });
    assert.deepEqual(Object.fromEntries(k.kept), { app: 'pinned', lib: 'reference', base: 'reference', new: 'recent', read: 'recent' });
    assert.equal(k.keptBytes, 10 + 20 + 30 + 5 + 40);
  });

  it('--keep-since 0 keeps pins and the grace period only', () => {
    const k = decideKept(store, new Set(), { keepSinceMs: 0, graceMs: 3 * H, nowMs: NOW });
    assert.deepEqual(Object.fromEntries(k.kept), { new: 'grace', base: 'reference' });
  });

  it('--max-size fills with the most recently used closures, stopping at the first that does not fit', () => {
    // read (40, 1 h ago), then new+base (35, 2 h), then app+lib (30; base kept already, 100 h), old (50, 300 h)
    assert.deepEqual([...decideKept(store, new Set(), { maxSizeBytes: 75, graceMs: 0, nowMs: NOW }).kept.keys()].sort(), ['base', 'new', 'read']);
    assert.deepEqual([...decideKept(store, new Set(), { maxSizeBytes: 105, graceMs: 0, nowMs: NOW }).kept.keys()].sort(), ['app', 'base', 'lib', 'new', 'read']);
    assert.equal(decideKept(store, new Set(), { maxSizeBytes: 10, graceMs: 0, nowMs: NOW }).kept.size, 0);
  });

  it('reports references to paths the store lacks', () => {
    const k = decideKept(paths(['a', ['gone'], 1, 1]), new Set(), { keepSinceMs: 24 * H, graceMs: 0, nowMs: NOW });
    assert.deepEqual(k.missingRefs, [{ from: 'a', ref: 'gone' }]);
  });

  it('parses durations and sizes, and says what to fix', () => {
    assert.equal(parseDuration('30d', '--keep-since'), 30 * 24 * H);
    assert.equal(parseDuration('90m', '--x'), 90 * 60_000);
    assert.equal(parseDuration('0', '--x'), 0);
    for (const bad of ['30', '7 days', '-1d', '1y', '']) assert.throws(() => parseDuration(bad, '--keep-since'), /--keep-since takes a duration like 30d/);
    assert.equal(parseSize('500G', '--max-size'), 500e9);
    assert.equal(parseSize('200MiB', '--max-size'), 200 * 2 ** 20);
    assert.equal(parseSize('1.5TiB', '--max-size'), 1.5 * 2 ** 40);
    assert.equal(parseSize('1000', '--max-size'), 1000);
    for (const bad of ['5 parsecs', '1e9', 'G', '-1G']) assert.throws(() => parseSize(bad, '--max-size'), /--max-size takes a size like 500G/);
  });
});
