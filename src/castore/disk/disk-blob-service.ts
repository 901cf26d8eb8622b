import { open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { BlobService, BlobWriter } from '../blob-service.js';
import { Blake3Stream, checkB3 } from '../digest.js';
import { CastoreError, storageError } from '../errors.js';
import { exists, renameInto, tempName } from './atomic-files.js';
import { syncDir } from './dir-sync.js';
import type { DiskLayout } from './disk-layout.js';
import { readAhead } from './read-ahead.js';

const MAX_PENDING = 16 << 20;

async function writeFully(h: FileHandle, chunk: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) off += (await h.write(chunk, off, chunk.length - off, position + off)).bytesWritten;
}

export class DiskBlobService implements BlobService {
  constructor(private readonly layout: DiskLayout) {}

  async stat(digest: Uint8Array) {
    checkB3(digest);
    await this.layout.init();
    return (await exists(this.layout.objectPath('blobs', digest))) ? { chunks: [] } : undefined;
  }

  async read(digest: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined> {
    checkB3(digest);
    await this.layout.init();
    let h: FileHandle;
    try {
      h = await open(this.layout.objectPath('blobs', digest), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageError(`opening blob: ${(err as Error).message}`, err);
    }
    return (async function* () {
      try {
        yield* readAhead(h);
      } finally {
        await h.close();
      }
    })();
  }

  /**
   * Hashes as bytes arrive and writes them at explicit offsets without
   * waiting for each write, up to MAX_PENDING bytes in flight, so disk I/O
   * overlaps with receiving the next chunk.
   */
  put(): BlobWriter {
    const layout = this.layout;
    const hash = new Blake3Stream();
    let tmp: string | undefined;
    let handle: Promise<FileHandle> | undefined;
    let finished = false;
    let offset = 0;
    let pendingBytes = 0;
    const pending = new Set<Promise<void>>();
    let writeError: unknown;
    const file = (): Promise<FileHandle> =>
      (handle ??= layout.init().then(() => {
        tmp = tempName(layout.tmp);
        return open(tmp, 'wx', 0o644);
      }));
    const flush = async (): Promise<void> => {
      await Promise.all(pending);
      if (writeError) throw writeError;
    };
    const discard = async (): Promise<void> => {
      if (!handle) return;
      await Promise.allSettled(pending);
      await (await handle).close().catch(() => {});
      if (tmp) await unlink(tmp).catch(() => {});
    };
    return {
      async write(chunk) {
        if (finished) throw new Error('blob writer already closed');
        if (writeError) throw writeError;
        if (chunk.length === 0) return;
        hash.update(chunk);
        const h = await file();
        const at = offset;
        offset += chunk.length;
        pendingBytes += chunk.length;
        const p: Promise<void> = writeFully(h, chunk, at)
          .catch((err) => void (writeError ??= storageError(`writing blob: ${(err as Error).message}`, err)))
          .finally(() => {
            pending.delete(p);
            pendingBytes -= chunk.length;
          });
        pending.add(p);
        while (pendingBytes > MAX_PENDING && pending.size > 0) await Promise.race(pending);
      },
      async close(signal) {
        if (finished) throw new Error('blob writer already closed');
        finished = true;
        const digest = hash.digest();
        const h = await file();
        const target = layout.objectPath('blobs', digest);
        try {
          await flush();
          if (await exists(target)) {
            await discard();
            return digest;
          }
          await h.sync();
          signal?.throwIfAborted(); // checked after the slow part: the last moment to back out
          await h.close();
          await renameInto(tmp!, target);
          await syncDir(dirname(target));
        } catch (err) {
          await discard();
          if (signal?.aborted || err instanceof CastoreError) throw err;
          throw storageError(`storing blob: ${(err as Error).message}`, err);
        }
        return digest;
      },
      async abort() {
        finished = true;
        await discard();
      },
    };
  }

  async close(): Promise<void> {}
}
