// Reading an on-disk store for a collection: its PathInfos with their
// retention times, and its disk usage. Any error
// propagates: a collector that cannot read every root deletes nothing.
import { readdir, readFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { PathInfoCodec } from '../store/messages.js';
import type { Node } from '../castore/messages.js';
import { retentionTimes } from '../store/backends/disk-retention.js';
import type { PathRecord } from './policy.js';

export interface ScannedPath extends PathRecord {
  node: Node;
  file: string;
  ino: number;
}

async function shards(base: string): Promise<string[]> {
  try {
    return (await readdir(base)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function scanPathInfos(root: string): Promise<Map<string, ScannedPath>> {
  const base = join(root, 'pathinfo');
  const out = new Map<string, ScannedPath>();
  for (const shard of await shards(base)) {
    for (const hex of (await readdir(join(base, shard))).sort()) {
      const file = join(base, shard, hex);
      let info, times;
      try {
        info = PathInfoCodec.decode(await readFile(file));
        times = await retentionTimes(root, file, hex);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted meanwhile: not a root
        throw new Error(`pathinfo/${shard}/${hex}: ${(err as Error).message}; nothing was deleted`);
      }
      if (!info.node) throw new Error(`pathinfo/${shard}/${hex}: no root node; nothing was deleted`);
      out.set(hex, {
        key: hex,
        name: Buffer.from(info.node.name).toString('utf8'),
        refs: info.references.map((r) => Buffer.from(r).toString('hex')),
        narSize: info.narinfo?.narSize ?? 0,
        pushedMs: times.pushedMs,
        readMs: times.readMs,
        node: info.node,
        file,
        ino: times.ino,
      });
    }
  }
  return out;
}

/** Bytes the tree under `dir` takes on disk (like du). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      try {
        const st = await lstat(p);
        total += st.blocks * 512;
        if (e.isDirectory()) stack.push(p);
      } catch {
        // removed meanwhile
      }
    }
  }
  return total;
}
