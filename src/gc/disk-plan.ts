// What a collection of an on-disk store deletes, decided from the marks
// without holding a per-object structure in memory: every pack index entry
// goes to a bucketed spill (digest, pack, entry, length), and each bucket
// is joined with the marks of that bucket (loose files are sharded the
// same way). A pack's fate comes from its live bytes; which of its entries
// are live is one bit each. Directories first, until nothing changes: the
// dead directories of packs that stay (and young loose ones) survive, so
// what they refer to is marked too, which may spare more. Blobs after.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { listPacks, type PackFile } from '../castore/disk/pack-gc.js';
import { RecordSpill } from '../util/record-spill.js';
import { DigestTable } from '../util/digest-table.js';
import type { DigestLookup } from '../util/spilling-digest-set.js';
import { damagedIndex, forEachIndexEntry } from './pack-index-stream.js';
import type { Kind, Marks } from './marks.js';

export type Fate = 'keep' | 'rewrite' | 'delete';

export interface PackPlan {
  dir: string;
  kind: Kind;
  pack: PackFile;
  /** Entries in its index when planned (a pack that grows later keeps the rest). */
  count: number;
  /** Bit i: entry i was marked when the fate was decided. */
  live: Uint8Array;
  liveCount: number;
  liveBytes: number;
  fate: Fate;
  copied: boolean;
  /** A bad index entry with good ones after it: the pack is kept whole (fail closed). */
  damaged?: boolean;
}

export interface PlanOptions {
  /** Objects written since then are left for a later collection. */
  graceCut: number;
  /** Rewrite a sealed pack when more than this share of it is garbage. */
  rewriteAbove: number;
  /** Memory for the pack entries and doomed files held before they spill. */
  budgetBytes: number;
  scratchDir: string;
}

const ENTRY = 44; // digest 32 | plan u32 | entry u32 | length u32
const KIND_DIR: Record<Kind, { packs: string; loose: string }> = {
  dir: { packs: 'directory-packs', loose: 'directories' },
  blob: { packs: 'packs', loose: 'blobs' },
};
const HEX64 = /^[0-9a-f]{64}$/;

export const isLive = (plan: PackPlan, i: number): boolean => (plan.live[i >> 3] & (1 << (i & 7))) !== 0;

export class DiskPlan {
  readonly plans: PackPlan[] = [];
  private readonly entries: Record<Kind, RecordSpill>;
  /** Loose files to delete (digests), by kind. */
  doomedLoose: Record<Kind, RecordSpill>;

  constructor(
    private readonly root: string,
    private readonly marks: Marks,
    private readonly opts: PlanOptions,
  ) {
    const spill = (name: string, len: number) => new RecordSpill(`nix-castore-gc-${name}-`, len, Math.floor(opts.budgetBytes / 4), opts.scratchDir);
    this.entries = { dir: spill('dir-entries', ENTRY), blob: spill('blob-entries', ENTRY) };
    this.doomedLoose = { dir: spill('doomed-dirs', 32), blob: spill('doomed-blobs', 32) };
  }

  /** Whether a list went to scratch files. */
  get spilled(): boolean {
    return [this.entries.dir, this.entries.blob, this.doomedLoose.dir, this.doomedLoose.blob].some((s) => s.spilled);
  }

  ofKind(kind: Kind): PackPlan[] {
    return this.plans.filter((p) => p.kind === kind);
  }

  /** Directories' fates, marking from the survivors until nothing changes. */
  async planDirectories(): Promise<void> {
    const plans = await this.listKind('dir');
    const walked = new Set<PackPlan>();
    for (let first = true; ; first = false) {
      const young: Buffer[] = [];
      await this.join('dir', plans, (d) => void (first && young.push(d)));
      const survivors = plans.filter((p) => p.fate === 'keep' && p.liveCount < p.count && !walked.has(p));
      if (survivors.length === 0 && young.length === 0) return;
      for (const plan of survivors) {
        walked.add(plan);
        await this.walkDead(plan);
      }
      for (const d of young) await this.marks.directory(d, false);
    }
  }

  async planBlobs(): Promise<void> {
    await this.join('blob', await this.listKind('blob'), () => {});
  }

  /** Marks from every entry of `plan` not live when it was planned (its dead directories survive). */
  async walkDead(plan: PackPlan): Promise<void> {
    await forEachIndexEntry(plan.dir, plan.pack.name, (b, at, i) => {
      if (i < plan.count && !isLive(plan, i)) return this.marks.directory(Buffer.from(b.subarray(at, at + 32)), false);
    });
  }

