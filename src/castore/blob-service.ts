// The BlobService interface: content-addressed byte streams keyed by BLAKE3.
import type { ChunkMeta } from './messages.js';

export interface BlobWriter {
  /** Resolves once the chunk is accepted (backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Finishes the blob; resolves to its BLAKE3 digest once it is durably
   * stored. If `signal` is aborted before the blob is published (the client
   * went away), it is discarded instead and close rejects.
   */
  close(signal?: AbortSignal): Promise<Buffer>;
  /** Discards everything written; nothing becomes visible. */
  abort(): Promise<void>;
}

export interface BlobService {
  /** `undefined` when absent; otherwise the chunk list (empty = read the digest itself). */
  stat(digest: Uint8Array): Promise<{ chunks: ChunkMeta[] } | undefined>;
  /** The blob's bytes, or `undefined` when absent. */
  read(digest: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined>;
  put(): BlobWriter;
  close(): Promise<void>;
  /**
   * Blobs up to this many bytes cost no more to Put again than to Stat
   * first (one round trip either way), so uploaders may skip the Stat.
   */
  readonly putWithoutStatUpTo?: number;
  /**
   * Set by services whose calls cost real CPU per blob (gRPC): the address
   * another thread can open the same service at, so a copy can move its
   * uploads off the thread that reads and hashes.
   */
  readonly offThreadAddr?: string;
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
