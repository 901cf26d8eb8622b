// A large blob's own file: written to a temp file, fsynced, renamed into
// place under its digest, which the writer computes. Bytes are written at
// explicit offsets without waiting for each write, so disk I/O overlaps
// with receiving the next chunk.
//
// Where the filesystem allows, the file is written with O_DIRECT from
// aligned slabs (direct-io.ts): the blob is fsynced before its Put returns
// anyway. Otherwise, or when no slab is free, small chunks (a daemon passes
// on network reads of 16 KiB) are gathered into one writev: a thread-pool
// round trip each would cost more than the bytes.
import { open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ACCEPTED } from '../blob-service.js';
import { Blake3Stream } from '../digest.js';
import { CastoreError, storageError } from '../errors.js';
import { SLAB_BYTES, type AlignedSlabs } from './aligned-slabs.js';
import { exists, renameInto, tempName } from './atomic-files.js';
import { alignUp, DIRECT_ALIGN, DIRECT_FLAGS, writeSlab } from './direct-io.js';
import { syncDir } from './dir-sync.js';
import type { DiskLayout } from './disk-layout.js';

/** Bytes in flight per blob through the page cache. */
const MAX_PENDING = 16 << 20;
/** Slabs in flight per blob with O_DIRECT: enough to keep the thread pool's 4 threads busy. */
const MAX_PENDING_SLABS = 4;
/** Chunks are gathered into one writev of this many bytes, or chunks (well under IOV_MAX). */
export const WRITE_MIN = 1 << 20;
const WRITE_MAX_CHUNKS = 256;

async function writeFully(h: FileHandle, chunks: Uint8Array[], position: number): Promise<void> {
  let { bytesWritten } = await h.writev(chunks, position);
  // A short writev (rare: a full disk, a signal) finishes one chunk at a time.
  for (const c of chunks) {
    if (bytesWritten >= c.length) {
      bytesWritten -= c.length;
      position += c.length;
      continue;
    }
    for (let off = bytesWritten; off < c.length; ) off += (await h.write(c, off, c.length - off, position + off)).bytesWritten;
    position += c.length;
    bytesWritten = 0;
  }
}

/**
 * `chunk`, or a copy of it when it is a small view of a much larger buffer
 * (a daemon's network reads: 16 KiB of one stream inside a 64 KiB read
 * shared with others). Bytes a writer keeps while its client idles must
 * not keep four times their size alive.
 */
export function owned(chunk: Uint8Array): Uint8Array {
  return chunk.byteLength * 2 >= chunk.buffer.byteLength ? chunk : Buffer.from(chunk);
}

export interface BlobFileWriter {
  /** `released` is called once the chunk's memory is no longer needed (copied to a slab, or written). */
  write(chunk: Uint8Array, released?: () => void): Promise<void>;
  /** Makes the file durable under its digest's name (a file already there is kept); returns the digest. */
  close(signal?: AbortSignal): Promise<Buffer>;
  abort(): Promise<void>;
}

/**
 * `slabs` undefined: through the page cache only. `stored` hears of each
 * blob that is in place when close() returns.
 */
