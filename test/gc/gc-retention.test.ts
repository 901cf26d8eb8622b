// Retention with real Nix and a real daemon: closures pushed and read at
// controlled times (NIX_CASTORE_CLOCK_FILE), pins set, replaced and
// removed; the collector keeps exactly what the policy says, closed under
// references; kept paths then substitute through the daemon's --http cache
// and verify; deleted ones are gone; fsck --nar is clean.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { runNix } from '../helpers/nix.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';
import { buildGc, cli, DAY, deleteFromNix, freshSalt, testClock } from './gc-fixture.js';

const T0 = Date.UTC(2026, 0, 1);
let tmp: string;
let data: string;
let clock: Awaited<ReturnType<typeof testClock>>;
let daemon: DaemonProcess | undefined;
let p: Record<'base' | 'libA' | 'appA' | 'libB' | 'appB' | 'old', string>;

async function startDaemon(): Promise<DaemonProcess> {
  return startDaemonProcess({ args: ['--data', data, '--http', '127.0.0.1:0'], env: clock.env() });
}

before(async () => {
  const salt = freshSalt();
  const names = ['base', 'libA', 'appA', 'libB', 'appB', 'old'] as const;
  const outs = await buildGc(salt, names.map((n) => `retention.${n}`));
  p = Object.fromEntries(names.map((n, i) => [n, outs[i]])) as typeof p;
  tmp = await mkdtemp(join(tmpdir(), 'gc-retention-'));
  data = join(tmp, 'data');
  clock = await testClock(T0);
});

after(async () => {
  await daemon?.stop();
  await deleteFromNix([p.appA, p.appB, p.old, p.libA, p.libB, p.base].filter(Boolean));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('gc retention (file:// store behind a daemon, real Nix)', () => {
  it('keeps pins, recent pushes and reads, with their closures; deletes the rest; kept paths substitute', async () => {
    daemon = await startDaemon();
    const copy = async (...paths: string[]) => {
      const r = await cli(['copy', '--quiet', '--store', daemon!.addr, ...paths], clock.env());
      assert.equal(r.code, 0, r.stderr);
    };
    await copy(p.old, p.appA); // day 0: old, appA, libA, base
    await clock.set(T0 + 10 * DAY);
    await copy(p.appB); // day 10: appB, libB (base is present: only looked up)
    await clock.set(T0 + 20 * DAY);
    const store = ['--store', `file://${data}`];
    // Pins: one replaced, one removed; pinning what the store lacks is refused.
    assert.equal((await cli(['pin', 'add', 'release', p.appB, ...store])).code, 0);
    assert.equal((await cli(['pin', 'add', 'release', p.appA, ...store])).code, 0);
    assert.equal((await cli(['pin', 'add', 'tmp', p.old, ...store])).code, 0);
    assert.equal((await cli(['pin', 'rm', 'tmp', ...store])).code, 0);
    const missing = await cli(['pin', 'add', 'x', '/nix/store/00000000000000000000000000000000-nope', ...store]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not in the store: \/nix\/store\/0+-nope; pin x not changed/);
    const list = await cli(['pin', 'list', '--json', ...store]);
    assert.deepEqual(JSON.parse(list.stdout), { release: [p.appA] });
    // Day 22: libB's narinfo is read over HTTP (a read keeps it).
    await clock.set(T0 + 22 * DAY);
    let url = await cacheUrlOf(daemon);
    const hash = basename(p.libB).slice(0, 32);
    assert.equal((await request(url, `/${hash}.narinfo`)).status, 200);
    // The daemon records reads in batches: a restart flushes them.
    await daemon.stop();
    daemon = await startDaemon();
    url = await cacheUrlOf(daemon);

    await clock.set(T0 + 25 * DAY);
    const bad = await cli(['gc', ...store, '--keep-since', '7 days'], clock.env());
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--keep-since takes a duration/);
    const dry = await cli(['gc', ...store, '--keep-since', '7d', '--grace', '0', '--dry-run', '--json'], clock.env());
    assert.equal(dry.code, 0, dry.stderr);
    const gc = await cli(['gc', ...store, '--keep-since', '7d', '--grace', '0', '--json'], clock.env());
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.deepEqual(JSON.parse(dry.stdout).deleted, report.deleted);
    assert.deepEqual(report.deleted, [basename(p.appB), basename(p.old)].sort());
    const reasons = Object.fromEntries(report.kept.map((k: { path: string; reason: string }) => [k.path, k.reason]));
    assert.deepEqual(reasons, {
      [basename(p.appA)]: 'pinned',
      [basename(p.libA)]: 'reference',
      [basename(p.base)]: 'reference',
      [basename(p.libB)]: 'recent',
    });
    assert.ok(report.bytes.reclaimed > 0, JSON.stringify(report.bytes));

    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    for (const gone of [p.appB, p.old]) assert.equal((await request(url, `/${basename(gone).slice(0, 32)}.narinfo`)).status, 404);

    // Kept paths substitute with real Nix from the daemon's cache and verify.
    await deleteFromNix([p.appB, p.old]);
    await deleteFromNix([p.appA, p.libB]);
    await deleteFromNix([p.libA]);
    await deleteFromNix([p.base]);
    const subst = ['--option', 'substituters', url, '--option', 'require-sigs', 'false', '--option', 'narinfo-cache-negative-ttl', '0'];
    await runNix('nix-store', ['-r', p.appA, p.libB, ...subst]);
    await runNix('nix-store', ['--verify-path', p.appA, p.libA, p.base, p.libB]);

    // The next collection, with nothing new to delete, completes and keeps all.
    const again = await cli(['gc', ...store, '--keep-since', '7d', '--grace', '0', '--json'], clock.env());
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout).deleted, []);
  });
});
