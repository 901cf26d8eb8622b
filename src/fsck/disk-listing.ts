// Listing an on-disk store's objects shard by shard, its temp files, and
// counting the objects nothing refers to.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectKind } from '../castore/disk/disk-layout.js';
import type { DigestSpill } from '../util/digest-spill.js';
import { errno, type DiskCheckState } from './disk-state.js';

export const HEX64 = /^[0-9a-f]{64}$/;
export const HEX40 = /^[0-9a-f]{40}$/;

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errno(err) === 'EPERM';
  }
}

export class DiskListing {
  constructor(private readonly s: DiskCheckState) {}

  /**
   * The well-named objects of one kind, shard by shard (sorted). Anything
   * else in the tree is warned about and skipped: the store never looks at it.
   */
  async *objects(kind: ObjectKind, pattern: RegExp, warn = true): AsyncGenerator<{ name: string; rel: string }> {
    const base = this.s.layout.kindDir(kind);
    let shards;
    try {
      shards = (await readdir(base, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch (err) {
      if (errno(err) === 'ENOENT') return; // an empty store
      throw err;
    }
    for (const shard of shards) {
      if (!shard.isDirectory() || !/^[0-9a-f]{2}$/.test(shard.name)) {
        if (warn) this.s.report('warning', 'layout', `${kind}/${shard.name}`, 'unexpected entry (not a shard directory); the store ignores it');
        continue;
      }
      let entries;
      try {
        entries = await readdir(join(base, shard.name), { withFileTypes: true });
      } catch (err) {
        if (errno(err) === 'ENOENT') continue;
        throw err;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : 1));
      for (const e of entries) {
        const rel = `${kind}/${shard.name}/${e.name}`;
        if (!pattern.test(e.name) || !e.name.startsWith(shard.name) || !e.isFile()) {
          if (warn) {
            const why = !e.isFile() ? 'not a regular file' : !pattern.test(e.name) ? 'not an object name' : 'in the wrong shard';
            this.s.report('warning', 'layout', rel, `unexpected entry (${why}); the store ignores it`);
          }
          continue;
        }
        yield { name: e.name, rel };
      }
    }
  }

  async checkTemps(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.s.layout.tmp)).sort();
    } catch (err) {
      if (errno(err) === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      const pid = Number(name.split('-')[0]);
      if (/^\d+-/.test(name) && pid !== process.pid && isAlive(pid)) {
        this.s.counts.tempFilesInProgress++;
        continue;
      }
      this.s.counts.tempFilesLeftOver++;
      const size = await stat(join(this.s.layout.tmp, name)).then(
        (s) => `${s.size} bytes`,
        () => 'gone meanwhile',
      );
      const who = /^\d+-/.test(name) ? `left by process ${pid}, which is not running` : 'not named after a process';
      this.s.report('warning', 'tmp', `tmp/${name}`, `${who} (${size}); the daemon removes it when it next starts`);
    }
  }

  async countOrphans(kind: ObjectKind, refs: DigestSpill, add: (n: number) => void): Promise<void> {
    let shard = '';
    let known = new Set<string>();
    for await (const o of this.objects(kind, HEX64, false)) {
      const s = o.name.slice(0, 2);
      if (s !== shard) {
        shard = s;
        known = await refs.bucket(parseInt(s, 16));
      }
      if (!known.has(o.name)) add(1);
    }
    const byBucket = new Map<number, string[]>();
    for (const hex of kind === 'blobs' ? this.s.packBlobs.keys() : this.s.packDirs.keys()) {
      const b = parseInt(hex.slice(0, 2), 16);
      let list = byBucket.get(b);
      if (!list) byBucket.set(b, (list = []));
      list.push(hex);
    }
    for (const [b, hexes] of [...byBucket].sort((x, y) => x[0] - y[0])) {
      const known = await refs.bucket(b);
      add(hexes.filter((h) => !known.has(h)).length);
    }
  }
}
