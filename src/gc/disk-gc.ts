// The garbage collector of an on-disk (`file://`) store. Safe first:
//   1. one collector at a time (gc-lock.ts);
//   2. `gc/marking` is written before the PathInfos are listed, so every
//      PathInfo stored later is journalled (gc-fence.ts);
//   3. the roots (pins, PathInfos with their times) are read completely or
//      the collection stops having deleted nothing (disk-roots.ts);
//   4. mark from the kept PathInfos (marks.ts), then decide, bucket by
//      bucket, what goes (disk-plan.ts), marking from every directory that
//      survives anyway (young, or in a pack not worth rewriting): a
//      surviving directory never refers to deleted content;
//   5. live records of packs that are mostly garbage are copied to a new
//      pack (durable and indexed before anything is deleted; disk-rewrite.ts);
//   6. fence: `gc/deleting`, epoch bumped, wait for PathInfo Puts in flight,
//      then mark what the journal and the pins name now, sparing whatever
//      that needs (disk-late.ts);
//   7. delete PathInfos first (so none ever refers to deleted content), then
//      directories (loose, then condemned packs, index first), then blobs
//      the same way: what refers goes before what it refers to (disk-delete.ts).
// Killed anywhere, the store stays consistent: at worst garbage is left
// (or copied twice) for the next collection. Memory: the marks and the
// plan's lists are bounded by `memoryBytes` and spill to `gc/scratch-<pid>/`
// beyond it.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { diskLayout } from '../addr/open.js';
import type { DiskLayout } from '../castore/disk/disk-layout.js';
import { acquireGcLock } from '../castore/disk/gc-lock.js';
import { pidAlive, statePid } from '../castore/disk/gc-fence.js';
import { DEFAULT_GC_MEMORY, type PolicyOptions } from './policy.js';
import { Marks } from './marks.js';
import { diskUsage, type ScannedPath } from './disk-scan.js';
import { DiskDirectoryReader } from './disk-directories.js';
import { readRoots, type Roots } from './disk-roots.js';
import { DiskPlan } from './disk-plan.js';
import { rewritePacks } from './disk-rewrite.js';
import { spareLate } from './disk-late.js';
import { deleteCondemned } from './disk-delete.js';
import { cleanScratch } from './scratch.js';
import { DigestTable } from '../util/digest-table.js';
import type { GcReport } from './report.js';

export interface DiskGcOptions extends PolicyOptions {
  dryRun?: boolean;
  log?: (msg: string) => void;
  /** Rewrite a sealed pack when more than this share of it is garbage. */
  rewriteAbove?: number;
  /** How long to wait for PathInfo Puts in flight before giving up (deleting nothing). */
  putWaitMs?: number;
  /** Aborted: stop before deleting anything. */
  signal?: AbortSignal;
  /** Memory for the marks and the lists of what to delete; beyond it they spill to scratch files. */
  memoryBytes?: number;
}

