// One collector at a time per on-disk store: gc/lock holds the collector's
// pid and a nonce, created exclusively. A lock whose process is dead is
// taken over. Two collectors racing for a dead one's lock could both think
// they won, so the holder checks the file still names it before it deletes
// anything (stillHeld), and stops if not.
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CastoreError } from '../errors.js';
import { pidAlive } from './gc-fence.js';

export interface GcLock {
  stillHeld(): boolean;
  release(): void;
}

export function acquireGcLock(root: string): GcLock {
  const dir = join(root, 'gc');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'lock');
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  const read = (): string | undefined => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, mine, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = read();
    const pid = Number(held?.split(' ')[0]);
    if (held !== undefined && pidAlive(pid)) {
      throw new CastoreError('unavailable', `another garbage collection (pid ${pid}) is running on this store; wait for it to finish (lock ${file})`);
    }
    if (attempt >= 3) throw new CastoreError('unavailable', `could not take the collector lock ${file}`);
    if (held !== undefined) {
      try {
        unlinkSync(file); // left by a collector that died
      } catch {
        // someone else took it over first
      }
    }
  }
  return {
    stillHeld: () => read() === mine,
    release: () => {
      if (read() === mine) unlinkSync(file);
    },
  };
}
