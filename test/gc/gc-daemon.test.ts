// gc and pin against a daemon (nixcastore.v1.AdminService): the write token
// is needed, a --read-only daemon refuses, bad input changes nothing; the
// daemon collects on its own with --gc-interval; and a daemon killed with
// SIGKILL in the middle of its collections (seeded random moments,
// GC_CRASH_SEED, GC_CRASH_TRIALS) leaves a store fsck finds clean, kept
// paths whole, and the next collection completes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { startDaemonProcess, type DaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixStoreDump } from '../helpers/nix.js';
import { seededRandom, seedFromEnv } from '../helpers/seeded-random.js';
import { parseAbsolute } from '../../src/nix/store-path.js';
import { cli, DAY, gcClosures, narOf, testClock } from './gc-fixture.js';

const SEED = seedFromEnv('GC_CRASH_SEED');
const TRIALS = Number(process.env.GC_CRASH_TRIALS || 20);
const daemons: DaemonProcess[] = [];
const fx = gcClosures('gc-daemon', '2', async () => {
  for (const d of daemons) await d.stop('SIGKILL').catch(() => {});
});

function pathInfoFile(data: string, path: string): string {
  const hex = Buffer.from(parseAbsolute(path).digest).toString('hex');
  return join(data, 'pathinfo', hex.slice(0, 2), hex);
}

async function daemon(args: string[], env?: NodeJS.ProcessEnv): Promise<DaemonProcess> {
  const d = await startDaemonProcess({ args, env });
  daemons.push(d);
  return d;
}

