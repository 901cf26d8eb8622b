// Packs that are mostly garbage: their live records are copied into a new
// pack (durable and indexed before anything is deleted), a few thousand
// entries at a time. A pack that cannot be copied (a damaged record) stays
// whole; if it holds directories, its dead ones survive and keep what they
// refer to.
import { PackStore } from '../castore/disk/pack-store.js';
import { copyRecords } from '../castore/disk/pack-gc.js';
import type { IndexEntry } from '../castore/disk/pack-format.js';
import { forEachIndexEntry } from './pack-index-stream.js';
import { forEachLimit } from '../util/for-each-limit.js';
import { isLive, type DiskPlan, type PackPlan } from './disk-plan.js';

const BATCH = 32768;
const PACKS_AT_ONCE = 2;

async function* each<T>(xs: T[]): AsyncIterable<T> {
  yield* xs;
}

/** Copies the live records of every pack to rewrite; returns the bytes copied and the packs written (by name). */
export async function rewritePacks(plan: DiskPlan, warnings: string[], log: (msg: string) => void): Promise<{ copied: number; written: Set<string> }> {
  const rewrites = plan.plans.filter((p) => p.fate === 'rewrite');
  if (rewrites.length > 0) log(`gc: rewriting ${rewrites.length} packs`);
  const targets = new Map<string, PackStore>();
  let copied = 0;
  try {
    // A few packs at once: their records share the new pack's batches (and fsyncs).
    await forEachLimit(each(rewrites), PACKS_AT_ONCE, async (p) => {
      let target = targets.get(p.dir);
      if (!target) targets.set(p.dir, (target = new PackStore(p.dir, undefined, true)));
      try {
        const n = await copyLive(p, target);
        copied += n;
        p.copied = true;
      } catch (err) {
        warnings.push((err as Error).message);
        p.fate = 'keep';
        if (p.kind === 'dir') await plan.walkDead(p);
      }
    });
  } finally {
    for (const t of targets.values()) await t.close();
  }
  // A new pack holds copies of live records only (the target never reads other packs).
  const written = new Set([...targets.values()].flatMap((t) => t.packNames()));
  return { copied, written };
}

async function copyLive(p: PackPlan, target: PackStore): Promise<number> {
  let batch: IndexEntry[] = [];
  let bytes = 0;
  await forEachIndexEntry(p.dir, p.pack.name, async (b, at, i, offset, length) => {
    if (i >= p.count || !isLive(p, i)) return;
    batch.push({ digest: Buffer.from(b.subarray(at, at + 32)), offset, length });
    if (batch.length < BATCH) return;
    bytes += await copyRecords(p.dir, p.pack.name, batch, target);
    batch = [];
  });
  if (batch.length > 0) bytes += await copyRecords(p.dir, p.pack.name, batch, target);
  return bytes;
}
