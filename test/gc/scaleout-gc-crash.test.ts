// kill -9 of the scale-out collector — the `gc` command, and a daemon
// collecting for a client — at seeded random moments (GC_CRASH_SEED,
// GC_CRASH_TRIALS; 20 trials each by default), against real Ceph +
// PostgreSQL: after each kill, fsck --nar is clean, the pinned path is whole
// (its NAR equals nix-store --dump), and the next collection completes.
// Each trial pins another of three paths whose blobs were uploaded together,
// so every collection rewrites a pack that is half live, half garbage.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { CLI, startDaemonProcess } from '../helpers/daemon.js';
import { nixEnv, nixStoreDump } from '../helpers/nix.js';
import { seededRandom, seedFromEnv } from '../helpers/seeded-random.js';
import { freshScaleoutAddr, type ScaleoutAddr } from '../helpers/scaleout.js';
import { GC_LOCK_HELD } from '../../src/scaleout/pg-gc.js';
import { buildGc, cli, deleteFromNix, freshSalt, narOf } from './gc-fixture.js';

const SEED = seedFromEnv('GC_CRASH_SEED');
const TRIALS = Number(process.env.GC_CRASH_TRIALS || 20);
let twins: string[];
let live: string[];
let shared: string;
const stores: ScaleoutAddr[] = [];

before(async () => {
  const salt = freshSalt();
  const argstr = { rounds: '1', groups: '3' };
  [shared] = await buildGc(salt, ['shared'], argstr);
  twins = await buildGc(salt, ['twins'], argstr);
  live = await buildGc(salt, ['live'], argstr);
});

after(async () => {
  for (const s of stores) await s.drop().catch(() => {});
  await deleteFromNix([...(live ?? []), ...(twins ?? [])]);
  await deleteFromNix([shared].filter(Boolean));
});

/** Whether a collector of the store holds its advisory lock (it has begun). */
async function collecting(pgUrl: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    return (await c.query<{ held: boolean }>(`SELECT ${GC_LOCK_HELD} AS held`)).rows[0].held;
  } finally {
    await c.end();
  }
}

/**
 * Runs `argv` (a collection) and, `ms` after its collector took the store's
 * lock, SIGKILLs `victim` (default: that process). Resolves to how the run
 * ended and how long after the lock it did.
 */
function killedAfter(argv: string[], pgUrl: string, ms: number, victim?: () => void): Promise<{ outcome: string; afterLockMs: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, ...argv], { env: nixEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    let closed = false;
    let locked = Date.now();
    let timer: NodeJS.Timeout | undefined;
    c.stderr.on('data', (d) => (err += d));
    void (async () => {
      while (!closed && !(await collecting(pgUrl))) await new Promise((r) => setTimeout(r, 20));
      locked = Date.now();
      if (!closed) timer = setTimeout(() => (victim ? victim() : c.kill('SIGKILL')), ms);
    })().catch(reject);
    c.on('error', reject);
    c.on('close', (code, signal) => {
      closed = true;
      clearTimeout(timer);
      const afterLockMs = Date.now() - locked;
      if (signal === 'SIGKILL') resolve({ outcome: 'killed', afterLockMs });
      else if (code === 0) resolve({ outcome: 'finished', afterLockMs });
      else if (victim) resolve({ outcome: 'killed', afterLockMs }); // its daemon died under it
      else reject(new Error(`gc exited ${code}: ${err}`));
    });
  });
}

/** PostgreSQL ends a killed collector's session (and its lock) once it sees the socket closed. */
async function lockReleased(pgUrl: string): Promise<void> {
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  try {
    while ((await c.query<{ held: boolean }>(`SELECT ${GC_LOCK_HELD} AS held`)).rows[0].held) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await c.end();
  }
}

/**
 * One store, TRIALS collections killed by `kill(store, ms)`: before each,
 * every path is copied again (the garbage comes back) and the pin moves on.
 */
type Kill = (s: ScaleoutAddr, ms: number) => Promise<{ outcome: string; afterLockMs: number }>;

async function trials(label: string, kill: Kill): Promise<void> {
  const rng = seededRandom(SEED);
  const s = await freshScaleoutAddr(label);
  stores.push(s);
  const prepare = async (t: number) => {
    const copy = await cli(['copy', '--quiet', '--store', s.addr, ...live, ...twins]);
    assert.equal(copy.code, 0, copy.stderr);
    const pinned = live[t % live.length];
    const pin = await cli(['pin', 'add', 'keep', pinned, '--store', s.addr]);
    assert.equal(pin.code, 0, pin.stderr);
    return pinned;
  };
  // How long a whole collection takes on this machine now: the kills are
  // spread over it (and a little past it), whatever the load. Not asserted.
  await prepare(live.length - 1);
  const first = await kill(s, 3_600_000);
  assert.equal(first.outcome, 'finished');
  const whole = first.afterLockMs;
  const outcomes: string[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const pinned = await prepare(t);
    outcomes.push((await kill(s, Math.round((rng.range(0, 1100) / 1000) * whole))).outcome);
    await lockReleased(s.pgUrl);
    const where = `trial ${t} (GC_CRASH_SEED=${SEED})`;
    const fsck = await cli(['fsck', '--store', s.addr, '--nar']);
    assert.equal(fsck.code, 0, `${where}: ${fsck.stdout}${fsck.stderr}`);
    assert.ok((await narOf(s.addr, pinned)).equals(await nixStoreDump(pinned)), `${where}: ${pinned} intact`);
    const next = await cli(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0', '--json']);
    assert.equal(next.code, 0, `${where}: ${next.stderr}`);
  }
  process.stderr.write(`${label}: ${outcomes.filter((o) => o === 'killed').length} of ${TRIALS} collections killed (a whole one took ${whole} ms after taking the lock)\n`);
}

describe(`scale-out gc killed at random moments (GC_CRASH_SEED=${SEED}, ${TRIALS} trials)`, () => {
  it('the gc command: fsck clean, the pinned path whole, the next gc completes', async () => {
    await trials('gc-crash-s3', (s, ms) => killedAfter(['gc', '--store', s.addr, '--keep-since', '0', '--grace', '0'], s.pgUrl, ms));
  });

  it('a daemon collecting for a client: the same', async () => {
    await trials('gc-crash-s3-daemon', async (s, ms) => {
      const d = await startDaemonProcess({ args: ['--store', s.addr] });
      try {
        return await killedAfter(['gc', '--store', d.addr, '--keep-since', '0', '--grace', '0'], s.pgUrl, ms, () => d.child.kill('SIGKILL'));
      } finally {
        await d.stop('SIGKILL');
      }
    });
  });
});
