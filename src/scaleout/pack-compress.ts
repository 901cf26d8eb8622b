// A pack's body and index rows from its blobs' raw bytes: each blob is
// compressed on its own (blob-codec.ts), on libuv's pool, and kept
// compressed only where that saves enough; so any blob of a pack is still
// one ranged GET, and a pack mixes raw and compressed entries.
// The body is laid out in the pack's own buffer, each entry moved down to
// where the previous one ends: a fresh body per pack (Buffer.concat, ~8 MiB
// from malloc) raised glibc's mmap threshold, and with it the pack bodies,
// frames and zstd outputs stayed resident in its heap.
import { compressed, worthTrying, type Codec, type Compression } from './blob-codec.js';

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

/**
 * `entries` in buf's order; `whole`: they are all of buf[0, size) (then,
 * with nothing compressed, the body is buf as it is). Overwrites buf:
 * each entry's bytes go no further than its raw bytes' end.
 */
export async function packRows(buf: Buffer, size: number, entries: PackEntry[], whole: boolean, compression: Compression): Promise<PackRows> {
  const raw = (e: PackEntry) => buf.subarray(e.offset, e.offset + e.length);
  if (compression.level === undefined) await compression.known;
  const forms = compression.level === undefined ? [] : await Promise.all(entries.map((e) => (worthTrying(raw(e)) ? compressed(raw(e), compression) : undefined)));
  const rows: PackRows = { body: Buffer.alloc(0), digests: [], offsets: [], lengths: [], codecs: [], stored: [] };
  // Nothing compressed: the pack's buffer as it is, as before compression.
  const asIs = whole && forms.every((z) => z === undefined);
  let off = 0;
  entries.forEach((e, k) => {
    const z = forms[k];
    if (e.offset < off) throw new RangeError('pack entries out of order');
    rows.digests.push(e.digest);
    rows.offsets.push(off);
    rows.lengths.push(e.length);
    rows.codecs.push(z ? 'zstd' : null);
    rows.stored.push(z ? z.length : null);
    // Every compression has read its raw bytes; this entry's go to [off, off + n), before the next entry's raw bytes (copy handles overlap).
    if (!asIs) (z ?? raw(e)).copy(buf, off);
    off += z ? z.length : e.length;
  });
  rows.body = buf.subarray(0, asIs ? size : off);
  return rows;
}
