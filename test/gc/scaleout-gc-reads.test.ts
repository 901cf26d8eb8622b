// Reads recorded on a scale-out store (real Ceph + PostgreSQL, real Nix
// closures), as on disk: a narinfo/NAR over HTTP and a gRPC PathInfo Get
// served by a daemon, and a `nar` export, set pathinfos.read_at at the
// (moved) clock's time; the daemon's batch is written when it stops and
// survives its restart; `gc --keep-since` then keeps the paths read
// recently with their closures and deletes the one only pushed long ago.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import pg from 'pg';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { cacheUrlOf, request } from '../http/http-helpers.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { buildGc, cli, DAY, deleteFromNix, freshSalt, testClock } from './gc-fixture.js';

let s: ScaleoutAddr;
let clock: Awaited<ReturnType<typeof testClock>>;
let daemon: DaemonProcess | undefined;
let p: Record<'base' | 'libA' | 'appA' | 'libB' | 'appB' | 'old', string>;

before(async () => {
  const names = ['base', 'libA', 'appA', 'libB', 'appB', 'old'] as const;
  const outs = await buildGc(freshSalt(), names.map((n) => `retention.${n}`));
  p = Object.fromEntries(names.map((n, i) => [n, outs[i]])) as typeof p;
  s = await freshScaleoutAddr('gc-reads');
});

after(async () => {
  await daemon?.stop('SIGKILL');
  await s?.drop().catch(() => {});
  await deleteFromNix([p.appA, p.appB, p.old, p.libA, p.libB, p.base].filter(Boolean));
});

async function readTimes(): Promise<Record<string, number | null>> {
  const c = new pg.Client({ connectionString: s.pgUrl });
  await c.connect();
  try {
    const r = await c.query<{ digest: Buffer; ms: string | null }>('SELECT digest, (extract(epoch FROM read_at) * 1000)::bigint AS ms FROM pathinfos');
    const byDigest = new Map(r.rows.map((row) => [row.digest.toString('hex'), row.ms === null ? null : Number(row.ms)]));
    return Object.fromEntries(Object.entries(p).map(([n, path]) => [n, byDigest.get(Buffer.from(parseAbsolute(path).digest).toString('hex')) ?? null]));
  } finally {
    await c.end();
  }
}

describe('reads recorded on a scale-out store', () => {
  it('HTTP, gRPC Get and nar export set read_at (batched, kept across a restart); --keep-since keeps what was read', async () => {
    const copied = await cli(['copy', '--quiet', '--store', s.addr, ...Object.values(p)]);
    assert.equal(copied.code, 0, copied.stderr);
    assert.deepEqual(Object.values(await readTimes()), [null, null, null, null, null, null], 'a copy reads nothing');

    // Forty days later (by the clock every process here reads).
    const later = Date.now() + 40 * DAY;
    clock = await testClock(later);
    daemon = await startDaemonProcess({ args: ['--store', s.addr, '--http', '127.0.0.1:0'], env: clock.env() });
    const url = await cacheUrlOf(daemon);
    const narinfo = await request(url, `/${basename(p.appA).slice(0, 32)}.narinfo`);
    assert.equal(narinfo.status, 200);
    const narUrl = /^URL: (.*)$/m.exec(Buffer.from(narinfo.body).toString())![1];
    assert.equal((await request(url, `/${narUrl}`)).status, 200);
    const info = await cli(['path-info', '--store', daemon.addr, p.libB], clock.env()); // gRPC PathInfo Get
    assert.equal(info.code, 0, info.stderr);
    // The daemon writes its batch when it stops (or every 2 s); a restart keeps it.
    await daemon.stop('SIGTERM');
    daemon = undefined;
    const exported = await cli(['nar', '--store', s.addr, p.old], clock.env());
    assert.equal(exported.code, 0, exported.stderr);

    const times = await readTimes();
    for (const n of ['appA', 'libB', 'old'] as const) assert.equal(times[n], later, `${n} read at the clock's time`);
    for (const n of ['base', 'libA', 'appB'] as const) assert.equal(times[n], null, `${n} not read`);

    const gc = await cli(['gc', '--store', s.addr, '--keep-since', '30d', '--grace', '0', '--json'], clock.env());
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.deepEqual(report.deleted, [basename(p.appB)]);
    assert.deepEqual(Object.fromEntries(report.kept.map((k: { path: string; reason: string }) => [k.path, k.reason])), {
      [basename(p.appA)]: 'recent',
      [basename(p.libA)]: 'reference',
      [basename(p.base)]: 'reference',
      [basename(p.libB)]: 'recent',
      [basename(p.old)]: 'recent',
    });
    const fsck = await cli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });
});
