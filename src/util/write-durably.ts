// A small file written whole or not at all, and durable once the promise
// resolves: temp file, fsync, rename, fsync of the directory.
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeDirs } from './make-dirs.js';

export async function writeDurably(final: string, text: string, mode = 0o600): Promise<void> {
  const dir = dirname(final);
  await makeDirs(dir);
  // Unique: the same name may be written twice at once.
  const tmp = `${final}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`;
  const f = await open(tmp, 'w', mode);
  try {
    await f.writeFile(text);
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, final);
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
