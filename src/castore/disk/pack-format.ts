// Small blobs of the on-disk store live in pack files, not one file each:
// creating, fsyncing and renaming a file per blob costs far more than the
// bytes of a few-KiB blob. Each writing process appends to its own pack
//   <root>/packs/<name>.pack   records: magic u32 | length u32 | digest[32] | bytes
//   <root>/packs/<name>.idx    entries: digest[32] | record offset u64 | length u32 | check u32
// An index entry is written only after its record is fsynced, and is itself
// fsynced before the Put is acknowledged, so every whole entry with a valid
// check points at durable bytes. Bytes after the last indexed record are an
// interrupted write: never acknowledged, ignored.

export const RECORD_MAGIC = 0x4b434150; // "PACK" little-endian
export const RECORD_HEADER = 40;
export const INDEX_ENTRY = 48;

export interface IndexEntry {
  digest: Buffer;
  /** Offset of the record (its header) in the pack. */
  offset: number;
  length: number;
}

export function recordHeader(digest: Uint8Array, length: number): Buffer {
  const h = Buffer.allocUnsafe(RECORD_HEADER);
  h.writeUInt32LE(RECORD_MAGIC, 0);
  h.writeUInt32LE(length, 4);
  h.set(digest, 8);
  return h;
}

/** The record header's length if it is well-formed and names `digest`, else undefined. */
export function parseRecordHeader(h: Buffer): { length: number; digest: Buffer } | undefined {
  if (h.length < RECORD_HEADER || h.readUInt32LE(0) !== RECORD_MAGIC) return undefined;
  return { length: h.readUInt32LE(4), digest: h.subarray(8, 40) };
}

// FNV-1a over the first 44 bytes: catches a torn or zero-filled entry.
function check(b: Buffer, at: number): number {
  let x = 0x811c9dc5;
  for (let i = at; i < at + 44; i++) x = Math.imul(x ^ b[i], 0x01000193) >>> 0;
  return x;
}

/** Whether the index entry at `at` is whole and valid (not torn). */
export function validIndexEntry(b: Buffer, at: number): boolean {
  return at + INDEX_ENTRY <= b.length && b.readUInt32LE(at + 44) === check(b, at);
}

export function encodeIndexEntries(entries: IndexEntry[]): Buffer {
  const b = Buffer.allocUnsafe(entries.length * INDEX_ENTRY);
  entries.forEach((e, i) => {
    const at = i * INDEX_ENTRY;
    b.set(e.digest, at);
    b.writeBigUInt64LE(BigInt(e.offset), at + 32);
    b.writeUInt32LE(e.length, at + 40);
    b.writeUInt32LE(check(b, at), at + 44);
  });
  return b;
}

/** Whole, valid entries of `b`; stops at the first bad one (a torn tail). */
export function decodeIndexEntries(b: Buffer): { entries: IndexEntry[]; bytes: number; bad: boolean } {
  const entries: IndexEntry[] = [];
  let at = 0;
  for (; at + INDEX_ENTRY <= b.length; at += INDEX_ENTRY) {
    if (b.readUInt32LE(at + 44) !== check(b, at)) return { entries, bytes: at, bad: true };
    entries.push({ digest: Buffer.from(b.subarray(at, at + 32)), offset: Number(b.readBigUInt64LE(at + 32)), length: b.readUInt32LE(at + 40) });
  }
  return { entries, bytes: at, bad: false };
}
