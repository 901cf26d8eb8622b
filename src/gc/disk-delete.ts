// The delete phase of an on-disk collection, referrers before what they
// refer to: PathInfos first (recorded first, for PathInfo Puts that refer
// to them), then every directory (loose, then condemned packs, index
// first), then blobs the same way. A collection killed in between leaves
// no PathInfo or directory pointing at deleted content.
import { unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DiskLayout } from '../castore/disk/disk-layout.js';
import { removePack } from '../castore/disk/pack-gc.js';
import { syncDir } from '../castore/disk/dir-sync.js';
import { forgetAccess } from '../store/backends/disk-retention.js';
import type { DigestLookup } from '../util/spilling-digest-set.js';
import type { DiskPlan } from './disk-plan.js';
import type { Kind } from './marks.js';
import type { ScannedPath } from './disk-scan.js';

export async function deleteCondemned(layout: DiskLayout, paths: ScannedPath[], plan: DiskPlan, spared: Record<Kind, DigestLookup>): Promise<void> {
  const fence = layout.gc;
  fence.recordDeleted(fence.readEpoch(), paths.map((p) => p.key));
  const shardDirs = new Set<string>();
  for (const p of paths) {
    await unlinkIfThere(p.file);
    shardDirs.add(dirname(p.file));
    await forgetAccess(layout.root, p.key);
  }
  await Promise.all([...shardDirs].map(syncDir));
  for (const kind of ['dir', 'blob'] as const) {
    const base = join(layout.root, kind === 'dir' ? 'directories' : 'blobs');
    for (let b = 0; b < 256; b++) {
      const doomed = await plan.doomedLoose[kind].records(b);
      for (let at = 0; at < doomed.length; at += 32) {
        if (spared[kind].has(doomed, at)) continue;
        const hex = doomed.toString('hex', at, at + 32);
        await unlinkIfThere(join(base, hex.slice(0, 2), hex));
      }
    }
    for (const p of plan.ofKind(kind)) if (p.fate !== 'keep') await removePack(p.dir, p.pack.name);
  }
}

async function unlinkIfThere(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