describe('gc and pin through a daemon', () => {
  it('need the write token, are refused read-only, and collect what the policy does not keep', async () => {
    const data = join(fx.tmp, 'admin');
    const tokenFile = join(fx.tmp, 'token');
    await writeFile(tokenFile, 'sekrit-token\n');
    const old = await testClock(Date.now() - 30 * DAY);
    const seed = await cli(['copy', '--quiet', '--store', `file://${data}`, ...fx.twins, ...fx.live], old.env());
    assert.equal(seed.code, 0, seed.stderr);
    const d = await daemon(['--data', data, '--auth-token-file', tokenFile]);
    const withToken = { ...nixEnv(), NIX_CASTORE_AUTH_TOKEN_FILE: tokenFile };

    const anon = await cli(['pin', 'add', 'rel', fx.live[0], '--store', d.addr]);
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /authorization: Bearer/);
    const gcAnon = await cli(['gc', '--store', d.addr, '--keep-since', '1d']);
    assert.equal(gcAnon.code, 1);
    const lacking = await cli(['pin', 'add', 'rel', '/nix/store/00000000000000000000000000000000-nope', '--store', d.addr], withToken);
    assert.equal(lacking.code, 1);
    assert.match(lacking.stderr, /not in the store/);
    const badUnit = await cli(['gc', '--store', d.addr, '--max-size', '5 parsecs'], withToken);
    assert.equal(badUnit.code, 2);
    assert.match(badUnit.stderr, /--max-size takes a size like 500G/);

    assert.equal((await cli(['pin', 'add', 'rel', fx.live[0], '--store', d.addr], withToken)).code, 0);
    const list = await cli(['pin', 'list', '--json', '--store', d.addr], withToken);
    assert.deepEqual(JSON.parse(list.stdout), { rel: [fx.live[0]] });
    const gc = await cli(['gc', '--store', d.addr, '--keep-since', '1d', '--grace', '0', '--json'], withToken);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.deepEqual(report.deleted, [...fx.twins, fx.live[1]].map((p) => basename(p)).sort());
    assert.deepEqual(report.kept.map((k: { path: string }) => k.path).sort(), [fx.live[0], fx.shared].map((p) => basename(p)).sort());
    assert.ok((await narOf(d.addr, fx.live[0])).equals(await nixStoreDump(fx.live[0])));
    assert.equal((await cli(['pin', 'rm', 'nope', '--store', d.addr], withToken)).code, 1);
    await d.stop();

    const ro = await daemon(['--data', data, '--read-only']);
    const refused = await cli(['gc', '--store', ro.addr, '--keep-since', '1d']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /read-only/);
    assert.equal((await cli(['pin', 'rm', 'rel', '--store', ro.addr])).code, 1);
    await ro.stop();
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it("seals the daemon's own packs first, so the garbage in them goes too", async () => {
    const data = join(fx.tmp, 'own-packs');
    const clock = await testClock(Date.now() - 30 * DAY);
    const d = await daemon(['--data', data], clock.env());
    assert.equal((await cli(['copy', '--quiet', '--store', d.addr, fx.twins[0]])).code, 0);
    await clock.set(Date.now());
    const gc = await cli(['gc', '--store', d.addr, '--keep-since', '1d', '--grace', '0', '--json']);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout);
    assert.deepEqual(report.deleted, [basename(fx.twins[0])]);
    // 40 small files, packed by the daemon, and one large: all gone.
    assert.equal(report.blobs.deleted, 41, JSON.stringify(report));
    assert.equal((await cli(['copy', '--quiet', '--store', d.addr, fx.twins[0]])).code, 0, 'and it takes them again');
    assert.ok((await narOf(d.addr, fx.twins[0])).equals(await nixStoreDump(fx.twins[0])));
    await d.stop();
    const fsck = await cli(['fsck', '--data', data, '--nar']);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  });

  it('collects on a schedule with --gc-interval', async () => {
    const data = join(fx.tmp, 'scheduled');
    const old = await testClock(Date.now() - 30 * DAY);
    assert.equal((await cli(['copy', '--quiet', '--store', `file://${data}`, fx.twins[0]], old.env())).code, 0);
    const bad = await cli(['daemon', '--data', data, '--gc-keep-since', '1d']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /give --gc-interval/);
    const d = await daemon(['--data', data, '--gc-interval', '1s', '--gc-keep-since', '1d', '--gc-grace', '0', '--metrics', '127.0.0.1:0']);
    // Waits for the collection's report (the interval, not this test, sets the pace).
    while (!/reclaimed/.test(d.stderr())) await new Promise((r) => setTimeout(r, 100));
    assert.equal(existsSync(pathInfoFile(data, fx.twins[0])), false, d.stderr());
    // The daemon's /metrics counts the runs and the bytes they freed.
    const url = /metrics on (http:\/\/\S+\/metrics)/.exec(d.stderr())![1];
    const metrics = await (await fetch(url)).text();
    assert.match(metrics, /^nix_castore_gc_runs_total\{result="ok"\} [1-9]/m);
    assert.match(metrics, /^nix_castore_gc_reclaimed_bytes_total [1-9]/m);
    assert.match(metrics, /^nix_castore_gc_duration_seconds_count [1-9]/m);
    await d.stop();
  });

  it(`leaves a clean store when the daemon is killed while collecting (GC_CRASH_SEED=${SEED}, ${TRIALS} trials)`, async () => {
    const rng = seededRandom(SEED);
    const data = join(fx.tmp, 'killed');
    const store = `file://${data}`;
    const old = await testClock(Date.now() - 30 * DAY);
    assert.equal((await cli(['copy', '--quiet', '--store', store, fx.live[0]])).code, 0);
    for (let t = 0; t < TRIALS; t++) {
      assert.equal((await cli(['copy', '--quiet', '--store', store, ...fx.twins, fx.live[1]], old.env())).code, 0);
      const d = await daemon(['--data', data, '--gc-interval', '1s', '--gc-keep-since', '1d', '--gc-grace', '0']);
      await new Promise((r) => setTimeout(r, rng.range(900, 1600)));
      await d.stop('SIGKILL');
      const fsck = await cli(['fsck', '--data', data, '--nar']);
      assert.equal(fsck.code, 0, `trial ${t} (GC_CRASH_SEED=${SEED}): ${fsck.stdout}${fsck.stderr}`);
      assert.ok((await narOf(store, fx.live[0])).equals(await nixStoreDump(fx.live[0])), `trial ${t}: kept path intact`);
      const next = await cli(['gc', '--store', store, '--keep-since', '1d', '--grace', '0']);
      assert.equal(next.code, 0, `trial ${t} (GC_CRASH_SEED=${SEED}): ${next.stderr}`);
    }
  });
});
