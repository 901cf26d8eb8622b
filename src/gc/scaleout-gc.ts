// The garbage collector of a scale-out store (S3 + PostgreSQL). Safe first:
//   1. one collector per store: a PostgreSQL advisory lock (pg-gc.ts);
//   2. phase `marking` is set before the PathInfos are read, so every
//      PathInfo stored later is journalled (pg-gc-fence.ts);
//   3. pins and PathInfos are read completely or nothing is deleted;
//   4. mark from the kept PathInfos and from directory rows younger than
//      --grace (they survive, so what they need survives);
//   5. fence: phase `deleting` (waits for PathInfo Puts in flight, bumps the
//      epoch so Puts checked before fail), then mark what the journal and
//      the pins name now;
//   6. delete PathInfo rows (recorded in gc_deleted, so a later Put that
//      refers to one is refused), then unmarked directory and blob rows older
//      than --grace; back to phase idle (no row is deleted after this);
//   7. rewrite packs more than a quarter dead (scaleout/pack-rewrite.ts),
//      then delete S3 objects no blob row names and older than --grace
//      (retired packs once retired for --grace), then multipart uploads
//      begun before --grace.
// Killed anywhere, the store stays consistent: the lock and the phase die
// with the session; at worst garbage is left for the next collection.
import { openPgIndex } from '../scaleout/pg-index.js';
import { parseS3Addr } from '../scaleout/addr.js';
import { GC_LOCK_HELD, PgGc } from '../scaleout/pg-gc.js';
import { fenceEpoch } from '../scaleout/pg-gc-fence.js';
import { digestArrayLookup } from '../scaleout/pg-digests.js';
import { PgDirectoryService } from '../scaleout/pg-directory-service.js';
import { S3Objects } from '../scaleout/s3-objects.js';
import { abortStaleUploads, listObjects, type StoredObject } from '../scaleout/s3-gc.js';
import { packsToRewrite, rewritePacks } from '../scaleout/pack-rewrite.js';
import type { Node } from '../castore/messages.js';
import { DEFAULT_GC_MEMORY, decideWithPins, pinnedKeys, type PathRecord, type PolicyOptions } from './policy.js';
import { Marks } from './marks.js';
import { tmpdir } from 'node:os';
import type { GcReport } from './report.js';

export interface ScaleoutGcOptions extends PolicyOptions {
  dryRun?: boolean;
  log?: (msg: string) => void;
  signal?: AbortSignal;
  /** Memory for the mark sets; beyond it they spill to scratch files under TMPDIR. */
  memoryBytes?: number;
  /** Tests: runs after marking, before the fence (a PathInfo Put racing the collection). */
  beforeFence?: () => Promise<void>;
  /** Tests: runs in the delete phase, after the pins were read, before anything is deleted. */
  beforeDelete?: () => Promise<void>;
  /** Tests: runs after packs are rewritten, before objects are swept (retired packs still there). */
  beforeSweep?: () => Promise<void>;
}

interface ScaledPath extends PathRecord {
  node: Node;
  digest: Buffer;
}

