// Which large blob a hook (chunking.ts) was seen in: how a delta upload
// finds a similar blob the store has. Entries are hints, never trusted: a
// base is checked to exist, chunked from its own bytes, and a delta's
// result checked against its digest, so an entry that is stale (its blob
// collected) or lost (not yet on disk at a crash) costs only a whole
// upload. Bounded: the newest MAX_HOOKS entries (one per 2 MiB of large
// blobs: 128 GiB of them), kept in memory and, for an on-disk store, in an
// append-only file of fixed-size records (no fsync: a lost hint is cheap).
import { open, rename, truncate, stat, type FileHandle } from 'node:fs/promises';
import { B3_LEN } from '../digest.js';

export const MAX_HOOKS = 1 << 16;
/** A hook is known by its first 16 bytes (here and in a scale-out store's table). */
export const HOOK_KEY_LEN = 16;

/** Where hooks were seen: this file's index, or a scale-out store's table (scaleout/pg-hook-index.ts). */
export interface HookHints {
  /** The blob each hook was seen in, in order (undefined: none). */
  lookup(hooks: Uint8Array[]): Promise<(Buffer | undefined)[]>;
  /** Records a blob's hooks (the newest entry wins a key). */
  add(blob: Uint8Array, hooks: Uint8Array[]): Promise<void>;
  close(): Promise<void>;
}

const KEY_LEN = HOOK_KEY_LEN;
const RECORD = KEY_LEN + B3_LEN;

export class HookIndex implements HookHints {
  /** Hook key → blob digest, both as latin1 strings (a Buffer each cost several times as much). */
  private readonly map = new Map<string, string>();
  private file: FileHandle | undefined;
  private records = 0;
  private writing: Promise<void> = Promise.resolve();

  private constructor(private readonly path: string | undefined) {}

  /** An index in memory only (lost with the process). */
  static inMemory(): HookIndex {
    return new HookIndex(undefined);
  }

  /** An index kept in `path` as well, loaded from it (a torn last record is cut off). */
  static async atPath(path: string): Promise<HookIndex> {
    const index = new HookIndex(path);
    await index.load();
    return index;
  }

  get size(): number {
    return this.map.size;
  }

  /** The blob a hook was seen in, if any. */
  get(hook: Uint8Array): Buffer | undefined {
    const blob = this.map.get(Buffer.from(hook.buffer, hook.byteOffset, KEY_LEN).toString('latin1'));
    return blob === undefined ? undefined : Buffer.from(blob, 'latin1');
  }

  async lookup(hooks: Uint8Array[]): Promise<(Buffer | undefined)[]> {
    return hooks.map((h) => this.get(h));
  }

  /** Records a blob's hooks (the newest entry wins a key). */
  add(blob: Uint8Array, hooks: Uint8Array[]): Promise<void> {
    if (hooks.length === 0) return this.writing;
    const value = Buffer.from(blob).toString('latin1');
    const out = Buffer.allocUnsafe(hooks.length * RECORD);
    hooks.forEach((h, i) => {
      const key = Buffer.from(h.buffer, h.byteOffset, KEY_LEN);
      this.put(key.toString('latin1'), value);
      out.set(key, i * RECORD);
      out.set(blob, i * RECORD + KEY_LEN);
    });
    if (this.path === undefined) return this.writing;
    // One write at a time, in order; a failed write loses hints, nothing else.
    this.writing = this.writing.then(() => this.append(out)).catch(() => {});
    return this.writing;
  }

  async close(): Promise<void> {
    await this.writing;
    await this.file?.close();
    this.file = undefined;
  }

  private put(key: string, value: string): void {
    this.map.delete(key); // re-added last: the newest
    this.map.set(key, value);
    if (this.map.size > MAX_HOOKS) this.map.delete(this.map.keys().next().value!);
  }

  private async load(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.path!)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const whole = size - (size % RECORD);
    // A crash mid-append leaves part of a record: cut it off, or every later record would be misread.
    if (whole !== size) await truncate(this.path!, whole);
    // The whole file (≤ 2 × MAX_HOOKS records, compact() sees to it; a compaction may repeat the entries of appends queued behind it), newest last.
    const from = Math.max(0, whole - 4 * MAX_HOOKS * RECORD);
    const h = await open(this.path!, 'r');
    try {
      const buf = Buffer.allocUnsafe(whole - from);
      const { bytesRead } = await h.read(buf, 0, buf.length, from);
      for (let at = 0; at + RECORD <= bytesRead; at += RECORD) {
        this.put(buf.toString('latin1', at, at + KEY_LEN), buf.toString('latin1', at + KEY_LEN, at + RECORD));
      }
    } finally {
      await h.close();
    }
    this.records = whole / RECORD;
  }

  private async append(out: Buffer): Promise<void> {
    if (this.records + out.length / RECORD > 2 * MAX_HOOKS) await this.compact();
    this.file ??= await open(this.path!, 'a');
    await this.file.write(out);
    this.records += out.length / RECORD;
  }

  /** Rewrites the file with the entries in memory (the oldest first), so it stays within 2 × MAX_HOOKS records. */
  private async compact(): Promise<void> {
    await this.file?.close();
    this.file = undefined;
    const tmp = `${this.path}.tmp-${process.pid}`;
    const h = await open(tmp, 'w');
    try {
      const buf = Buffer.allocUnsafe(this.map.size * RECORD);
      let at = 0;
      for (const [k, v] of this.map) {
        buf.write(k, at, 'latin1');
        buf.write(v, at + KEY_LEN, 'latin1');
        at += RECORD;
      }
      await h.write(buf);
    } finally {
      await h.close();
    }
    await rename(tmp, this.path!);
    this.records = this.map.size;
  }
}