  /** Distinct objects of `kind` that the plans delete, less those in `spared`. */
  async countDead(kind: Kind, spared?: DigestLookup): Promise<number> {
    let n = 0;
    for (let b = 0; b < 256; b++) {
      const t = new DigestTable(64);
      const recs = await this.entries[kind].records(b);
      for (let at = 0; at < recs.length; at += ENTRY) {
        const plan = this.plans[recs.readUInt32LE(at + 32)];
        if (plan.fate !== 'keep' && !isLive(plan, recs.readUInt32LE(at + 36))) t.add(recs, at);
      }
      const loose = await this.doomedLoose[kind].records(b);
      for (let at = 0; at < loose.length; at += 32) if (!spared?.has(loose, at)) t.add(loose, at);
      n += t.size;
    }
    return n;
  }

  async dispose(): Promise<void> {
    for (const s of [this.entries.dir, this.entries.blob, this.doomedLoose.dir, this.doomedLoose.blob]) await s.dispose();
  }

  /** The packs of a kind, each index entry into the spill. */
  private async listKind(kind: Kind): Promise<PackPlan[]> {
    const dir = join(this.root, KIND_DIR[kind].packs);
    const out: PackPlan[] = [];
    const rec = Buffer.alloc(ENTRY);
    for (const pack of await listPacks(dir)) {
      const no = this.plans.length;
      const plan: PackPlan = { dir, kind, pack, count: 0, live: new Uint8Array(0), liveCount: 0, liveBytes: 0, fate: 'keep', copied: false };
      if (!pack.orphan) {
        plan.count = await forEachIndexEntry(dir, pack.name, (b, at, i, _offset, length) => {
          b.copy(rec, 0, at, at + 32);
          rec.writeUInt32LE(no, 32);
          rec.writeUInt32LE(i, 36);
          rec.writeUInt32LE(length, 40);
          return this.entries[kind].add(rec);
        });
        plan.damaged = await damagedIndex(dir, pack.name, plan.count);
      }
      plan.live = new Uint8Array((plan.count + 7) >> 3);
      this.plans.push(plan);
      out.push(plan);
    }
    return out;
  }

  /**
   * Joins the marks with the packs' entries and the loose files, bucket by
   * bucket; decides the packs' fates (once kept, kept) and which loose
   * files go. `young`: an unmarked loose file written within the grace period.
   */
  private async join(kind: Kind, plans: PackPlan[], young: (d: Buffer) => void): Promise<void> {
    for (const p of plans) {
      p.live.fill(0);
      p.liveCount = 0;
      p.liveBytes = 0;
    }
    await this.doomedLoose[kind].dispose();
    this.doomedLoose[kind] = new RecordSpill(`nix-castore-gc-doomed-${kind}s-`, 32, Math.floor(this.opts.budgetBytes / 4), this.opts.scratchDir);
    const marked = kind === 'dir' ? this.marks.dirs : this.marks.blobs;
    const looseBase = join(this.root, KIND_DIR[kind].loose);
    for (let b = 0; b < 256; b++) {
      const set = await marked.bucket(b);
      const recs = await this.entries[kind].records(b);
      for (let at = 0; at < recs.length; at += ENTRY) {
        if (!set.has(recs, at)) continue;
        const plan = this.plans[recs.readUInt32LE(at + 32)];
        const i = recs.readUInt32LE(at + 36);
        if (isLive(plan, i)) continue;
        plan.live[i >> 3] |= 1 << (i & 7);
        plan.liveCount++;
        plan.liveBytes += recs.readUInt32LE(at + 40) + 40;
      }
      const shard = join(looseBase, b.toString(16).padStart(2, '0'));
      for (const name of await listOrEmpty(shard)) {
        if (!HEX64.test(name)) continue; // not an object: left alone
        const d = Buffer.from(name, 'hex');
        if (set.has(d)) continue;
        let mtimeMs;
        try {
          mtimeMs = (await lstat(join(shard, name))).mtimeMs;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        if (mtimeMs >= this.opts.graceCut) young(d);
        else {
          const w = this.doomedLoose[kind].add(d);
          if (w) await w;
        }
      }
    }
    for (const p of plans) p.fate = this.fateOf(p);
  }

  private fateOf(p: PackPlan): Fate {
    const { pack } = p;
    if (pack.orphan) return pack.mtimeMs < this.opts.graceCut ? 'delete' : 'keep';
    // Copying the entries before a damaged one and removing the pack would lose the acknowledged records after it.
    if (p.damaged) return 'keep';
    if (p.liveCount === p.count || !pack.sealed || pack.mtimeMs >= this.opts.graceCut) return 'keep';
    if (p.liveBytes === 0) return 'delete';
    return 1 - p.liveBytes / Math.max(pack.bytes, 1) > this.opts.rewriteAbove ? 'rewrite' : 'keep';
  }
}

async function listOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}
