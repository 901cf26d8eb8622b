// Directories for NAR rendering, loaded ahead of the walk in the order the
// walk (depth first) will want them: each known directory not loaded yet
// waits with its place in that order (the path of entry indices from the
// root), and loads start with the earliest while fewer than MAX_DIRS_AHEAD
// wait unvisited; a load further on gives way to an earlier one (a wide
// directory's siblings must not keep the walk's next subdirectories out).
// Loads started together are asked for together (a store that batches
// lookups made in one turn, like PostgreSQL, answers them in one query),
// and with each directory the real sizes of its files where the blob index
// has them.
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

/**
 * Directories loaded ahead and not taken yet. Their memory is bounded by
 * MAX_ENTRIES_AHEAD once loaded and by MAX_LOADING while loading (a size is
 * known only then). At 256 in all, the bench's /usr/share (3,420
 * directories) dropped 1,475 loads for room and loaded them again.
 */
const MAX_DIRS_AHEAD = 4096;
const MAX_LOADING = 256;
const MAX_ENTRIES_AHEAD = 65_536;
/** Directories known and not loaded yet, at most (the rest load when the walk gets there). */
const MAX_WANTED = 65_536;
/**
 * Directories taken lately, kept by digest up to this many entries: a
 * tree holds the same directory at several places (the bench's /usr/share:
 * 467 of 3,420), and each such place used to wait for a fresh load (two
 * queries) because the load ahead had gone to the first place.
 */
const RECENT_ENTRIES = 16_384;
const RECENT_DIRS = 1024;

export function sortedEntries(d: Directory): Node[] {
  const all: Node[] = [
    ...d.directories.map((n) => ({ type: 'directory' as const, ...n })),
    ...d.files.map((n) => ({ type: 'file' as const, ...n })),
    ...d.symlinks.map((n) => ({ type: 'symlink' as const, ...n })),
  ];
  return all.sort((a, b) => Buffer.compare(a.name, b.name));
}

interface Ahead {
  p: Promise<LoadedDir>;
  /** Known once loaded. */
  entries: number;
  digest: Uint8Array;
  place: number[];
}

export class DirPrefetch {
  /** Loads started ahead and not taken yet, with their entry counts once known. */
  private readonly ahead = new Map<string, Ahead>();
  private entriesAhead = 0;
  /** Loads ahead not finished yet (taken or not). */
  private loading = 0;
  /** Directories to load ahead, by their place in the walk. */
  private wanted = new PlaceHeap();
  /** Directories the walk loaded itself before their turn came here: skipped once. */
  private readonly passed = new Map<string, number>();
  private stopped = false;
  /** Taken lately, least recently used first (Map order), with their entry counts. */
  private readonly recent = new Map<string, { p: Promise<LoadedDir>; entries: number }>();
  private recentEntries = 0;

  constructor(
    private readonly dirs: DirectoryService,
    private readonly blobs: BlobService,
    private readonly withSizes: boolean,
  ) {}

  /** The directory at `place` in the walk, from the loads ahead, the ones taken lately, or loaded now. */
  take(digest: Uint8Array, place: number[]): Promise<LoadedDir> {
    const key = b3Hex(digest);
    const a = this.ahead.get(key);
    if (a) {
      this.ahead.delete(key);
      this.entriesAhead -= a.entries;
      this.fill();
      return this.keep(key, a.p);
    }
    // The walk got here first: its turn in `wanted`, if any, is skipped.
    if (this.passed.size < MAX_WANTED) this.passed.set(key, (this.passed.get(key) ?? 0) + 1);
    const r = this.recent.get(key);
    if (r) {
      this.recent.delete(key); // most recently used: to the end
      this.recent.set(key, r);
      return r.p;
    }
    const p = this.load(digest, place);
    this.fill();
    return this.keep(key, p);
  }