export function blobFileWriter(layout: DiskLayout, slabs: AlignedSlabs | undefined, stored: (digest: Buffer) => void): BlobFileWriter {
  let tmp: string | undefined;
  let handle: Promise<FileHandle> | undefined;
  let direct = slabs !== undefined;
  let offset = 0;
  let slab: Uint8Array | undefined;
  let slabUsed = 0;
  let gathered: Uint8Array[] = [];
  let gatheredReleases: (() => void)[] = [];
  let gatheredBytes = 0;
  let pendingBytes = 0;
  const pending = new Set<Promise<void>>();
  let writeError: unknown;
  /** Set by abort: a write still running stops, and takes no more slabs. */
  let discarded = false;
  const hash = new Blake3Stream();

  const file = (): Promise<FileHandle> =>
    (handle ??= layout.init().then(() => {
      tmp = tempName(layout.tmp);
      return open(tmp, direct ? DIRECT_FLAGS : 'wx', 0o644);
    }));

  const track = (write: Promise<void>, bytes: number, after?: () => void): void => {
    pendingBytes += bytes;
    const p: Promise<void> = write
      .catch((err) => void (writeError ??= storageError(`writing blob: ${(err as Error).message}`, err)))
      .finally(() => {
        pending.delete(p);
        pendingBytes -= bytes;
        after?.();
      });
    pending.add(p);
  };

  // Slabs are hashed whole (1 MiB at a time hashes faster than network
  // pieces, and needs no staging copy). The last one is written padded to
  // the alignment; close() truncates the padding.
  const submitSlab = async (): Promise<void> => {
    if (!slab || slabUsed === 0) return;
    const s = slab;
    const used = slabUsed;
    slab = undefined;
    slabUsed = 0;
    hash.update(used === SLAB_BYTES ? s : s.subarray(0, used));
    const h = await file();
    const at = offset;
    offset += used;
    track(writeSlab(h, s, alignUp(used), at), used, () => slabs!.give(s));
    while (pending.size >= MAX_PENDING_SLABS) await Promise.race(pending);
  };

  // All slabs are out: this blob goes on through the page cache, from an
  // aligned offset (only full slabs were written so far).
  const leaveDirect = async (): Promise<void> => {
    await Promise.all(pending);
    direct = false;
    if (!handle) return;
    // The old descriptor is closed before the new one is opened (one fewer
    // in use when descriptors run short), and the open is awaited right here,
    // so an EMFILE fails this Put instead of escaping as an unhandled rejection.
    const old = await handle;
    await old.close();
    const reopened = open(tmp!, 'r+');
    handle = reopened;
    try {
      await reopened;
    } catch (err) {
      handle = undefined;
      throw storageError(`reopening the blob's temp file: ${(err as Error).message}`, err);
    }
  };

  const writeGathered = async (): Promise<void> => {
    if (gatheredBytes === 0) return;
    const chunks = gathered;
    const releases = gatheredReleases;
    const bytes = gatheredBytes;
    gathered = [];
    gatheredReleases = [];
    gatheredBytes = 0;
    const h = await file();
    const at = offset;
    offset += bytes;
    track(writeFully(h, chunks, at), bytes, () => releases.forEach((r) => r()));
    while (pendingBytes > MAX_PENDING && pending.size > 0) await Promise.race(pending);
  };

  const flush = async (): Promise<void> => {
    const padded = direct && slabUsed % DIRECT_ALIGN !== 0;
    if (direct) await submitSlab();
    else await writeGathered();
    await Promise.all(pending);
    if (writeError) throw writeError;
    if (padded) await (await file()).truncate(offset);
  };

  const discard = async (): Promise<void> => {
    discarded = true;
    gathered = [];
    for (const r of gatheredReleases.splice(0)) r();
    if (slab) slabs!.give(slab);
    slab = undefined;
    await Promise.allSettled(pending);
    const h = await handle?.catch(() => undefined);
    await h?.close().catch(() => {});
    if (tmp) await unlink(tmp).catch(() => {});
  };

  // Hashed and kept for the next writev. A caller that hands memory back
  // (released) manages it; otherwise keep our own copy of a small view
  // (owned): see owned().
  const gather = (chunk: Uint8Array, released?: () => void): void => {
    hash.update(chunk);
    if (released) {
      gathered.push(chunk);
      gatheredReleases.push(released);
    } else gathered.push(owned(chunk));
    gatheredBytes += chunk.length;
  };

  // The common case, a network piece that fits in the current slab (or
  // gathers below WRITE_MIN), is taken without a promise of its own.
  const writeNow = (chunk: Uint8Array, released?: () => void): boolean => {
    if (writeError || discarded) return false;
    if (direct) {
      if (!slab || SLAB_BYTES - slabUsed <= chunk.length) return false;
      slab.set(chunk, slabUsed);
      slabUsed += chunk.length;
      released?.();
      return true;
    }
    if (gatheredBytes + chunk.length >= WRITE_MIN || gathered.length + 1 >= WRITE_MAX_CHUNKS) return false;
    gather(chunk, released);
    return true;
  };

  const writeSlow = async (chunk: Uint8Array, released?: () => void): Promise<void> => {
    let off = 0;
    while (direct && off < chunk.length) {
      if (writeError) throw writeError;
      if (discarded) throw new Error('blob writer aborted');
      slab ??= slabs!.take();
      if (!slab) {
        await leaveDirect();
        break;
      }
      const n = Math.min(SLAB_BYTES - slabUsed, chunk.length - off);
      slab.set(n === chunk.length ? chunk : chunk.subarray(off, off + n), slabUsed);
      slabUsed += n;
      off += n;
      if (slabUsed === SLAB_BYTES) await submitSlab();
    }
    if (off === chunk.length) return released?.(); // all of it copied to slabs
    if (writeError) throw writeError;
    if (discarded) throw new Error('blob writer aborted');
    gather(off === 0 ? chunk : chunk.subarray(off), released);
    if (gatheredBytes >= WRITE_MIN || gathered.length >= WRITE_MAX_CHUNKS) await writeGathered();
  };

  return {
    write: (chunk, released) => (writeNow(chunk, released) ? ACCEPTED : writeSlow(chunk, released)),

    async close(signal) {
      try {
        await flush();
        const digest = hash.digest();
        const target = layout.objectPath('blobs', digest);
        if (await exists(target)) {
          await discard();
          stored(digest);
          return digest;
        }
        const h = await file();
        await h.sync();
        signal?.throwIfAborted(); // checked after the slow part: the last moment to back out
        await h.close();
        await renameInto(tmp!, target);
        stored(digest);
        await syncDir(dirname(target));
        return digest;
      } catch (err) {
        await discard();
        if (signal?.aborted || err instanceof CastoreError) throw err;
        throw storageError(`storing blob: ${(err as Error).message}`, err);
      }
    },

    abort: discard,
  };
}
