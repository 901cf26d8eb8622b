// One collector at a time per on-disk store: gc/lock holds the collector's
// pid and a nonce. It is created whole (a temp file linked into place, which
// fails if a lock exists), so it is never seen empty. A lock whose process
// is dead is taken over: moved aside, and removed only if what was moved is
// the dead collector's lock as read; a newer one (another collector took
// over first) is linked back and this one gives up. The holder still checks
// that the file names it before anything it does to the collector's state
// (stillHeld), and stops if not.
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CastoreError } from '../errors.js';
import { pidAlive } from './gc-fence.js';
import { makeDirsSync } from '../../util/make-dirs.js';

export interface GcLock {
  stillHeld(): boolean;
  release(): void;
}

function readOrUndefined(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

export function acquireGcLock(root: string): GcLock {
  const dir = join(root, 'gc');
  makeDirsSync(dir);
  const file = join(dir, 'lock');
  const nonce = randomBytes(8).toString('hex');
  const mine = `${process.pid} ${nonce}\n`;
  const busy = (pid: number) => new CastoreError('unavailable', `another garbage collection (pid ${pid}) is running on this store; wait for it to finish (lock ${file})`);

  /** Removes the lock if it still is `stale` (a dead collector's, as read). */
  const removeStale = (stale: string): void => {
    const aside = join(dir, `lock.stale.${process.pid}.${nonce}`);
    try {
      renameSync(file, aside);
    } catch (err) {
      if (code(err) === 'ENOENT') return; // someone removed it first
      throw err;
    }
    const moved = readFileSync(aside, 'utf8');
    if (moved !== stale) {
      // Another collector took the lock over meanwhile: put its lock back.
      try {
        linkSync(aside, file);
      } catch (err) {
        if (code(err) !== 'EEXIST') throw err;
      }
      unlinkSync(aside);
      throw busy(Number(moved.split(' ')[0]));
    }
    unlinkSync(aside);
  };

  const temp = join(dir, `lock.${process.pid}.${nonce}`);
  writeFileSync(temp, mine);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(temp, file);
        break;
      } catch (err) {
        if (code(err) !== 'EEXIST') throw err;
      }
      const held = readOrUndefined(file);
      if (held !== undefined) {
        const pid = Number(held.split(' ')[0]);
        if (pidAlive(pid)) throw busy(pid);
      }
      if (attempt >= 3) throw new CastoreError('unavailable', `could not take the collector lock ${file}`);
      if (held !== undefined) removeStale(held); // left by a collector that died
    }
  } finally {
    unlinkSync(temp);
  }
  return {
    stillHeld: () => readOrUndefined(file) === mine,
    release: () => {
      if (readOrUndefined(file) === mine) unlinkSync(file);
    },
  };
}
