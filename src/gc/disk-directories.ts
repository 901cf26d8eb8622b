// How the collector of an on-disk store reads directories while it marks:
// where each packed directory is, in typed arrays keyed by 8 bytes of its
// digest (25 bytes a slot, against ~200 for the daemon's Map of hex keys),
// each record checked against the full digest in its header when read;
// directories of older stores from their own files. A miss (a directory
// stored since) reads the indexes' new entries before giving up.
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { readDirectory, type Directory } from '../castore/messages.js';
import { parseRecordHeader, RECORD_HEADER } from '../castore/disk/pack-format.js';
import { b3Hex } from '../castore/digest.js';
import { forEachIndexEntry } from './pack-index-stream.js';
import type { DirectoryReader } from './marks.js';

/** Open pack files kept at once. */
const HANDLES = 32;

export class DiskDirectoryReader implements DirectoryReader {
  private readonly locations = new LocationIndex();
  private readonly packs: { name: string; consumed: number }[] = [];
  private readonly packNo = new Map<string, number>();
  private readonly handles = new Map<number, Promise<FileHandle>>();
  private readonly dir: string;

  constructor(private readonly root: string) {
    this.dir = join(root, 'directory-packs');
  }

  private refreshing: Promise<void> = Promise.resolve();

  /** Reads the entries added to the packs' indexes since the last time (one at a time). */
  refresh(): Promise<void> {
    return (this.refreshing = this.refreshing.catch(() => {}).then(() => this.catchUp()));
  }

  private async catchUp(): Promise<void> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((f) => f.endsWith('.idx')).map((f) => f.slice(0, -4));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names.sort()) {
      let no = this.packNo.get(name);
      if (no === undefined) {
        no = this.packs.push({ name, consumed: 0 }) - 1;
        this.packNo.set(name, no);
      }
      const p = this.packs[no];
      p.consumed = await forEachIndexEntry(this.dir, name, (b, at, _i, offset, length) => this.locations.add(b, at, no, offset, length), p.consumed);
    }
  }

  async get(digest: Uint8Array): Promise<Directory | undefined> {
    const found = (await this.packed(digest)) ?? (await this.loose(digest));
    if (found) return found;
    await this.refresh();
    return this.packed(digest);
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    for (const h of hs) await (await h.catch(() => undefined))?.close();
  }

  private async packed(digest: Uint8Array): Promise<Directory | undefined> {
    for (const { pack, offset, length } of this.locations.lookup(digest)) {
      const h = await this.handle(pack);
      if (!h) continue;
      const buf = Buffer.allocUnsafe(RECORD_HEADER + length);
      const { bytesRead } = await h.read(buf, 0, buf.length, offset);
      const hdr = parseRecordHeader(buf.subarray(0, bytesRead));
      if (bytesRead < buf.length || !hdr || hdr.length !== length || !hdr.digest.equals(digest)) continue;
      return readDirectory(buf.subarray(RECORD_HEADER));
    }
    return undefined;
  }

  private async loose(digest: Uint8Array): Promise<Directory | undefined> {
    const hex = b3Hex(digest);
    try {
      return readDirectory(await readFile(join(this.root, 'directories', hex.slice(0, 2), hex)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  private async handle(no: number): Promise<FileHandle | undefined> {
    let h = this.handles.get(no);
    if (h) {
      // Most recently used last.
      this.handles.delete(no);
      this.handles.set(no, h);
    } else {
      if (this.handles.size >= HANDLES) {
        const [oldest, oh] = this.handles.entries().next().value as [number, Promise<FileHandle>];
        this.handles.delete(oldest);
        void oh.then((x) => x.close()).catch(() => {});
      }
      h = open(join(this.dir, `${this.packs[no].name}.pack`), 'r');
      this.handles.set(no, h);
    }
    try {
      return await h;
    } catch (err) {
      this.handles.delete(no);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}

/**
 * Pack, offset and length of each indexed record, by 8 bytes of its digest
 * (open addressing; a key may repeat: every match is a candidate).
 */
class LocationIndex {
  private keys = new Uint32Array(2 * 1024);
  private offsets = new Float64Array(1024);
  private packs = new Uint32Array(1024);
  private lengths = new Uint32Array(1024);
  private used = new Uint8Array(1024);
  private size = 0;

  add(b: Uint8Array, at: number, pack: number, offset: number, length: number): void {
    if ((this.size + 1) * 4 > this.used.length * 3) this.grow();
    this.put(word(b, at + 8), word(b, at + 12), pack, offset, length);
  }

  *lookup(d: Uint8Array): Generator<{ pack: number; offset: number; length: number }> {
    const k0 = word(d, 8);
    const k1 = word(d, 12);
    const mask = this.used.length - 1;
    for (let s = k0 & mask; this.used[s]; s = (s + 1) & mask) {
      if (this.keys[2 * s] === k0 && this.keys[2 * s + 1] === k1) yield { pack: this.packs[s], offset: this.offsets[s], length: this.lengths[s] };
    }
  }

  private put(k0: number, k1: number, pack: number, offset: number, length: number): void {
    const mask = this.used.length - 1;
    let s = k0 & mask;
    while (this.used[s]) s = (s + 1) & mask;
    this.keys[2 * s] = k0;
    this.keys[2 * s + 1] = k1;
    this.packs[s] = pack;
    this.offsets[s] = offset;
    this.lengths[s] = length;
    this.used[s] = 1;
    this.size++;
  }

  private grow(): void {
    const old = { keys: this.keys, offsets: this.offsets, packs: this.packs, lengths: this.lengths, used: this.used };
    const n = this.used.length * 2;
    this.keys = new Uint32Array(2 * n);
    this.offsets = new Float64Array(n);
    this.packs = new Uint32Array(n);
    this.lengths = new Uint32Array(n);
    this.used = new Uint8Array(n);
    this.size = 0;
    for (let s = 0; s < old.used.length; s++) if (old.used[s]) this.put(old.keys[2 * s], old.keys[2 * s + 1], old.packs[s], old.offsets[s], old.lengths[s]);
  }
}

function word(d: Uint8Array, i: number): number {
  return (d[i] | (d[i + 1] << 8) | (d[i + 2] << 16) | (d[i + 3] << 24)) >>> 0;
}
