// A pack's body and index rows from its blobs' raw bytes: each blob is
// compressed on its own (blob-codec.ts), on libuv's pool, and kept
// compressed only where that saves enough; so any blob of a pack is still
// one ranged GET, and a pack mixes raw and compressed entries.
import { compressed, type Codec, type Compression } from './blob-codec.js';

export interface PackEntry {
  digest: Buffer;
  /** Where its raw bytes are in `buf`. */
  offset: number;
  length: number;
}

export interface PackRows {
  body: Buffer;
  digests: Buffer[];
  offsets: number[];
  lengths: number[];
  codecs: (Codec | null)[];
  stored: (number | null)[];
}

/** `whole`: `entries` are all of buf[0, size), in order (then the raw body is buf itself). */
export async function packRows(buf: Buffer, size: number, entries: PackEntry[], whole: boolean, compression: Compression): Promise<PackRows> {
  const raw = (e: PackEntry) => buf.subarray(e.offset, e.offset + e.length);
  if (compression.level === undefined) await compression.known;
  const forms = compression.level === undefined ? [] : await Promise.all(entries.map((e) => compressed(raw(e), compression)));
  const rows: PackRows = { body: Buffer.alloc(0), digests: [], offsets: [], lengths: [], codecs: [], stored: [] };
  const parts: Buffer[] = [];
  let off = 0;
  entries.forEach((e, k) => {
    const z = forms[k];
    rows.digests.push(e.digest);
    rows.offsets.push(off);
    rows.lengths.push(e.length);
    rows.codecs.push(z ? 'zstd' : null);
    rows.stored.push(z ? z.length : null);
    parts.push(z ?? raw(e));
    off += z ? z.length : e.length;
  });
  // Nothing compressed: the pack's buffer as it is, as before compression.
  rows.body = whole && forms.every((z) => z === undefined) ? buf.subarray(0, size) : Buffer.concat(parts, off);
  return rows;
}
