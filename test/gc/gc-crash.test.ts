// kill -9 of the collector at seeded random moments (GC_CRASH_SEED,
// GC_CRASH_TRIALS; 20 trials by default), spread over a whole collection
// as long as it takes on this machine, counted from its first progress line
// (so a slow start under load does not move every kill before the work): after each kill, fsck --nar is
// clean, the kept paths are whole (their NARs equal nix-store --dump), and
// the next collection completes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { CLI } from '../helpers/daemon.js';
import { nixEnv, nixStoreDump } from '../helpers/nix.js';
import { seededRandom, seedFromEnv } from '../helpers/seeded-random.js';
import { cli, DAY, gcClosures, narOf, testClock } from './gc-fixture.js';

const SEED = seedFromEnv('GC_CRASH_SEED');
const TRIALS = Number(process.env.GC_CRASH_TRIALS || 20);
const fx = gcClosures('gc-crash', '3');

/**
 * Runs a collection and SIGKILLs it `ms` after its first progress line (it
 * holds the store's lock then), if still running. Resolves to how it ended
 * and how long after that line.
 */
function gcKilledAfter(store: string, ms: number): Promise<{ outcome: string; afterStartMs: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, 'gc', '--store', store, '--keep-since', '1d', '--grace', '0'], { env: nixEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let started: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    c.stderr.on('data', (d) => {
      err += d;
      if (started === undefined && err.includes('gc: ')) {
        started = Date.now();
        timer = setTimeout(() => c.kill('SIGKILL'), ms);
      }
    });
    c.on('error', reject);
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      const afterStartMs = Date.now() - (started ?? Date.now());
      if (signal === 'SIGKILL') resolve({ outcome: 'killed', afterStartMs });
      else if (code === 0) resolve({ outcome: 'finished', afterStartMs });
      else reject(new Error(`gc exited ${code}: ${err}`));
    });
  });
}

describe(`gc killed at random moments (GC_CRASH_SEED=${SEED}, ${TRIALS} trials)`, () => {
  it('leaves a store fsck finds clean, kept paths whole, and the next gc completes', async () => {
    const rng = seededRandom(SEED);
    const { tmp, twins, live } = fx;
    const store = `file://${join(tmp, 'data')}`;
    const old = await testClock(Date.now() - 30 * DAY);
    const keep = await cli(['copy', '--quiet', '--store', store, live[0], live[1]]);
    assert.equal(keep.code, 0, keep.stderr);
    // Fresh garbage: the twins (and a live path) pushed long ago.
    const seedGarbage = async () => {
      const seed = await cli(['copy', '--quiet', '--store', store, ...twins, live[2]], old.env());
      assert.equal(seed.code, 0, seed.stderr);
    };
    // How long a whole collection takes on this machine now: the kills are
    // spread over it (and a little past it), whatever the load. Not asserted.
    await seedGarbage();
    const first = await gcKilledAfter(store, 3_600_000);
    assert.equal(first.outcome, 'finished');
    const whole = first.afterStartMs;
    const outcomes: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      await seedGarbage();
      outcomes.push((await gcKilledAfter(store, Math.round((rng.range(0, 1100) / 1000) * whole))).outcome);
      const fsck = await cli(['fsck', '--data', join(tmp, 'data'), '--nar']);
      assert.equal(fsck.code, 0, `trial ${t} (GC_CRASH_SEED=${SEED}): ${fsck.stdout}${fsck.stderr}`);
      const p = live[rng.int(2)];
      assert.ok((await narOf(store, p)).equals(await nixStoreDump(p)), `trial ${t}: ${p} intact`);
      const next = await cli(['gc', '--store', store, '--keep-since', '1d', '--grace', '0', '--json']);
      assert.equal(next.code, 0, `trial ${t} (GC_CRASH_SEED=${SEED}): ${next.stderr}`);
    }
    process.stderr.write(`gc-crash: ${outcomes.filter((o) => o === 'killed').length} of ${TRIALS} collections killed (a whole one took ${whole} ms after its first line)\n`);
  });
});
