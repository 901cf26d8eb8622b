// What the garbage collector does to the packs of an on-disk store (blob
// packs and directory packs alike): list them, copy the
// live records of a pack into a new pack, and remove a pack — its index
// first, so no process indexes records whose bytes are gone.
import { open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { blake3, b3Hex } from '../digest.js';
import { parseRecordHeader, RECORD_HEADER, type IndexEntry } from './pack-format.js';
import { PACK_TARGET, writerAlive, type PackStore } from './pack-store.js';

export interface PackFile {
  name: string;
  /** No process will append to it again. */
  sealed: boolean;
  /** mtime of its index: when its last record was added. */
  mtimeMs: number;
  /** Bytes on disk of the pack and its index. */
  bytes: number;
  /** A pack with no index (a writer died before creating it, or a collector between its two unlinks). */
  orphan: boolean;
}

export async function listPacks(dir: string): Promise<PackFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const all = new Set(names);
  const out: PackFile[] = [];
  for (const f of names) {
    if (!f.endsWith('.pack')) continue;
    const name = f.slice(0, -5);
    const hasIdx = all.has(`${name}.idx`);
    let pack, idx;
    try {
      pack = await stat(join(dir, f));
      idx = hasIdx ? await stat(join(dir, `${name}.idx`)) : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
      throw err;
    }
    const alive = writerAlive(name);
    out.push({
      name,
      // Its writer is gone, it is full, or its writer closed it (a read-only index).
      sealed: !alive || pack.size >= PACK_TARGET || (idx !== undefined && (idx.mode & 0o222) === 0),
      mtimeMs: Math.max(pack.mtimeMs, idx?.mtimeMs ?? 0),
      bytes: pack.blocks * 512 + (idx ? idx.blocks * 512 : 0),
      orphan: !hasIdx && !alive,
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Bytes of records, and records, held in memory while copying (each append is an object until it is durable). */
const COPY_WINDOW = 8 << 20;
const COPY_RECORDS = 8192;
/** The pack is read in pieces of this size (records in offset order lie side by side): a read per record costs a thread-pool round trip each. */
const READ_PIECE = 1 << 20;

/**
 * Copies the records of `entries` from pack `name` to `target`, each
 * checked against its digest first; throws (copying may be partial) if one
 * is not what its entry says, so the caller keeps the old pack.
 */
export async function copyRecords(dir: string, name: string, entries: IndexEntry[], target: PackStore): Promise<number> {
  const h = await open(join(dir, `${name}.pack`), 'r');
  let inFlight: Promise<void>[] = [];
  let held = 0;
  let bytes = 0;
  let piece = Buffer.alloc(0);
  let pieceAt = 0;
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  const last = sorted[sorted.length - 1];
  const lastEnd = last ? last.offset + RECORD_HEADER + last.length : 0;
  try {
    for (const e of sorted) {
      const end = e.offset + RECORD_HEADER + e.length;
      if (e.offset < pieceAt || end > pieceAt + piece.length) {
        // A new buffer each time: appends in flight still refer to the last one.
        const want = Math.max(end - e.offset, Math.min(READ_PIECE, lastEnd - e.offset));
        const buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await h.read(buf, 0, want, e.offset);
        piece = buf.subarray(0, bytesRead);
        pieceAt = e.offset;
        held += bytesRead;
      }
      const rec = piece.subarray(e.offset - pieceAt, end - pieceAt);
      const hdr = parseRecordHeader(rec);
      const data = rec.subarray(RECORD_HEADER);
      if (rec.length < RECORD_HEADER + e.length || !hdr || hdr.length !== e.length || !blake3(data).equals(e.digest)) {
        throw new Error(`${name}.pack@${e.offset}: the record of ${b3Hex(e.digest)} is damaged; the pack is kept (run fsck)`);
      }
      inFlight.push(target.append(e.digest, data));
      bytes += e.length;
      if (held >= COPY_WINDOW || inFlight.length >= COPY_RECORDS) {
        await Promise.all(inFlight);
        inFlight = [];
        held = 0;
      }
    }
    await Promise.all(inFlight);
    return bytes;
  } finally {
    await Promise.allSettled(inFlight);
    await h.close();
  }
}

/** Removes a pack: the index first, then the records. */
export async function removePack(dir: string, name: string): Promise<void> {
  for (const f of [`${name}.idx`, `${name}.pack`]) {
    try {
      await unlink(join(dir, f));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
