// The mark sets of a collection: directories and blobs reachable from kept
// PathInfos (and from directories that survive anyway), as binary digests
// in sets bounded by a memory budget that spill to scratch files beyond it
// (util/spilling-digest-set.ts). A directory found in the in-memory set is
// not walked again; one that went to disk may be walked again — slower,
// never wrong, so directory marks stay exact. Whether an object is marked
// is then asked bucket by bucket (`dirs.bucket(b)`, `blobs.bucket(b)`).
import type { Directory, Node } from '../castore/messages.js';
import { b3String } from '../castore/digest.js';
import { DigestTable } from '../util/digest-table.js';
import { SpillingDigestSet } from '../util/spilling-digest-set.js';

export type Kind = 'dir' | 'blob';

/** Directories read at once while walking. */
const LOAD_AHEAD = 16;

/** Where the walk reads directories (a missing one is undefined). */
export interface DirectoryReader {
  get(digest: Uint8Array): Promise<Directory | undefined>;
}

export interface MarksOptions {
  /** Memory for both sets together (the rest spills). */
  budgetBytes: number;
  /** Where scratch files go (default: the OS temp directory). */
  scratchDir?: string;
}

export class Marks {
  readonly dirs: SpillingDigestSet;
  readonly blobs: SpillingDigestSet;
  /**
   * When set, every object a walk newly marks is recorded here too: marks
   * made after the collector decided what to delete, which spare it.
   */
  late: { dirs: DigestTable; blobs: DigestTable } | undefined;

  constructor(
    private readonly directories: DirectoryReader,
    opts: MarksOptions,
  ) {
    // Blobs outnumber directories several times over.
    this.dirs = new SpillingDigestSet('dirs', Math.floor(opts.budgetBytes * 0.35), opts.scratchDir);
    this.blobs = new SpillingDigestSet('blobs', Math.floor(opts.budgetBytes * 0.65), opts.scratchDir);
  }

  /** From now on, records what walks mark (see `late`). */
  recordLate(): { dirs: DigestTable; blobs: DigestTable } {
    return (this.late ??= { dirs: new DigestTable(), blobs: new DigestTable() });
  }

  /** Marks a PathInfo's root node and everything under it; a missing directory throws (`strict`) or is skipped. */
  async node(node: Node, strict: boolean): Promise<void> {
    if (node.type === 'file') this.blob(node.digest);
    else if (node.type === 'directory') await this.directory(node.digest, strict);
  }

  blob(d: Uint8Array): void {
    if (d.length === 32 && this.blobs.add(d)) this.late?.blobs.add(d);
  }

  /** Marks a directory and its closure (children already marked, in memory, are not walked again). */
  async directory(root: Uint8Array, strict: boolean): Promise<void> {
    if (!this.markDir(root)) return;
    const stack: Uint8Array[] = [root];
    while (stack.length > 0) {
      // A few loaded at once: each read is a round trip (thread pool, database).
      const batch = stack.splice(Math.max(0, stack.length - LOAD_AHEAD));
      const dirs = await Promise.all(batch.map((d) => this.directories.get(d)));
      for (let i = 0; i < batch.length; i++) {
        const dir = dirs[i];
        if (!dir) {
          if (strict) throw new Error(`directory ${b3String(batch[i])} of a kept path is missing: the store is damaged (run fsck); nothing was deleted`);
          continue;
        }
        for (const f of dir.files) this.blob(f.digest);
        for (const c of dir.directories) if (this.markDir(c.digest)) stack.push(c.digest);
      }
      await this.dirs.drain();
      await this.blobs.drain();
    }
  }

  async dispose(): Promise<void> {
    await this.dirs.dispose();
    await this.blobs.dispose();
  }

  private markDir(d: Uint8Array): boolean {
    if (d.length !== 32 || !this.dirs.add(d)) return false;
    this.late?.dirs.add(d);
    return true;
  }
}
