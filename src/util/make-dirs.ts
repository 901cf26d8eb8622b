// mkdir -p that always ends. Node's own recursive mkdir (20.x) retries for
// ever, at 100% CPU, where a directory that exists still answers ENOENT
// for a child: anywhere under /proc (a mistyped --data or --spool hung the
// daemon and the hook silently). Here each level is tried at most twice.
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

const code = (err: unknown) => (err as NodeJS.ErrnoException).code;

function notADirectory(dir: string): Error {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir, syscall: 'mkdir' });
}

/** Creates `dir` and its missing parents. */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (err) {
    if (code(err) === 'EEXIST') {
      if ((await stat(dir)).isDirectory()) return;
      throw notADirectory(dir);
    }
    const parent = dirname(dir);
    if (code(err) !== 'ENOENT' || parent === dir) throw err;
    await makeDirs(parent);
  }
  // The parent is there now: a second ENOENT is the answer, not a reason to retry.
  try {
    await mkdir(dir);
  } catch (err) {
    if (code(err) !== 'EEXIST' || !(await stat(dir)).isDirectory()) throw err;
  }
}

/** The same, synchronously. */
export function makeDirsSync(dir: string): void {
  try {
    mkdirSync(dir);
    return;
  } catch (err) {
    if (code(err) === 'EEXIST') {
      if (statSync(dir).isDirectory()) return;
      throw notADirectory(dir);
    }
    const parent = dirname(dir);
    if (code(err) !== 'ENOENT' || parent === dir) throw err;
    makeDirsSync(parent);
  }
  try {
    mkdirSync(dir);
  } catch (err) {
    if (code(err) !== 'EEXIST' || !statSync(dir).isDirectory()) throw err;
  }
}
