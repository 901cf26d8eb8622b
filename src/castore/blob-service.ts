// The BlobService interface: content-addressed byte streams keyed by BLAKE3.
import type { ChunkMeta } from './messages.js';
import type { BatchBlob } from './batch-messages.js';
import { blake3, b3String, checkB3, sameBytes } from './digest.js';
import { invalid, storageError } from './errors.js';
import type { ObjectStats } from './object-stats.js';
import type { BlobDeltas } from './delta/delta-messages.js';
import type { BlobsFromPath } from './from-path-messages.js';

/**
 * What a BlobWriter's write returns when it took the chunk at once: one
 * shared settled promise, so a caller writing many small pieces can skip
 * awaiting it (an await is a promise and a microtask per piece).
 */
export const ACCEPTED: Promise<void> = Promise.resolve();

export interface BlobWriter {
  /**
   * Resolves once the chunk is accepted (backpressure). The caller must not
   * change the chunk afterwards, unless `released` is called: a writer that
   * supports it calls it once it holds the chunk's memory no more.
   */
  write(chunk: Uint8Array, released?: () => void): Promise<void>;
  /**
   * Finishes the blob; resolves to its BLAKE3 digest once it is durably
   * stored. If `signal` is aborted before the blob is published (the client
   * went away), it is discarded instead and close rejects.
   */
  close(signal?: AbortSignal): Promise<Buffer>;
  /** Discards everything written; nothing becomes visible. */
  abort(): Promise<void>;
}

/** `signal`: the reader went away; a service that can stop its I/O does. */
export interface LentRead {
  chunks: AsyncIterable<Uint8Array>;
  giveBack(chunk: Uint8Array): void;
}

export interface ReadOptions {
  signal?: AbortSignal;
}

/**
 * How far NAR rendering should read ahead of what it writes, for services
 * where each read is a round trip (an object store answers in
 * milliseconds, so many reads must be in flight to keep a NAR flowing).
 */
export interface ReadAheadHint {
  /** Reads in flight at once. */
  reads: number;
  /** Bytes read ahead (in flight or waiting to be written) at most. */
  bytes: number;
  /** sizeOf is one indexed lookup (batched): check stated sizes before reading. */
  sizesFromIndex: boolean;
  /** Pieces a large blob is read in, in parallel (with readRange). */
  rangeBytes: number;
}

