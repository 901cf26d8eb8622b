// Directory checks of an on-disk store: every directory file or packed
// record is sound, its children exist with a matching size and its files'
// blobs can serve them; and whether a root's whole closure is sound.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { b3Hex } from '../castore/digest.js';
import type { Directory } from '../castore/messages.js';
import { showName } from '../castore/directory.js';
import { closureProblem, examineDirectory, sizesOf, type ChildState, type Examined } from './examine.js';
import { message } from './report.js';
import { errno, type DiskCheckState } from './disk-state.js';
import type { BlobChecks } from './disk-blob-checks.js';

const SIZE_CACHE_ENTRIES = 100_000;

export class DirectoryChecks {
  constructor(
    private readonly s: DiskCheckState,
    private readonly blobs: BlobChecks,
  ) {}

  /** Reads a directory file: bytes, decoded form, or what is wrong with it. */
  async loadDirectory(hex: string): Promise<{ bytes: Buffer; dir?: Directory; problem?: string } | undefined> {
    let bytes: Buffer | undefined;
    try {
      bytes = await readFile(join(this.s.root, this.s.rel('directories', hex)));
    } catch (err) {
      if (errno(err) !== 'ENOENT') return { bytes: Buffer.alloc(0), problem: `unreadable: ${message(err)}` };
    }
    if (!bytes) {
      if (this.s.corruptPackedDirs.has(hex)) return { bytes: Buffer.alloc(0), problem: 'its packed record is corrupt' };
      try {
        bytes = await this.s.dirPacks.read(hex);
      } catch (err) {
        return { bytes: Buffer.alloc(0), problem: `unreadable: ${message(err)}` };
      }
      if (!bytes) return undefined;
    }
    return { bytes, ...examineDirectory(hex, bytes) };
  }

  remember(hex: string, state: ChildState): ChildState {
    if (this.s.childCache.size >= SIZE_CACHE_ENTRIES) this.s.childCache.delete(this.s.childCache.keys().next().value!);
    this.s.childCache.set(hex, state);
    return state;
  }

  async childState(hex: string): Promise<ChildState> {
    const known = this.s.childCache.get(hex);
    if (known) return known;
    const d = await this.loadDirectory(hex);
    if (!d) return this.remember(hex, 'missing');
    if (d.problem || !d.dir) return this.remember(hex, 'corrupt');
    return this.remember(hex, sizesOf(d.dir));
  }

  async check(hex: string, rel: string): Promise<void> {
    const d = await this.loadDirectory(hex);
    if (!d) return; // gone meanwhile
    this.s.counts.directories++;
    if (d.problem || !d.dir) {
      this.s.badDirs.set(hex, d.problem ?? 'unreadable');
      this.remember(hex, 'corrupt');
      this.s.report('error', 'directory', rel, d.problem ?? 'unreadable');
      return;
    }
    const dir = d.dir;
    this.remember(hex, sizesOf(dir));
    for (const c of dir.directories) await this.s.dirRefs.add(c.digest);
    for (const f of dir.files) await this.s.blobRefs.add(f.digest);
    const problems: string[] = [];
    for (const c of dir.directories) {
      const childHex = b3Hex(c.digest);
      const state = await this.childState(childHex);
      if (state === 'missing') {
        this.s.badDirs.set(childHex, 'missing');
        problems.push(`directory ${showName(c.name)} refers to ${childHex}, which is missing`);
      } else if (state !== 'corrupt' && !state.includes(c.size)) {
        problems.push(`directory ${showName(c.name)} says size ${c.size}, but ${childHex} has size ${state[0]} (or ${state[1]} by the older formula)`);
      }
      // A corrupt child is reported as itself.
    }
    for (const f of dir.files) {
      const p = await this.blobs.problem(f.digest, f.size);
      if (p) problems.push(`file ${showName(f.name)}: ${p}`);
    }
    if (problems.length > 0) {
      this.s.badDirs.set(hex, problems[0]);
      for (const p of problems) this.s.report('error', 'directory', rel, p);
    }
  }

  /** Why the directory closure under a root is not complete and sound, if it is not. */
  async closureProblem(digest: Uint8Array, size: number): Promise<string | undefined> {
    return closureProblem(digest, size, await this.childState(b3Hex(digest)), this.s.badDirs, async (hexes) => {
      const loaded = new Map<string, Examined>();
      for (const hex of hexes) loaded.set(hex, await this.loadDirectory(hex));
      return loaded;
    });
  }
}
