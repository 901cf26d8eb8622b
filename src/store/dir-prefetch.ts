// Directories for NAR rendering, loaded ahead of the walk: when a directory
// arrives, its subdirectories are asked for at once (a store that batches
// lookups made together, like PostgreSQL, answers them in one query), and
// with them the real sizes of its files where the blob index has them.
// Bounded by how many directories and entries wait unvisited.
import type { BlobService } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import type { Directory, Node } from '../castore/messages.js';
import { b3Hex, b3String } from '../castore/digest.js';
import { storageError } from '../castore/errors.js';

export interface LoadedDir {
  /** In NAR order. */
  entries: Node[];
  /** With sizes: each file entry's blob size from the index (undefined: absent); others undefined. */
  sizes?: (number | undefined)[];
}

const MAX_DIRS_AHEAD = 512;
const MAX_ENTRIES_AHEAD = 65_536;

export function sortedEntries(d: Directory): Node[] {
  const all: Node[] = [
    ...d.directories.map((n) => ({ type: 'directory' as const, ...n })),
    ...d.files.map((n) => ({ type: 'file' as const, ...n })),
    ...d.symlinks.map((n) => ({ type: 'symlink' as const, ...n })),
  ];
  return all.sort((a, b) => Buffer.compare(a.name, b.name));
}

export class DirPrefetch {
  /** Loads started ahead and not taken yet, with their entry counts once known. */
  private readonly ahead = new Map<string, { p: Promise<LoadedDir>; entries: number }>();
  private entriesAhead = 0;
  private stopped = false;

  constructor(
    private readonly dirs: DirectoryService,
    private readonly blobs: BlobService,
    private readonly withSizes: boolean,
  ) {}

  /** The directory, from the loads ahead or loaded now. */
  take(digest: Uint8Array): Promise<LoadedDir> {
    const key = b3Hex(digest);
    const a = this.ahead.get(key);
    if (!a) return this.load(digest);
    this.ahead.delete(key);
    this.entriesAhead -= a.entries;
    return a.p;
  }

  /** No more loads ahead (already running ones finish unobserved). */
  stop(): void {
    this.stopped = true;
    this.ahead.clear();
  }

  private startAhead(digest: Uint8Array): void {
    if (this.stopped || this.ahead.size >= MAX_DIRS_AHEAD || this.entriesAhead >= MAX_ENTRIES_AHEAD) return;
    const key = b3Hex(digest);
    if (this.ahead.has(key)) return;
    const a = { p: this.load(digest), entries: 0 };
    a.p.then(
      (d) => {
        if (this.ahead.get(key) !== a) return; // taken (or stopped) meanwhile
        a.entries = d.entries.length;
        this.entriesAhead += a.entries;
      },
      () => {}, // seen by whoever takes it
    );
    this.ahead.set(key, a);
  }

  private async load(digest: Uint8Array): Promise<LoadedDir> {
    const dir = await this.dirs.get(digest);
    if (!dir) throw storageError(`directory ${b3String(digest)} not found`);
    const entries = sortedEntries(dir);
    // In NAR order, so the walk's next directories are the first asked for.
    for (const e of entries) if (e.type === 'directory') this.startAhead(e.digest);
    const sizeOf = this.withSizes ? this.blobs.sizeOf?.bind(this.blobs) : undefined;
    if (!sizeOf) return { entries };
    const sizes = await Promise.all(entries.map((e) => (e.type === 'file' ? sizeOf(e.digest) : undefined)));
    return { entries, sizes };
  }
}