export interface BlobService {
  /** `undefined` when absent; otherwise the chunk list (empty = read the digest itself). */
  stat(digest: Uint8Array): Promise<{ chunks: ChunkMeta[] } | undefined>;
  /** The blob's bytes, or `undefined` when absent. */
  read(digest: Uint8Array, opts?: ReadOptions): Promise<AsyncIterable<Uint8Array> | undefined>;
  /**
   * read(), with each chunk lent: the caller gives it back once it keeps
   * no reference to it (or never: then it is garbage), and the service
   * reads later chunks into it again rather than into fresh memory. For
   * services that read into memory of their own (files); a caller that
   * copies each chunk away (a gRPC server serializing it) saves a fresh
   * buffer, and its page faults, per chunk.
   */
  readLent?(digest: Uint8Array): Promise<LentRead | undefined>;
  /**
   * Bytes [offset, offset + length) of a blob, or `undefined` when the blob
   * is absent; a range past its end is an error. Services that can fetch
   * parts of one blob in parallel (S3) have it. The bytes come as the
   * chunks they arrived in (views, not copies: a copy of every byte read
   * cost the S3 renderer more CPU than the rest of its own work).
   */
  readRange?(digest: Uint8Array, offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array[] | undefined>;
  /**
   * Many whole blobs at once, in order (`undefined` for an absent one), for
   * services that fetch neighbours in one request (S3 packs). Each result
   * is at most `maxBytes[i]` long, else the call fails: callers budget
   * memory by those. Each blob comes as chunks, like readRange's.
   */
  readMany?(digests: Uint8Array[], maxBytes: number[], opts?: ReadOptions): Promise<(Uint8Array[] | undefined)[]>;
  /** See ReadAheadHint; absent: a few small files ahead. */
  readonly readAhead?: ReadAheadHint;
  /**
   * The blob's length in bytes, or `undefined` when absent, from the
   * service's own index (no read). Services that cannot tell that cheaply
   * (a gRPC store: Stat carries no size) lack it.
   */
  sizeOf?(digest: Uint8Array): Promise<number | undefined>;
  /**
   * sizeOf of many digests, in order, where a service answers them with
   * less than a call each (a daemon checks every file of a closure twice).
   */
  sizesOf?(digests: Uint8Array[]): Promise<(number | undefined)[]>;
  put(): BlobWriter;
  /**
   * Most bytes one writer keeps in memory before writing them out (a
   * server counts them against its memory budget while a Put is
   * unfinished); undefined: the service does not say.
   */
  readonly heldPerWriter?: number;
  close(): Promise<void>;
  /**
   * Blobs up to this many bytes cost no more to Put again than to Stat
   * first (one round trip either way), so uploaders may skip the Stat.
   */
  readonly putWithoutStatUpTo?: number;

  /**
   * Set by services that gather small blobs into shared objects, each Put
   * resolving only once its whole batch is durable: how many Puts a client
   * should keep in flight to fill a batch. Their writers copy a small
   * blob's bytes at close and call `released` then, so the caller may reuse
   * that memory while the Put waits for its batch.
   */
  readonly putsInFlight?: number;
  /**
   * Set by packing stores: one whole small blob (at most putSmallUpTo
   * bytes) stored with less work per blob than put() (no writer, one
   * call). `copied` is called once its bytes are copied (the caller may
   * reuse their memory then); resolves with its digest once it is durable.
   */
  putSmall?(bytes: Uint8Array, copied?: () => void): Promise<Buffer>;
  readonly putSmallUpTo?: number;
  /**
   * Set by services whose calls cost real CPU per blob (gRPC): the address
   * another thread can open the same service at, so a copy can move its
   * uploads off the thread that reads and hashes.
   */
  readonly offThreadAddr?: string;
  /**
   * Many blobs per call, when this store has that (a gRPC store asks its
   * server once); `undefined` (or no method): one blob per call.
   */
  batches?(): Promise<BlobBatches | undefined>;
  /** nix-castore's delta uploads (delta/delta-store.ts), where the store offers them. */
  deltas?(): Promise<BlobDeltas | undefined>;
  /** A daemon on this machine that reads files itself (from-path-messages.ts), where it offers that to this client. */
  fromPath?(): Promise<BlobsFromPath | undefined>;
  /** How many distinct blobs it holds and their bytes (a full count: call it seldom). */
  stats?(): Promise<ObjectStats>;
}

/** Many blobs at once (protos/nixcastore/v1/blob_batch.proto). */
export interface BlobBatches {
  /** Most bytes one put() should carry: the blobs' data plus BATCH_OVERHEAD each. */
  readonly maxPutBytes: number;
  /** Which of these blobs the store has, in order. */
  has(digests: Uint8Array[]): Promise<boolean[]>;
  /**
   * Stores whole blobs. Each is checked against its digest first: if one
   * differs, it fails ('invalid', naming it) and stores none. Resolves once
   * all are durable. `verified`: the caller computed every digest from these
   * very bytes (a copy's uploader does), so an in-process store need not
   * hash them again; a server never says so for what its clients sent.
   */
  put(blobs: BatchBlob[], opts?: { verified?: boolean }): Promise<void>;
}

/** What one blob adds to a batch beyond its data (digest and framing), at most. */
export const BATCH_OVERHEAD = 48;

/** Throws 'invalid' for the first blob whose digest is malformed or is not its bytes' BLAKE3. */
export function checkBatch(blobs: BatchBlob[]): void {
  blobs.forEach((b, i) => {
    try {
      checkB3(b.digest);
    } catch (err) {
      throw invalid(`blob ${i}: ${(err as Error).message}`);
    }
    const actual = blake3(b.data);
    if (!sameBytes(actual, b.digest)) {
      throw invalid(`blob ${i}: its ${b.data.length} bytes hash to ${b3String(actual)}, not ${b3String(b.digest)}`);
    }
  });
}

/** Batches over any store: its own, or one Stat / Put per blob. */
export async function batchesOf(blobs: BlobService): Promise<BlobBatches> {
  return (await blobs.batches?.()) ?? oneByOne(blobs);
}

function oneByOne(blobs: BlobService): BlobBatches {
  return {
    maxPutBytes: 4 << 20,
    has: (digests) => Promise.all(digests.map((d) => has(blobs, d))),
    async put(batch, opts) {
      if (!opts?.verified) checkBatch(batch);
      await Promise.all(batch.map((b) => putBytes(blobs, b.data)));
    },
  };
}

export async function has(blobs: BlobService, digest: Uint8Array): Promise<boolean> {
  return (await blobs.stat(digest)) !== undefined;
}

export async function putBytes(blobs: BlobService, data: Uint8Array): Promise<Buffer> {
  const w = blobs.put();
  try {
    if (data.length > 0) await w.write(data);
    return await w.close();
  } catch (err) {
    await w.abort().catch(() => {});
    throw err;
  }
}

export async function readAll(blobs: BlobService, digest: Uint8Array): Promise<Buffer | undefined> {
  const stream = await blobs.read(digest);
  if (!stream) return undefined;
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Whole blobs read one at a time (readWhole) at once, where a service cannot read them together. */
export const WHOLE_READS_AT_ONCE = 16;

/** A whole blob of at most `max` bytes, as chunks (else an error as soon as its bytes say so). */
export async function readWhole(blobs: BlobService, digest: Uint8Array, max: number, signal?: AbortSignal): Promise<Uint8Array[] | undefined> {
  const stream = await blobs.read(digest, { signal });
  if (!stream) return undefined;
  const parts: Uint8Array[] = [];
  let got = 0;
  for await (const c of stream) {
    got += c.length;
    if (got > max) throw storageError(`blob ${b3String(digest)} is longer than the ${max} bytes its directory entry states`);
    parts.push(c);
  }
  return parts;
}
