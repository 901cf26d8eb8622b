// A pack's index read in chunks, entry by entry, without an object per
// entry: a 1 GiB pack of small blobs has a million of them, and the
// collector reads every index more than once.
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { INDEX_ENTRY, validIndexEntry } from '../castore/disk/pack-format.js';

const CHUNK = INDEX_ENTRY * 16384; // 768 KiB

/** An index entry in place: its digest is `buf[at..at+32]`. */
export type EntryFn = (buf: Buffer, at: number, index: number, offset: number, length: number) => void | Promise<void>;

/**
 * Calls `fn` for every whole, valid entry of pack `name`'s index from entry
 * `from` on; stops at the first bad one (a torn tail). Returns the number of
 * entries read up to there (from the start). No index: 0.
 */
export async function forEachIndexEntry(dir: string, name: string, fn: EntryFn, from = 0): Promise<number> {
  let h;
  try {
    h = await open(join(dir, `${name}.idx`), 'r');
  } catch (err) {
    // A writer creates a pack's data before its index: nothing indexed yet.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let i = from; ; ) {
      const { bytesRead } = await h.read(buf, 0, CHUNK, i * INDEX_ENTRY);
      const whole = bytesRead - (bytesRead % INDEX_ENTRY);
      for (let at = 0; at < whole; at += INDEX_ENTRY, i++) {
        if (!validIndexEntry(buf, at)) return i;
        const r = fn(buf, at, i, Number(buf.readBigUInt64LE(at + 32)), buf.readUInt32LE(at + 40));
        if (r) await r;
      }
      if (bytesRead < CHUNK) return i;
    }
  } finally {
    await h.close();
  }
}

/**
 * Whether pack `name`'s index holds whole entries after entry `count`, the
 * first bad one: then that entry is damage, not a torn tail (a batch's
 * entries are appended, and flushed, in order), and the records indexed
 * after it were acknowledged to their writers.
 */
export async function damagedIndex(dir: string, name: string, count: number): Promise<boolean> {
  try {
    return (await stat(join(dir, `${name}.idx`))).size >= (count + 2) * INDEX_ENTRY;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
