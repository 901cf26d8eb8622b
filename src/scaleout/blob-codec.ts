// How the S3 store keeps a blob's bytes: raw or zstd-compressed.
//
// Design. A blob's digest stays the BLAKE3 of its *uncompressed* bytes; the
// index row says how its bytes are stored (schema.ts, migration 5):
//   codec NULL           raw: [offset, offset+length) of the object, as
//                        every row written before compression existed.
//   codec 'zstd'         a packed (small) blob as one zstd frame of `stored`
//                        bytes at `offset`; `length` is still the raw size.
//                        A read decompresses it, checks the size against
//                        `length` and the BLAKE3 against the digest.
//   codec 'zstd-frames'  a large blob in an object of its own, cut into
//                        frames of FRAME_RAW raw bytes, each compressed on
//                        its own (or kept raw when that saves < MIN_SAVING),
//                        end to end; `frames` lists per frame its stored
//                        size and the first 8 bytes of its raw bytes' BLAKE3.
//                        So a range of the blob is a range of frames: the
//                        renderer's parallel 8 MiB reads stay parallel, and
//                        each frame is checked before its bytes go out.
// A blob whose compressed form saves less than MIN_SAVING is stored raw
// (codec NULL): already-compressed files cost no CPU to read back. Blobs
// that begin like a compressed format (precompressed.ts) are not tried. Packs
// mix raw and compressed entries. Sizes are known from the index before
// anything is fetched or decompressed, and checked after.
// Compression runs on libuv's thread pool (@mongodb-js/zstd, native): level
// 1 by default, the `level` of the store address otherwise (its JS wrapper
// drops the level: src/nix/zstd-native.ts calls its binding). Decoding is
// bounded by the raw size the index states (src/nix/zstd-exact.ts) and runs,
// with the checks, on threads of its own (inflate-pool.ts).
import { zstdCompress } from '../nix/zstd-native.js';
import { b3String } from '../castore/digest.js';
import { storageError } from '../castore/errors.js';
import { looksCompressed } from './precompressed.js';
import { inflatePool } from './inflate-pool.js';
import { chunkStarts, sliceChunks } from '../util/chunk-views.js';

export type Codec = 'zstd' | 'zstd-frames';

export interface Location {
  object: string;
  offset: number;
  /** Raw bytes (the blob's size). */
  length: number;
  /** How the bytes are stored; absent: raw. */
  codec?: Codec;
  /** Bytes in the object when compressed. */
  stored?: number;
  /** zstd-frames: FRAME_ENTRY bytes per frame. */
  frames?: Buffer;
}

export interface Compression {
  /** zstd level; undefined: store raw. */
  level?: number;
  /** Resolves once `level` is decided (the store's default, read from PostgreSQL): awaited before it is read. */
  known?: Promise<void>;
}

export const DEFAULT_LEVEL = 1;
/** Raw bytes per frame of a large blob: 8 frames per 8 MiB read, decoded on the inflating threads at once. */
export const FRAME_RAW = 1 << 20;
/** A compressed form is kept only if it is at least this much smaller. */
export const MIN_SAVING = 0.1;
/**
 * Smaller blobs are stored raw: zstd halves them, but of very little, and
 * each costs a trip to the pool (~60 µs of CPU) to store and a decode to
 * read. In the bench closure the 8,960 blobs under 2 KiB saved 3.1 MiB of
 * 510 stored.
 */
export const MIN_TRIED = 2048;
/** Per frame: stored size (uint32 BE), then 8 bytes of the raw frame's BLAKE3. */
export const FRAME_ENTRY = 12;

/** SQL columns of a blob row that make a Location (table alias b). */
export const LOCATION_COLUMNS = 'b.object, b."offset", b.length, b.codec, b.stored, b.frames';

export interface LocationRow {
  object: string;
  offset: string;
  length: string;
  codec: string | null;
  stored: string | null;
  frames: Buffer | null;
}

export function locationOf(row: LocationRow): Location {
  const loc: Location = { object: row.object, offset: Number(row.offset), length: Number(row.length) };
  if (row.codec === null) return loc;
  if (row.codec !== 'zstd' && row.codec !== 'zstd-frames') throw storageError(`${row.object}: unknown codec ${JSON.stringify(row.codec)} in the blob index (a newer nix-castore wrote it?)`);
  loc.codec = row.codec;
  loc.stored = Number(row.stored);
  if (row.frames) loc.frames = row.frames;
  return loc;
}

/** Bytes the blob takes in its object. */
export function storedLength(loc: Location): number {
  return loc.codec ? loc.stored! : loc.length;
}

/** Whether compressing `raw` can pay: long enough, and not a format compressed already (then no trip to the pool, no promise). */
export function worthTrying(raw: Uint8Array): boolean {
  return raw.length >= MIN_TRIED && !looksCompressed(raw);
}

