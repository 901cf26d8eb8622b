// A figure per file of a sharded tree (`<dir>/<xx>/<name>`), for stats.
// Names are content addresses (or store-path digests, whose NAR size does
// not change), so a file measured once is not measured again: a refresh
// costs a listing plus the files that are new since the last one.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export class ShardScan {
  private known = new Map<string, number>();

  constructor(private readonly measure: (path: string) => Promise<number | undefined>) {}

  /** Every file's figure (files that vanished while measured are left out). */
  async scan(dir: string): Promise<Map<string, number>> {
    const now = new Map<string, number>();
    for (const shard of await listOrEmpty(dir)) {
      for (const name of await listOrEmpty(join(dir, shard))) {
        if (name.startsWith('.')) continue;
        let v = this.known.get(name);
        if (v === undefined) v = await this.measure(join(dir, shard, name));
        if (v !== undefined) now.set(name, v);
      }
    }
    this.known = now;
    return now;
  }
}

async function listOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

/** A file's size, undefined if it is gone. */
export async function fileSize(path: string): Promise<number | undefined> {
  const { stat } = await import('node:fs/promises');
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
