// The garbage collector of an on-disk (`file://`) store. Safe first:
//   1. one collector at a time (gc-lock.ts);
//   2. `gc/marking` is written before the PathInfos are listed, so every
//      PathInfo stored later is journalled (gc-fence.ts);
//   3. the roots (pins, PathInfos with their times) are read completely or
//      the collection stops having deleted nothing;
//   4. mark from the kept PathInfos, and from every directory that survives
//      anyway (young, or in a pack not worth rewriting): a surviving
//      directory never refers to deleted content;
//   5. live records of packs that are mostly garbage are copied to a new
//      pack (durable and indexed before anything is deleted);
//   6. fence: `gc/deleting`, epoch bumped, wait for PathInfo Puts in flight,
//      then mark what the journal and the pins name now, sparing whatever
//      that needs;
//   7. delete PathInfos first (so none ever refers to deleted content), then
//      directories (loose, then condemned packs, index first), then blobs
//      the same way: what refers goes before what it refers to.
// Killed anywhere, the store stays consistent: at worst garbage is left
// (or copied twice) for the next collection.
import { rm, writeFile, unlink, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { diskLayout } from '../addr/open.js';
import { DiskLayout } from '../castore/disk/disk-layout.js';
import { DiskDirectoryService } from '../castore/disk/disk-directory-service.js';
import { acquireGcLock } from '../castore/disk/gc-lock.js';
import { pidAlive, statePid } from '../castore/disk/gc-fence.js';
import { copyRecords, listPacks, readPackIndex, removePack, type PackFile } from '../castore/disk/pack-gc.js';
import { PackStore } from '../castore/disk/pack-store.js';
import type { IndexEntry } from '../castore/disk/pack-format.js';
import { syncDir } from '../castore/disk/dir-sync.js';
import { b3Hex } from '../castore/digest.js';
import { DiskPins, forgetAccess } from '../store/backends/disk-retention.js';
import { parseAbsolute } from '../nix/store-path.js';
import { PathInfoCodec } from '../store/messages.js';
import { decideKept, type PolicyOptions } from './policy.js';
import { Marks, type Kind } from './marks.js';
import { diskUsage, looseObjects, scanPathInfos, type LooseFile } from './disk-scan.js';
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
}

type Fate = 'keep' | 'rewrite' | 'delete';

interface PackPlan {
  dir: string;
  pack: PackFile;
  entries: IndexEntry[];
  fate: Fate;
  /** Hex digests of entries not marked when the fate was decided. */
  dead: Set<string>;
  copied: boolean;
  /** Entries in its index when planned (its entries are dropped once it is known to stay). */
  count: number;
}

