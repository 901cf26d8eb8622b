// What the garbage collector does to the packs of an on-disk store (blob
// packs and directory packs alike): list them, read their indexes, copy the
// live records of a pack into a new pack, and remove a pack — its index
// first, so no process indexes records whose bytes are gone.
import { open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { blake3, b3Hex } from '../digest.js';
import { decodeIndexEntries, parseRecordHeader, RECORD_HEADER, type IndexEntry } from './pack-format.js';
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

/** Every whole, valid entry of a pack's index. */
export async function readPackIndex(dir: string, name: string): Promise<IndexEntry[]> {
  let h;
  try {
    h = await open(join(dir, `${name}.idx`), 'r');
  } catch (err) {
    // A writer creates a pack's data before its index: nothing indexed yet.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const { size } = await h.stat();
    const buf = Buffer.allocUnsafe(size);
    const { bytesRead } = await h.read(buf, 0, size, 0);
    return decodeIndexEntries(buf.subarray(0, bytesRead)).entries;
  } finally {
    await h.close();
  }
}

/** Bytes of records held in memory while copying. */
const COPY_WINDOW = 32 << 20;

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
  try {
    for (const e of [...entries].sort((a, b) => a.offset - b.offset)) {
      const buf = Buffer.allocUnsafe(RECORD_HEADER + e.length);
      const { bytesRead } = await h.read(buf, 0, buf.length, e.offset);
      const hdr = parseRecordHeader(buf.subarray(0, bytesRead));
      const data = buf.subarray(RECORD_HEADER);
      if (bytesRead < buf.length || !hdr || hdr.length !== e.length || !blake3(data).equals(e.digest)) {
        throw new Error(`${name}.pack@${e.offset}: the record of ${b3Hex(e.digest)} is damaged; the pack is kept (run fsck)`);
      }
      inFlight.push(target.append(e.digest, data));
      held += buf.length;
      bytes += e.length;
      if (held >= COPY_WINDOW) {
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
