// Retention records of the on-disk store: when each PathInfo was last pushed
// and last read, and the pins.
//   pathinfo/<hex[0..2]>/<hex40>   its mtime is when it was last pushed
//   access/<hex[0..2]>/<hex40>     an empty file; its mtime is when the path was last read
//   pins/<name>                    JSON: the store paths of one pin
// Reads are batched by store/read-recorder.ts (as for every backend) and
// written as one utimes per path read meanwhile; times come from
// util/clock.ts so tests can move them.
import { utimes, writeFile, mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { now } from '../../util/clock.js';
import type { DiskLayout } from '../../castore/disk/disk-layout.js';
import { publishFiles } from '../../castore/disk/atomic-files.js';
import { invalid } from '../../castore/errors.js';
import { ReadRecorder } from '../read-recorder.js';
import { makeDirs } from '../../util/make-dirs.js';

function ignoreExists(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EEXIST') throw err;
}

/** The on-disk store's reads (store/read-recorder.ts): one utimes per path read since the last flush. */
export class AccessRecorder extends ReadRecorder {
  constructor(root: string) {
    super(async (batch) => {
      for (const [hex, t] of batch) {
        const file = AccessRecorder.file(root, hex);
        const when = new Date(t);
        try {
          await utimes(file, when, when);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') continue; // a read-only store: nothing to record
          try {
            // Not recursive: a store removed meanwhile is not made again.
            await mkdir(join(root, 'access')).catch(ignoreExists);
            await mkdir(dirname(file)).catch(ignoreExists);
            await writeFile(file, '');
            await utimes(file, when, when);
          } catch {
            // best effort: a lost record only makes the path look older
          }
        }
      }
    });
  }

  static file(root: string, hex: string): string {
    return join(root, 'access', hex.slice(0, 2), hex);
  }
}

/** Sets a just-pushed PathInfo's pushed time. */
export async function recordPush(pathInfoFile: string): Promise<void> {
  const t = new Date(now());
  await utimes(pathInfoFile, t, t);
}

export interface RetentionTimes {
  pushedMs: number;
  /** 0: never read. */
  readMs: number;
}

export async function retentionTimes(root: string, pathInfoFile: string, hex: string): Promise<RetentionTimes & { ino: number }> {
  const st = await stat(pathInfoFile);
  let readMs = 0;
  try {
    readMs = (await stat(AccessRecorder.file(root, hex))).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return { pushedMs: Math.floor(st.mtimeMs), readMs: Math.floor(readMs), ino: st.ino };
}

export async function forgetAccess(root: string, hex: string): Promise<void> {
  await unlink(AccessRecorder.file(root, hex)).catch(() => {});
}

// ---- pins ----

const PIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/;

export function checkPinName(name: string): void {
  if (!PIN_NAME.test(name)) throw invalid(`pin name ${JSON.stringify(name)}: use 1 to 100 letters, digits, '.', '_' or '-', not starting with '.' or '-'`);
}

export class DiskPins {
  constructor(private readonly layout: DiskLayout) {}

  private get dir(): string {
    return join(this.layout.root, 'pins');
  }

  async set(name: string, paths: string[]): Promise<void> {
    checkPinName(name);
    await this.layout.init();
    await makeDirs(this.dir);
    const data = Buffer.from(JSON.stringify({ name, paths: [...new Set(paths)].sort() }) + '\n');
    await publishFiles(this.layout.tmp, [{ path: join(this.dir, name), data }], { overwrite: true });
  }

  /** False if there was no such pin. */
  async remove(name: string): Promise<boolean> {
    checkPinName(name);
    try {
      await unlink(join(this.dir, name));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every pin; throws if any cannot be read (a collector must then delete nothing). */
  async list(): Promise<{ name: string; paths: string[] }[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: { name: string; paths: string[] }[] = [];
    for (const name of names.sort()) {
      if (!PIN_NAME.test(name)) continue; // not ours (an editor's backup, …)
      const parsed = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as { paths?: unknown };
      if (!Array.isArray(parsed.paths) || !parsed.paths.every((p) => typeof p === 'string')) {
        throw new Error(`pins/${name}: not a pin file (no "paths" list of store paths)`);
      }
      out.push({ name, paths: parsed.paths as string[] });
    }
    return out;
  }
}