export async function collectDisk(root: string, opts: DiskGcOptions): Promise<GcReport> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const layout = diskLayout(root);
  await layout.init();
  const fence = layout.gc;
  const lock = acquireGcLock(root);
  // A reader of its own (not the process's shared layout): a daemon collecting
  // every hour must not accumulate readers and their indexes.
  const directories = new DiskDirectoryService(new DiskLayout(root));
  const warnings: string[] = [];
  // Objects are judged by their files' times: real time, whatever the policy's clock.
  const graceCut = Date.now() - opts.graceMs;
  const rewriteAbove = opts.rewriteAbove ?? 0.25;
  try {
    fence.init();
    const left = statePid(fence.deletingFile);
    if (left !== undefined && !pidAlive(left)) warnings.push(`a previous collection (pid ${left}) was killed while deleting; this one finishes its work`);
    const before = await diskUsage(root);
    if (!opts.dryRun) {
      await rm(fence.journalFile, { force: true });
      await writeFile(fence.markingFile, `${process.pid}\n`);
    }

    // Roots, read completely.
    log('gc: reading pins and PathInfos');
    const pins = await new DiskPins(layout).list();
    const paths = await scanPathInfos(root);
    const pinnedKeys = (list: { name: string; paths: string[] }[]): Set<string> => {
      const keys = new Set<string>();
      for (const pin of list) {
        for (const p of pin.paths) {
          const key = Buffer.from(parseAbsolute(p).digest).toString('hex');
          keys.add(key);
          if (!paths.has(key)) warnings.push(`pin ${pin.name}: ${p} is not in the store`);
        }
      }
      return keys;
    };
    const decision = decideKept(paths, pinnedKeys(pins), opts);
    for (const m of decision.missingRefs) warnings.push(`${m.from} refers to a path the store lacks (digest ${m.ref}): its closure was incomplete already`);

    opts.signal?.throwIfAborted();
    // Mark.
    log(`gc: marking from ${decision.kept.size} kept paths`);
    const plans: PackPlan[] = [];
    const condemned = new Map<string, PackPlan[]>(); // dead digest → condemned packs holding it
    const looseDoomed = new Map<string, LooseFile>(); // `${kind}:${hex}`
    // Once a kind's fates are decided, marking one of its objects spares it.
    const planned = { dir: false, blob: false };
    const spare: Promise<void>[] = [];
    const onMark = (kind: Kind, hex: string): void => {
      if (!planned[kind]) return;
      looseDoomed.delete(`${kind}:${hex}`);
      for (const plan of condemned.get(`${kind}:${hex}`) ?? []) {
        if (plan.fate === 'keep') continue;
        plan.fate = 'keep';
        if (kind === 'dir') spare.push(markDeadDirs(plan));
      }
    };
    const marks = new Marks(directories, onMark);
    const markDeadDirs = async (plan: PackPlan): Promise<void> => {
      for (const e of plan.entries) await marks.directory(e.digest, false);
    };
    for (const key of decision.kept.keys()) await marks.node(paths.get(key)!.node, true);

    // Directories: decide the packs' fates, then mark from the survivors.
    const planPacks = async (dir: string, kind: Kind, marked: Set<string>): Promise<PackPlan[]> => {
      const out: PackPlan[] = [];
      for (const pack of await listPacks(dir)) {
        if (pack.orphan) {
          out.push({ dir, pack, entries: [], fate: pack.mtimeMs < graceCut ? 'delete' : 'keep', dead: new Set(), copied: false, count: 0 });
          continue;
        }
        const entries = await readPackIndex(dir, pack.name);
        const dead = new Set<string>();
        let liveBytes = 0;
        for (const e of entries) {
          const hex = b3Hex(e.digest);
          if (marked.has(hex)) liveBytes += e.length + 40;
          else dead.add(hex);
        }
        let fate: Fate = 'keep';
        if (pack.sealed && pack.mtimeMs < graceCut && dead.size > 0) {
          if (liveBytes === 0) fate = 'delete';
          else if (1 - liveBytes / Math.max(pack.bytes, 1) > rewriteAbove) fate = 'rewrite';
        }
        const plan = { dir, pack, entries, fate, dead, copied: false, count: entries.length };
        if (fate !== 'keep') for (const hex of dead) condemned.set(`${kind}:${hex}`, [...(condemned.get(`${kind}:${hex}`) ?? []), plan]);
        out.push(plan);
      }
      return out;
    };
    const dirPlans = await planPacks(join(root, 'directory-packs'), 'dir', marks.dirs);
    planned.dir = true;
    // Memory: what stays needs no entries (a pack condemned later still has its own).
    const drop = (plan: PackPlan) => {
      plan.entries = [];
      plan.dead = new Set();
    };
    for (const plan of dirPlans) {
      if (plan.fate !== 'keep') continue;
      await markDeadDirs(plan);
      drop(plan);
    }
    for await (const f of looseObjects(root, 'directories')) {
      if (marks.dirs.has(f.hex)) continue;
      if (f.mtimeMs < graceCut) looseDoomed.set(`dir:${f.hex}`, f);
      else await marks.directory(Buffer.from(f.hex, 'hex'), false);
    }
    while (spare.length > 0) await spare.shift();
    const blobPlans = await planPacks(join(root, 'packs'), 'blob', marks.blobs);
    planned.blob = true;
    for (const plan of blobPlans) if (plan.fate === 'keep') drop(plan);
    for await (const f of looseObjects(root, 'blobs')) {
      if (!marks.blobs.has(f.hex) && f.mtimeMs < graceCut) looseDoomed.set(`blob:${f.hex}`, f);
    }
    plans.push(...dirPlans, ...blobPlans);

    const doomedPaths = [...paths.values()].filter((p) => !decision.kept.has(p.key));
    const count = () => {
      const deadObjects = { dir: new Set<string>(), blob: new Set<string>() };
      for (const [k] of looseDoomed) deadObjects[k.startsWith('dir:') ? 'dir' : 'blob'].add(k.slice(k.indexOf(':') + 1));
      for (const [k, ps] of condemned) if (ps.some((p) => p.fate !== 'keep')) deadObjects[k.startsWith('dir:') ? 'dir' : 'blob'].add(k.slice(k.indexOf(':') + 1));
      return { dirs: deadObjects.dir.size, blobs: deadObjects.blob.size };
    };
    const report = (after: number, copiedBytes: number, deletedPaths: typeof doomedPaths): GcReport => {
      const c = count();
      const deletedSet = new Set(deletedPaths.map((p) => p.key));
      return {
        dryRun: !!opts.dryRun,
        paths: { total: paths.size, kept: paths.size - deletedSet.size, deleted: deletedSet.size, keptNarBytes: decision.keptBytes },
        kept: [...paths.values()].filter((p) => !deletedSet.has(p.key)).map((p) => ({ path: p.name, reason: decision.kept.get(p.key) ?? 'late' })),
        deleted: deletedPaths.map((p) => p.name).sort(),
        directories: { deleted: c.dirs },
        blobs: { deleted: c.blobs },
        packs: { rewritten: plans.filter((p) => p.fate === 'rewrite').length, deleted: plans.filter((p) => p.fate === 'delete').length, liveBytesCopied: copiedBytes },
        bytes: { before, after, reclaimed: before - after },
        warnings,
        seconds: (Date.now() - t0) / 1000,
        peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      };
    };
    if (opts.dryRun) return report(before, 0, doomedPaths);

    // Copy the live records of packs to rewrite.
    let copiedBytes = 0;
    const rewrites = plans.filter((p) => p.fate === 'rewrite');
    if (rewrites.length > 0) log(`gc: rewriting ${rewrites.length} packs`);
    const targets = new Map<string, PackStore>();
    try {
      for (const plan of rewrites) {
        let target = targets.get(plan.dir);
        if (!target) targets.set(plan.dir, (target = new PackStore(plan.dir)));
        const live = plan.entries.filter((e) => !plan.dead.has(b3Hex(e.digest)));
        try {
          copiedBytes += await copyRecords(plan.dir, plan.pack.name, live, target);
          plan.copied = true;
        } catch (err) {
          warnings.push((err as Error).message);
          plan.fate = 'keep';
          if (plan.dir.endsWith('directory-packs')) await markDeadDirs(plan);
        }
      }
    } finally {
      for (const t of targets.values()) await t.close();
    }

    opts.signal?.throwIfAborted();
    // Fence: no PathInfo Put runs from here until the deletions are done.
    await writeFile(fence.deletingFile, `${process.pid}\n`);
    await writeFile(fence.epochFile, `${Number(fence.readEpoch()) + 1}\n`);
    const deadline = Date.now() + (opts.putWaitMs ?? 5 * 60_000);
    for (let wait = 5; fence.livePuts().length > 0; wait = Math.min(wait * 2, 200)) {
      if (Date.now() > deadline) throw new Error('PathInfo Puts in flight did not finish; nothing was deleted');
      await new Promise((r) => setTimeout(r, wait));
    }
    // What was stored or pinned while we marked is kept too.
    const lateKeys = new Set<string>();
    try {
      for (const line of (await readFile(fence.journalFile, 'utf8')).split('\n')) if (/^[0-9a-f]{40}$/.test(line)) lateKeys.add(line);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const k of pinnedKeys(await new DiskPins(layout).list())) if (paths.has(k) && !decision.kept.has(k)) lateKeys.add(k);
    const spared = new Set<string>();
    for (const key of lateKeys) {
      let data;
      try {
        data = await readFile(join(root, 'pathinfo', key.slice(0, 2), key));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      const info = PathInfoCodec.decode(data);
      spared.add(key);
      if (info.node) await marks.node(info.node, true);
      // Its closure is kept too, with its content.
      const todo = info.references.map((r) => Buffer.from(r).toString('hex'));
      while (todo.length > 0) {
        const k = todo.pop()!;
        if (spared.has(k)) continue;
        spared.add(k);
        const p = paths.get(k);
        if (!p || decision.kept.has(k)) continue;
        await marks.node(p.node, true);
        todo.push(...p.refs);
      }
    }
    // Directories stored since the plans were made survive, and so does what they refer to.
    const plannedEntries = new Map(dirPlans.map((p) => [p.pack.name, p.count]));
    for (const pack of await listPacks(join(root, 'directory-packs'))) {
      if (pack.orphan) continue;
      const entries = await readPackIndex(join(root, 'directory-packs'), pack.name);
      for (const e of entries.slice(plannedEntries.get(pack.name) ?? 0)) await marks.directory(e.digest, false);
    }
    while (spare.length > 0) await spare.shift();
    opts.signal?.throwIfAborted();
    if (!lock.stillHeld()) throw new Error('another collector took the lock over; nothing was deleted');

    // Delete: PathInfos first (recorded first, for PathInfo Puts that refer to them).
    log('gc: deleting');
    const deletedPaths = doomedPaths.filter((p) => !spared.has(p.key));
    fence.recordDeleted(fence.readEpoch(), deletedPaths.map((p) => p.key));
    const shardDirs = new Set<string>();
    for (const p of deletedPaths) {
      await unlink(p.file).catch((err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      });
      shardDirs.add(dirname(p.file));
      await forgetAccess(root, p.key);
    }
    await Promise.all([...shardDirs].map(syncDir));
    // Referrers before what they refer to: every directory (loose or packed)
    // goes before any blob, so a collection killed in between leaves no
    // directory record pointing at a deleted blob.
    const unlinkLoose = async (kind: Kind): Promise<void> => {
      for (const [key, f] of looseDoomed) {
        if (!key.startsWith(`${kind}:`)) continue;
        await unlink(f.file).catch((err) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        });
      }
    };
    const isDirPack = (plan: PackPlan): boolean => plan.dir.endsWith('directory-packs');
    await unlinkLoose('dir');
    for (const plan of plans) if (plan.fate !== 'keep' && isDirPack(plan)) await removePack(plan.dir, plan.pack.name);
    await unlinkLoose('blob');
    for (const plan of plans) if (plan.fate !== 'keep' && !isDirPack(plan)) await removePack(plan.dir, plan.pack.name);
    const after = await diskUsage(root);
    return report(after, copiedBytes, deletedPaths);
  } finally {
    if (!opts.dryRun) {
      for (const f of [fence.deletingFile, fence.markingFile, fence.journalFile]) await rm(f, { force: true }).catch(() => {});
    }
    await directories.close();
    lock.release();
  }
}

