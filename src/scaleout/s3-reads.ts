// Reads for NAR rendering from the S3 store: many blobs at once, with
// neighbours in a pack fetched by one ranged GET, and pieces of one large
// blob, so the renderer can keep several GETs in flight (one GET streams
// at a fraction of what RGW serves to several).
import { b3String } from '../castore/digest.js';
import { invalid, storageError } from '../castore/errors.js';
import type { ReadOptions } from '../castore/blob-service.js';
import { Limiter } from '../util/limiter.js';
import type { Location } from './blob-codec.js';
import type { S3Objects } from './s3-objects.js';
import { inflateSmall, inflateWhole, storedLength } from './blob-codec.js';
import { readCompressedPart } from './compressed-reads.js';
import { chunkStarts, sliceChunks } from '../util/chunk-views.js';

/** Largest gap between wanted records still fetched in the same GET (it is read and thrown away). */
const MAX_GAP = 256 << 10;
/**
 * A gap this small is always read through: a GET costs RGW and both ends
 * far more than 64 KiB more of a GET already under way (the bench's
 * /usr/share made 283 GETs of at most 64 KiB for files deduplicated into
 * other packs, each alone in its run).
 */
const FREE_GAP = 64 << 10;
/** Longest single GET when merging neighbours. */
const MAX_RUN = 8 << 20;
/** Raw bytes of small compressed blobs decoded per pool call (two such calls per run keep both cores busy). */
const BATCH_RAW = 2 << 20;
/** GETs one readMany call has in flight. */
const RUNS_IN_FLIGHT = 4;

interface Run {
  object: string;
  start: number;
  end: number;
  /** Wanted bytes in it: a gap may add at most as much again. */
  wanted: number;
  members: { i: number; loc: Location }[];
}

/**
 * Bytes [offset, offset+length) of an object, exactly, as the chunks they
 * arrived in: copying them into one buffer (a fresh, page-faulted 8 MiB
 * each time) cost more CPU than anything else the renderer did.
 */
export function fetchRange(s3: S3Objects, object: string, offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array[]> {
  return s3.rangeChunks(object, offset, length, signal);
}

/** Groups located blobs into GETs: same object, in offset order, gaps no larger than what they save. */
export function runsOf(located: { i: number; loc: Location }[]): Run[] {
  const byObject = new Map<string, { i: number; loc: Location }[]>();
  for (const m of located) {
    const list = byObject.get(m.loc.object);
    if (list) list.push(m);
    else byObject.set(m.loc.object, [m]);
  }
  const runs: Run[] = [];
  for (const [object, members] of byObject) {
    members.sort((a, b) => a.loc.offset - b.loc.offset);
    let run: Run | undefined;
    for (const m of members) {
      const { offset } = m.loc;
      const length = storedLength(m.loc);
      const end = offset + length;
      if (run && offset >= run.start && offset - run.end <= Math.max(FREE_GAP, Math.min(MAX_GAP, run.wanted)) && Math.max(run.end, end) - run.start <= MAX_RUN) {
        run.end = Math.max(run.end, end);
        run.wanted += length;
        run.members.push(m);
        continue;
      }
      run = { object, start: offset, end, wanted: length, members: [m] };
      runs.push(run);
    }
  }
  return runs;
}

/**
 * Whole blobs by their locations (undefined: absent), each checked against
 * the most bytes its caller budgeted before anything is fetched.
 */
export async function readLocated(
  s3: S3Objects,
  digests: Uint8Array[],
  locs: (Location | undefined)[],
  maxBytes: number[],
  opts: ReadOptions = {},
): Promise<(Uint8Array[] | undefined)[]> {
  const out: (Uint8Array[] | undefined)[] = new Array(digests.length).fill(undefined);
  const located: { i: number; loc: Location }[] = [];
  locs.forEach((loc, i) => {
    if (!loc) return;
    if (loc.length > maxBytes[i]) {
      throw storageError(`blob ${b3String(digests[i])} is ${loc.length} bytes, more than the ${maxBytes[i]} its directory entry states`);
    }
    if (loc.length === 0) out[i] = [];
    else located.push({ i, loc });
  });
  const limit = new Limiter(RUNS_IN_FLIGHT);
  await Promise.all(
    runsOf(located).map((run) =>
      limit.run(async () => {
        const chunks = await fetchRange(s3, run.object, run.start, run.end - run.start, opts.signal);
        const starts = chunkStarts(chunks);
        // Compressed members are decoded and checked on the inflating threads (inflate-pool.ts); small ones a batch per job.
        const bytesOf = (loc: Location) => sliceChunks(chunks, starts, loc.offset - run.start, storedLength(loc));
        const batches: { i: number; loc: Location }[][] = [];
        let rawInBatch = Infinity;
        const others: Promise<void>[] = [];
        for (const m of run.members) {
          if (m.loc.codec !== 'zstd') {
            others.push(inflateWhole(digests[m.i], m.loc, bytesOf(m.loc)).then((b) => void (out[m.i] = b)));
            continue;
          }
          if (rawInBatch + m.loc.length > BATCH_RAW) {
            batches.push([]);
            rawInBatch = 0;
          }
          batches[batches.length - 1].push(m);
          rawInBatch += m.loc.length;
        }
        await Promise.all([
          ...others,
          ...batches.map(async (b) => {
            const raw = await inflateSmall(b.map(({ i, loc }) => ({ digest: digests[i], loc, chunks: bytesOf(loc) })));
            b.forEach(({ i }, k) => (out[i] = [raw[k]]));
          }),
        ]);
      }),
    ),
  );
  return out;
}

/** Bytes [offset, offset+length) of a located blob. */
export async function readPart(s3: S3Objects, digest: Uint8Array, loc: Location, offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array[]> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > loc.length) {
    throw invalid(`range ${offset}+${length} is outside blob ${b3String(digest)} (${loc.length} bytes)`);
  }
  if (length === 0) return [];
  if (loc.codec) return readCompressedPart(s3, digest, loc, offset, length, opts.signal);
  return fetchRange(s3, loc.object, loc.offset + offset, length, opts.signal);
}
