// Crash-safe file publication: bytes go to a temp file on the same
// filesystem, are fsynced, then renamed into place, and the parent directory
// is fsynced. A reader therefore sees a complete file or none.
import { existsSync } from 'node:fs';
import { open, rename, unlink, rm, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDir } from './dir-sync.js';
import { makeDirs } from '../../util/make-dirs.js';

// A synchronous stat of a cached dentry costs microseconds; the promise
// version goes through the thread pool and, when the file is absent (the
// common case before an upload), builds an exception. Copies of many small
// files do this for every blob.
export async function exists(path: string): Promise<boolean> {
  return existsSync(path);
}

// Unique per process without asking the CSPRNG for every file.
const tempPrefix = randomBytes(6).toString('hex');
let tempCounter = 0;
export function tempName(tmpDir: string): string {
  return join(tmpDir, `${process.pid}-${tempPrefix}-${(tempCounter++).toString(36)}.tmp`);
}

/** Renames `from` to `to`, creating `to`'s directory if it is missing. */
export async function renameInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await makeDirs(dirname(to));
    await rename(from, to);
  }
}

/** Removes temp files left behind by a crashed process (not our own pid's). */
export async function cleanStaleTemps(tmpDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(tmpDir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(name.split('-')[0]);
    if (pid === process.pid || isAlive(pid)) continue;
    await rm(join(tmpDir, name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function writeTemp(tmpDir: string, data: Uint8Array): Promise<string> {
  const tmp = tempName(tmpDir);
  const h = await open(tmp, 'wx', 0o644);
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (err) {
    await h.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await h.close();
  return tmp;
}

/**
 * Publishes files in the given order (so, e.g., children become visible
 * before their parents). Temp files are written and synced concurrently;
 * only the cheap renames are sequential. Existing targets are left alone
 * (content addressing makes them identical) unless `overwrite`.
 */
export async function publishFiles(
  tmpDir: string,
  files: { path: string; data: Uint8Array }[],
  opts: { overwrite?: boolean; concurrency?: number } = {},
): Promise<void> {
  const todo: { path: string; data: Uint8Array }[] = [];
  for (const f of files) if (opts.overwrite || !(await exists(f.path))) todo.push(f);
  if (todo.length === 0) return;
  const temps: string[] = new Array(todo.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const i = next++;
      temps[i] = await writeTemp(tmpDir, todo[i].data);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 16, todo.length) }, worker));
    const parents = new Set<string>();
    for (let i = 0; i < todo.length; i++) {
      const parent = dirname(todo[i].path);
      parents.add(parent);
      await renameInto(temps[i], todo[i].path);
      temps[i] = '';
    }
    await Promise.all([...parents].map(syncDir));
  } finally {
    for (const t of temps) if (t) await unlink(t).catch(() => {});
  }
}