export async function collectDisk(root: string, opts: DiskGcOptions): Promise<GcReport> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const layout = diskLayout(root);
  await layout.init();
  const fence = layout.gc;
  const lock = acquireGcLock(root);
  const memory = opts.memoryBytes ?? DEFAULT_GC_MEMORY;
  const scratchDir = join(fence.dir, `scratch-${process.pid}`);
  // A reader of its own (not the process's shared layout): a daemon collecting
  // every hour must not accumulate readers and their indexes.
  const directories = new DiskDirectoryReader(root);
  const marks = new Marks(directories, { budgetBytes: Math.floor(memory * 0.75), scratchDir });
  // Objects are judged by their files' times: real time, whatever the policy's clock.
  const plan = new DiskPlan(root, marks, { graceCut: Date.now() - opts.graceMs, rewriteAbove: opts.rewriteAbove ?? 0.25, budgetBytes: Math.floor(memory * 0.25), scratchDir });
  const warnings: string[] = [];
  /** Set once the delete phase may have begun: the epoch is bumped again at the end. */
  let deleting = false;
  try {
    fence.init();
    await cleanScratch(fence.dir, scratchDir);
    const left = statePid(fence.deletingFile);
    if (left !== undefined && !pidAlive(left)) warnings.push(`a previous collection (pid ${left}) was killed while deleting; this one finishes its work`);
    const before = await diskUsage(root);
    if (!opts.dryRun) {
      if (!lock.stillHeld()) throw new Error(LOST_LOCK);
      await rm(fence.journalFile, { force: true });
      await writeFile(fence.markingFile, `${process.pid}\n`);
    }

    log('gc: reading pins and PathInfos');
    const roots = await readRoots(layout, opts, warnings);
    opts.signal?.throwIfAborted();
    log(`gc: marking from ${roots.decision.kept.size} kept paths`);
    await directories.refresh();
    for (const key of roots.decision.kept.keys()) await marks.node(roots.paths.get(key)!.node, true);
    log('gc: deciding what goes');
    await plan.planDirectories();
    await plan.planBlobs();
    for (const p of plan.plans) {
      if (p.damaged) warnings.push(`${p.kind === 'dir' ? 'directory' : 'blob'} pack ${p.pack.name}: index entry ${p.count} is damaged and whole entries follow it; the pack is kept as it is (run 'nix-castore fsck')`);
    }
    // From here on, whatever is marked spares what the plans condemned.
    marks.recordLate();
    const doomedPaths = [...roots.paths.values()].filter((p) => !roots.decision.kept.has(p.key));
    const report = async (after: number, copiedBytes: number, deleted: typeof doomedPaths): Promise<GcReport> =>
      buildReport(roots, plan, marks, { before, after, copiedBytes, deleted, warnings, dryRun: !!opts.dryRun, t0, budgetBytes: memory });
    if (opts.dryRun) return await report(before, 0, doomedPaths);

    const rewritten = await rewritePacks(plan, warnings, log);
    opts.signal?.throwIfAborted();
    if (!lock.stillHeld()) throw new Error(LOST_LOCK);
    deleting = true;
    await enterDeletePhase(layout, opts.putWaitMs ?? 5 * 60_000);
    const spared = await spareLate(layout, roots, marks, plan, rewritten.written);
    opts.signal?.throwIfAborted();
    if (!lock.stillHeld()) throw new Error(LOST_LOCK);

    log('gc: deleting');
    const deletedPaths = doomedPaths.filter((p) => !spared.has(p.key));
    await deleteCondemned(layout, deletedPaths, plan, { dir: marks.late!.dirs, blob: marks.late!.blobs });
    const r = await report(0, rewritten.copied, deletedPaths);
    await plan.dispose();
    await marks.dispose();
    await rm(scratchDir, { recursive: true, force: true });
    r.bytes.after = await diskUsage(root);
    r.bytes.reclaimed = r.bytes.before - r.bytes.after;
    return r;
  } finally {
    // A process that looked at the epoch during the deletions cached what was
    // about to go: a second bump, before Puts may run again, drops that too.
    if (deleting) await writeFile(fence.epochFile, `${Number(fence.readEpoch()) + 1}\n`).catch(() => {});
    // The collector's state files are the lock holder's: one that lost the lock leaves them to the holder.
    if (!opts.dryRun && lock.stillHeld()) {
      for (const f of [fence.deletingFile, fence.markingFile, fence.journalFile]) await rm(f, { force: true }).catch(() => {});
    }
    await plan.dispose().catch(() => {});
    await marks.dispose().catch(() => {});
    await rm(scratchDir, { recursive: true, force: true }).catch(() => {});
    await directories.close();
    lock.release();
  }
}

const LOST_LOCK = 'another collector took the lock over; nothing was deleted';

/** Fence: no PathInfo Put runs from here until the deletions are done. */
async function enterDeletePhase(layout: DiskLayout, putWaitMs: number): Promise<void> {
  const fence = layout.gc;
  await writeFile(fence.deletingFile, `${process.pid}\n`);
  await writeFile(fence.epochFile, `${Number(fence.readEpoch()) + 1}\n`);
  const deadline = Date.now() + putWaitMs;
  for (let wait = 5; fence.livePuts().length > 0; wait = Math.min(wait * 2, 200)) {
    if (Date.now() > deadline) throw new Error('PathInfo Puts in flight did not finish; nothing was deleted');
    await new Promise((r) => setTimeout(r, wait));
  }
}

async function buildReport(
  roots: Roots,
  plan: DiskPlan,
  marks: Marks,
  r: { before: number; after: number; copiedBytes: number; deleted: ScannedPath[]; warnings: string[]; dryRun: boolean; t0: number; budgetBytes: number },
): Promise<GcReport> {
  const { paths, decision } = roots;
  const gone = new Set(r.deleted.map((p) => p.key));
  const spared = marks.late ?? { dirs: new DigestTable(16), blobs: new DigestTable(16) };
  return {
    dryRun: r.dryRun,
    paths: { total: paths.size, kept: paths.size - gone.size, deleted: gone.size, keptNarBytes: decision.keptBytes },
    kept: [...paths.values()].filter((p) => !gone.has(p.key)).map((p) => ({ path: p.name, reason: decision.kept.get(p.key) ?? 'late' })),
    deleted: r.deleted.map((p) => p.name).sort(),
    directories: { deleted: await plan.countDead('dir', spared.dirs) },
    blobs: { deleted: await plan.countDead('blob', spared.blobs) },
    packs: { rewritten: plan.plans.filter((p) => p.fate === 'rewrite').length, deleted: plan.plans.filter((p) => p.fate === 'delete').length, liveBytesCopied: r.copiedBytes },
    bytes: { before: r.before, after: r.after, reclaimed: r.before - r.after },
    warnings: r.warnings,
    seconds: (Date.now() - r.t0) / 1000,
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    memory: { budgetBytes: r.budgetBytes, spilled: marks.dirs.spilled || marks.blobs.spilled || plan.spilled },
  };
}
