// Scratch files of on-disk collections live under the store's gc/ (the same
// filesystem as the store, not a tmpfs /tmp that would hold them in RAM):
// gc/scratch-<pid>/. A collector killed with SIGKILL leaves its own; the
// next one (holding the lock) removes those of dead processes.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pidAlive } from '../castore/disk/gc-fence.js';

export async function cleanScratch(gcDir: string, mine: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(gcDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const name of names) {
    const m = /^scratch-(\d+)$/.exec(name);
    if (!m || join(gcDir, name) === mine || pidAlive(Number(m[1]))) continue;
    await rm(join(gcDir, name), { recursive: true, force: true });
  }
}
