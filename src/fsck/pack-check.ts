// fsck of the packs of an on-disk store (castore/disk/pack-format.ts), of
// blobs or of directories: every
// indexed record is read back and must carry the digest its index entry
// names and hash to it. Bytes past the last indexed record, and a torn last
// index entry, are writes that were never acknowledged: warned about when
// their writer is gone, ignored by the store.
import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { blake3, b3Hex } from '../castore/digest.js';
import { decodeIndexEntries, parseRecordHeader, RECORD_HEADER } from '../castore/disk/pack-format.js';
import { writerAlive } from '../castore/disk/pack-store.js';

export interface PackReport {
  error(object: string, msg: string): void;
  warning(object: string, msg: string): void;
  /** A sound record, first seen at `where`. */
  found(hex: string, length: number, where: string): void;
  corrupt(hex: string): void;
}

/** What the packs below a folder hold: blobs (`packs/`) or directories (`directory-packs/`). */
export interface PackKind {
  /** The folder, relative to the store's root, as findings name it. */
  folder: string;
  noun: 'blob' | 'directory';
}

/** Checks every pack below `root`/`kind.folder`; resolves to each sound record's length by digest. */
export async function checkPacks(root: string, kind: PackKind, report: PackReport): Promise<Map<string, number>> {
  const dir = join(root, kind.folder);
  const sound = new Map<string, number>();
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return sound;
    throw err;
  }
  const packs = new Set(names.filter((n) => n.endsWith('.pack')).map((n) => n.slice(0, -5)));
  for (const n of names) {
    const base = n.replace(/\.(pack|idx)$/, '');
    if (base === n || !packs.has(base)) report.warning(`${kind.folder}/${n}`, n.endsWith('.idx') ? 'index without its pack; the store ignores it' : 'unexpected entry; the store ignores it');
  }
  for (const name of packs) {
    if (!names.includes(`${name}.idx`)) {
      report.warning(`${kind.folder}/${name}.pack`, 'pack without an index (its writer stopped before indexing anything); the store ignores it');
      continue;
    }
    await checkPack(dir, name, kind, report, sound);
  }
  return sound;
}

async function checkPack(dir: string, name: string, kind: PackKind, report: PackReport, sound: Map<string, number>): Promise<void> {
  const alive = writerAlive(name);
  let idx: Buffer;
  let pack: FileHandle;
  try {
    idx = await readWhole(join(dir, `${name}.idx`));
    pack = await open(join(dir, `${name}.pack`), 'r');
  } catch (err) {
    report.error(`${kind.folder}/${name}`, `unreadable: ${(err as Error).message}`);
    return;
  }
  try {
    const { entries, bytes, bad } = decodeIndexEntries(idx);
    if (!alive && (bad || bytes < idx.length)) {
      report.warning(`${kind.folder}/${name}.idx`, `ends in ${idx.length - bytes} bytes that are not a whole, valid entry (an interrupted write); the store ignores them`);
    }
    let end = 0;
    for (const e of entries) {
      const hex = b3Hex(e.digest);
      const where = `${kind.folder}/${name}.pack@${e.offset}`;
      const buf = Buffer.allocUnsafe(RECORD_HEADER + e.length);
      const { bytesRead } = await pack.read(buf, 0, buf.length, e.offset);
      const hdr = parseRecordHeader(buf.subarray(0, bytesRead));
      end = Math.max(end, e.offset + RECORD_HEADER + e.length);
      let problem: string | undefined;
      if (bytesRead < buf.length) problem = `${kind.noun} ${hex}: the pack ends ${buf.length - bytesRead} bytes short of its record`;
      else if (!hdr || hdr.length !== e.length || !hdr.digest.equals(e.digest)) problem = `${kind.noun} ${hex}: the record there is not the one the index names`;
      else {
        const got = b3Hex(blake3(buf.subarray(RECORD_HEADER)));
        if (got !== hex) problem = `${kind.noun} ${hex}: content (${e.length} bytes) hashes to ${got}`;
      }
      if (problem) {
        report.corrupt(hex);
        report.error(where, problem);
        continue;
      }
      if (!sound.has(hex)) report.found(hex, e.length, where);
      sound.set(hex, e.length);
    }
    const { size } = await pack.stat();
    if (!alive && size > end) {
      report.warning(`${kind.folder}/${name}.pack`, `${size - end} bytes after the last indexed record (a write interrupted before it was acknowledged, or the padding of the last O_DIRECT write of a writer that did not close the pack); the store ignores them`);
    }
  } finally {
    await pack.close();
  }
}

async function readWhole(path: string): Promise<Buffer> {
  const h = await open(path, 'r');
  try {
    return await h.readFile();
  } finally {
    await h.close();
  }
}