export async function collectScaleout(addr: string, opts: ScaleoutGcOptions): Promise<GcReport> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const loc = parseS3Addr(addr);
  const gc = await PgGc.open(loc.indexUrl);
  const s3 = new S3Objects(loc);
  const directories = new PgDirectoryService(loc.indexUrl);
  const warnings: string[] = [];
  // Rows and objects are judged by the servers' times: real time, whatever the policy's clock.
  const graceCut = Date.now() - opts.graceMs;
  let disposeMarks = async (): Promise<void> => {};
  try {
    let before = 0;
    for await (const o of listObjects(s3)) before += o.size;
    if (!opts.dryRun) await gc.setPhase('marking');

    log('gc: reading pins and PathInfos');
    const paths = new Map<string, ScaledPath>();
    for await (const { digest, info, pushedMs, readMs } of gc.pathInfos()) {
      const key = digest.toString('hex');
      if (!info.node) throw new Error(`PathInfo ${key}: no root node; nothing was deleted`);
      paths.set(key, {
        key,
        name: Buffer.from(info.node.name).toString('utf8'),
        refs: info.references.map((r) => Buffer.from(r).toString('hex')),
        narSize: info.narinfo?.narSize ?? 0,
        pushedMs,
        readMs, // pathinfos.read_at, recorded by the daemons serving the store (scaleout/pg-reads.ts)
        node: info.node,
        digest,
      });
    }
    const decision = decideWithPins(paths, await gc.pins(), opts, warnings);

    opts.signal?.throwIfAborted();
    log(`gc: marking from ${decision.kept.size} kept paths`);
    const marks = new Marks(directories, { budgetBytes: opts.memoryBytes ?? DEFAULT_GC_MEMORY, scratchDir: tmpdir() });
    disposeMarks = () => marks.dispose();
    for (const key of decision.kept.keys()) await marks.node(paths.get(key)!.node, true);
    for await (const d of gc.youngDirectories(graceCut)) await marks.directory(d, false);
    const doomed = [...paths.values()].filter((p) => !decision.kept.has(p.key));

    const report = (after: number, deletedPaths: ScaledPath[], dirs: number, blobs: number, objects: number, rewrite = { rewritten: 0, liveBytesCopied: 0 }): GcReport => {
      const gone = new Set(deletedPaths.map((p) => p.key));
      return {
        dryRun: !!opts.dryRun,
        paths: { total: paths.size, kept: paths.size - gone.size, deleted: gone.size, keptNarBytes: decision.keptBytes },
        kept: [...paths.values()].filter((p) => !gone.has(p.key)).map((p) => ({ path: p.name, reason: decision.kept.get(p.key) ?? 'late' })),
        deleted: deletedPaths.map((p) => p.name).sort(),
        directories: { deleted: dirs },
        blobs: { deleted: blobs },
        packs: { rewritten: rewrite.rewritten, deleted: objects, liveBytesCopied: rewrite.liveBytesCopied },
        bytes: { before, after, reclaimed: before - after },
        warnings,
        seconds: (Date.now() - t0) / 1000,
        peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
        memory: { budgetBytes: opts.memoryBytes ?? DEFAULT_GC_MEMORY, spilled: marks.dirs.spilled || marks.blobs.spilled },
      };
    };
    if (opts.dryRun) {
      let [dirs, blobs] = [0, 0];
      const dying = new Map<string, number>();
      for await (const page of gc.unmarked('directories', graceCut, marks.dirs)) dirs += page.length;
      for await (const page of gc.unmarked('blobs', graceCut, marks.blobs)) {
        blobs += page.length;
        for (const [o, n] of await gc.bytesByObject(page)) dying.set(o, (dying.get(o) ?? 0) + n);
      }
      const old: StoredObject[] = [];
      for await (const o of listObjects(s3)) if (o.modifiedMs < graceCut) old.push(o);
      const rewrite = await packsToRewrite(gc, old, dying);
      return report(before, doomed, dirs, blobs, 0, { rewritten: rewrite.length, liveBytesCopied: rewrite.reduce((n, p) => n + p.live, 0) });
    }

    await opts.beforeFence?.();
    opts.signal?.throwIfAborted();
    // Fence: waits for PathInfo Puts in flight; later ones are refused until we are done.
    await gc.setPhase('deleting');
    const spared = new Set<string>();
    const late = [...(await gc.journal()).map((d) => d.toString('hex')), ...pinnedKeys(await gc.pins(), paths, warnings)].filter((k) => !decision.kept.has(k));
    const todo = [...late];
    while (todo.length > 0) {
      const k = todo.pop()!;
      if (spared.has(k) || decision.kept.has(k)) continue;
      spared.add(k);
      const info = await gc.pathInfo(Buffer.from(k, 'hex'));
      if (!info?.node) continue;
      await marks.node(info.node, true);
      todo.push(...info.references.map((r) => Buffer.from(r).toString('hex')));
    }
    opts.signal?.throwIfAborted();

    await opts.beforeDelete?.();
    log('gc: deleting');
    const deletedPaths = doomed.filter((p) => !spared.has(p.key));
    await gc.deletePathInfos(deletedPaths.map((p) => p.digest));
    // Page by page, as the join finds them (directories first: they refer to blobs).
    let [dirs, blobs] = [0, 0];
    for await (const page of gc.unmarked('directories', graceCut, marks.dirs)) dirs += await gc.deleteRows('directories', page);
    for await (const page of gc.unmarked('blobs', graceCut, marks.blobs)) blobs += await gc.deleteRows('blobs', page);
    // No row is deleted from here on: PathInfo Puts may go on while packs are rewritten and objects deleted.
    await gc.setPhase('idle');
    const old: StoredObject[] = [];
    for await (const o of listObjects(s3)) if (o.modifiedMs < graceCut) old.push(o);
    const rewrite = await rewritePacks(gc, s3, await packsToRewrite(gc, old), { log });
    warnings.push(...rewrite.warnings);
    await opts.beforeSweep?.();
    const objects = await sweepObjects(gc, s3, old, opts.graceMs);
    let after = 0;
    for await (const o of listObjects(s3)) after += o.size;
    const aborted = await abortStaleUploads(s3, graceCut);
    if (aborted > 0) log(`gc: aborted ${aborted} multipart uploads begun before --grace`);
    return report(after, deletedPaths, dirs, blobs, objects, rewrite);
  } finally {
    await disposeMarks();
    await directories.close();
    s3.close();
    await gc.close();
  }
}