  /** Remembers a taken directory once loaded, within RECENT_ENTRIES / RECENT_DIRS. */
  private keep(key: string, p: Promise<LoadedDir>): Promise<LoadedDir> {
    p.then(
      (d) => {
        if (this.stopped || this.recent.has(key) || d.entries.length > RECENT_ENTRIES) return;
        this.recent.set(key, { p, entries: d.entries.length });
        this.recentEntries += d.entries.length;
        for (const [k, old] of this.recent) {
          if (this.recentEntries <= RECENT_ENTRIES && this.recent.size <= RECENT_DIRS) break;
          this.recent.delete(k);
          this.recentEntries -= old.entries;
        }
      },
      () => {}, // seen by whoever took it
    );
    return p;
  }

  /** No more loads ahead (already running ones finish unobserved). */
  stop(): void {
    this.stopped = true;
    this.ahead.clear();
    this.recent.clear();
    this.wanted = new PlaceHeap();
  }

  private full(): boolean {
    return this.ahead.size >= MAX_DIRS_AHEAD || this.entriesAhead >= MAX_ENTRIES_AHEAD;
  }

  /** Starts the earliest wanted loads while there is room, or room made by dropping later ones. */
  private fill(): void {
    while (!this.stopped && this.wanted.size > 0 && this.loading < MAX_LOADING) {
      if (this.full()) {
        const last = this.latest();
        if (!last || !before(this.wanted.peek()!.place, last[1].place)) return;
        this.ahead.delete(last[0]);
        this.entriesAhead -= last[1].entries;
        this.wanted.push(last[1].digest, last[1].place); // loaded again when its turn comes
      }
      const { digest, place } = this.wanted.pop()!;
      const key = b3Hex(digest);
      const skip = this.passed.get(key);
      if (skip !== undefined) {
        if (skip > 1) this.passed.set(key, skip - 1);
        else this.passed.delete(key);
        continue;
      }
      if (this.ahead.has(key) || this.recent.has(key)) continue;
      this.loading++;
      const a: Ahead = { p: this.load(digest, place), entries: 0, digest, place };
      a.p.then(
        (d) => {
          this.loading--;
          if (this.ahead.get(key) === a) {
            a.entries = d.entries.length;
            this.entriesAhead += a.entries;
          } // else taken (or dropped) meanwhile
          this.fill();
        },
        () => {
          this.loading--; // the error is seen by whoever takes it
          this.fill();
        },
      );
      this.ahead.set(key, a);
    }
  }

  /** The load ahead furthest in the walk. */
  private latest(): [string, Ahead] | undefined {
    let last: [string, Ahead] | undefined;
    for (const e of this.ahead) if (!last || before(last[1].place, e[1].place)) last = e;
    return last;
  }

  private async load(digest: Uint8Array, place: number[]): Promise<LoadedDir> {
    const dir = await this.dirs.get(digest);
    if (!dir) throw storageError(`directory ${b3String(digest)} not found`);
    const entries = sortedEntries(dir);
    if (!this.stopped) {
      entries.forEach((e, i) => {
        if (e.type === 'directory' && this.wanted.size < MAX_WANTED) this.wanted.push(e.digest, [...place, i]);
      });
      this.fill();
    }
    const sizeOf = this.withSizes ? this.blobs.sizeOf?.bind(this.blobs) : undefined;
    if (!sizeOf) return { entries };
    const sizes = await Promise.all(entries.map((e) => (e.type === 'file' ? sizeOf(e.digest) : undefined)));
    return { entries, sizes };
  }
}

/** Lexicographic: a directory's place before its subdirectories', before its later siblings'. */
function before(a: number[], b: number[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return a.length < b.length;
}

/** A binary heap of directories by place in the walk, earliest first. */
class PlaceHeap {
  private items: { digest: Uint8Array; place: number[] }[] = [];
  get size(): number {
    return this.items.length;
  }
  push(digest: Uint8Array, place: number[]): void {
    const h = this.items;
    h.push({ digest, place });
    for (let i = h.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (!before(h[i].place, h[up].place)) break;
      [h[i], h[up]] = [h[up], h[i]];
      i = up;
    }
  }
  peek(): { digest: Uint8Array; place: number[] } | undefined {
    return this.items[0];
  }
  pop(): { digest: Uint8Array; place: number[] } | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l].place, h[m].place)) m = l;
        if (r < h.length && before(h[r].place, h[m].place)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