/** The compressed form of `raw` if it saves at least MIN_SAVING, else undefined. */
export async function compressed(raw: Buffer, c: Compression): Promise<Buffer | undefined> {
  if (c.level === undefined) await c.known; // once decided, no await per blob
  if (c.level === undefined || !worthTrying(raw)) return undefined;
  const z = await zstdCompress(raw, c.level);
  return z.length <= raw.length * (1 - MIN_SAVING) ? z : undefined;
}

function corrupt(digest: Uint8Array, loc: Location, what: string): Error {
  return storageError(`blob ${b3String(digest)}: its compressed bytes in ${loc.object} at ${loc.offset} are corrupt (${what}); run fsck --verify-blobs`);
}

/** A frame table's entries, checked against the blob's size. */
export function frameTable(digest: Uint8Array, loc: Location): { stored: number; raw: number; start: number; rawStart: number; check: Buffer }[] {
  const n = Math.ceil(loc.length / FRAME_RAW);
  const t = loc.frames;
  if (!t || t.length !== n * FRAME_ENTRY) throw corrupt(digest, loc, `a frame table of ${t?.length ?? 0} bytes for ${n} frames`);
  const out = [];
  let start = loc.offset;
  for (let i = 0; i < n; i++) {
    const stored = t.readUInt32BE(i * FRAME_ENTRY);
    const raw = Math.min(FRAME_RAW, loc.length - i * FRAME_RAW);
    if (stored > raw) throw corrupt(digest, loc, `frame ${i} stored in ${stored} bytes, more than its ${raw}`);
    out.push({ stored, raw, start, rawStart: i * FRAME_RAW, check: t.subarray(i * FRAME_ENTRY + 4, (i + 1) * FRAME_ENTRY) });
    start += stored;
  }
  if (start - loc.offset !== loc.stored) throw corrupt(digest, loc, `frames of ${start - loc.offset} bytes, ${loc.stored} indexed`);
  return out;
}

/**
 * Raw frames from their stored bytes (`chunks`, frames `first`… end to
 * end), each checked against its entry in the frame table. Each frame is
 * a job of its own, so one blob's frames decode on every thread at once.
 */
export async function inflateFrames(digest: Uint8Array, loc: Location, first: number, count: number, chunks: Uint8Array[]): Promise<Uint8Array[]> {
  const table = frameTable(digest, loc).slice(first, first + count);
  const starts = chunkStarts(chunks);
  const have = starts[chunks.length];
  let at = 0;
  return Promise.all(
    table.map(async (f, k) => {
      if (at + f.stored > have) throw corrupt(digest, loc, `frame ${first + k} is short`);
      const stored = sliceChunks(chunks, starts, at, f.stored);
      at += f.stored;
      const r = await inflatePool.run(stored, { raw: f.raw, compressed: f.stored !== f.raw, lengths: [f.raw], checks: [f.check] });
      if ('bytes' in r) return r.bytes;
      throw corrupt(digest, loc, r.error === 'mismatch' ? `frame ${first + k} does not match its checksum` : r.error);
    }),
  );
}

/**
 * A whole blob's raw bytes from its stored bytes. Raw entries are handed
 * on as they are (as before compression); compressed ones are checked.
 */
export async function inflateWhole(digest: Uint8Array, loc: Location, chunks: Uint8Array[]): Promise<Uint8Array[]> {
  if (!loc.codec) return chunks;
  if (loc.codec === 'zstd-frames') return inflateFrames(digest, loc, 0, Math.ceil(loc.length / FRAME_RAW), chunks);
  const r = await inflatePool.run(chunks, { raw: loc.length, compressed: true, lengths: [loc.length], checks: [digest] });
  if ('bytes' in r) return [r.bytes];
  throw corrupt(digest, loc, r.error === 'mismatch' ? 'the decompressed bytes do not hash to the digest' : r.error);
}

/**
 * Blobs compressed whole (codec 'zstd', the small packed ones), decoded in
 * one call: their frames end to end are one zstd input whose output is
 * their raw bytes end to end. A pool call per small blob cost the renderer
 * more than decoding it. Each blob is still checked against its digest; on
 * any failure every blob is decoded alone, so the error names the corrupt one.
 */
export async function inflateSmall(items: { digest: Uint8Array; loc: Location; chunks: Uint8Array[] }[]): Promise<Uint8Array[]> {
  const alone = async (x: (typeof items)[number]) => (await inflateWhole(x.digest, x.loc, x.chunks))[0];
  if (items.length === 1) return [await alone(items[0])];
  const lengths = items.map((x) => x.loc.length);
  const r = await inflatePool.run(
    items.flatMap((x) => x.chunks),
    { raw: lengths.reduce((n, l) => n + l, 0), compressed: true, lengths, checks: items.map((x) => x.digest) },
  );
  if (!('bytes' in r)) return Promise.all(items.map(alone)); // named there, blob by blob
  const out: Uint8Array[] = [];
  let at = 0;
  for (const { loc } of items) out.push(r.bytes.subarray(at, (at += loc.length)));
  return out;
}