/**
 * Deletes the objects of `old` (older than --grace) that no blob row names:
 * orphans, and packs a rewrite retired at least --grace ago. Returns how many.
 */
async function sweepObjects(gc: PgGc, s3: S3Objects, old: StoredObject[], graceMs: number): Promise<number> {
  const named = await gc.referenced(old.map((o) => o.object));
  const retired = await gc.retired();
  // Judged now, not at the start: with --grace 0 a pack retired by this collection goes too.
  const cut = Date.now() - graceMs;
  const forget: string[] = [];
  let n = 0;
  for (const o of old) {
    if (named.has(o.object)) continue;
    const at = retired.get(o.object);
    if (at !== undefined && at > cut) continue; // reads may still hold its old rows
    await s3.delete(o.object);
    n++;
    if (at !== undefined) forget.push(o.object);
  }
  // Retired packs already gone (a collector killed between its delete and this).
  const listed = new Set(old.map((o) => o.object));
  for (const [object, at] of retired) if (!listed.has(object) && at <= cut) forget.push(object);
  await gc.forgetRetired(forget);
  return n;
}

/** Which of the paths in $1 the store holds (a pin of a large closure names thousands: probes, not a scan). */
export const PINNED_PRESENT_SQL = `SELECT k.d AS digest FROM ${digestArrayLookup(1, 'pathinfos', 'p', '1')}`;

const SET_PIN_SQL = 'INSERT INTO gc_pins (name, paths) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET paths = EXCLUDED.paths';

/** Pins of a scale-out store, in PostgreSQL. */
export async function scaleoutPins(addr: string) {
  const db = openPgIndex(parseS3Addr(addr).indexUrl);
  return {
    /**
     * Sets the pin if the store holds every path; else sets nothing and
     * returns the paths it lacks. Fenced like a PathInfo Put
     * (pg-gc-fence.ts): waits out a collector's delete phase, then checks
     * and sets in one transaction holding gc_state FOR SHARE, so a
     * collector either finished deleting before the check or reads this
     * pin when it enters `deleting`.
     */
    setIfPresent: async (name: string, paths: string[], digests: Buffer[]): Promise<string[]> => {
      for (;;) {
        await fenceEpoch(db);
        const absent = await db.transaction(async (c) => {
          const r = await c.query<{ phase: string }>(`SELECT CASE WHEN ${GC_LOCK_HELD} THEN phase ELSE 'idle' END AS phase FROM gc_state WHERE id = 1 FOR SHARE`);
          if (r.rows[0]?.phase === 'deleting') return undefined; // entered since fenceEpoch looked
          const have = new Set((await c.query<{ digest: Buffer }>(PINNED_PRESENT_SQL, [digests])).rows.map((row) => row.digest.toString('hex')));
          const lacking = paths.filter((_, i) => !have.has(digests[i].toString('hex')));
          if (lacking.length === 0) await c.query(SET_PIN_SQL, [name, paths]);
          return lacking;
        });
        if (absent !== undefined) return absent;
      }
    },
    remove: async (name: string) => ((await db.query('DELETE FROM gc_pins WHERE name = $1', [name])).rowCount ?? 0) > 0,
    list: async () => (await db.query<{ name: string; paths: string[] }>('SELECT name, paths FROM gc_pins ORDER BY name')).rows,
    close: () => db.release(),
  };
}
