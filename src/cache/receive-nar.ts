// A NAR file as a binary cache receives it (`nix copy --to` PUTs it, or
// `import` downloads it): decompressed, parsed and ingested into the
// castore while it streams, its file hash and NAR hash computed on the way.
import { createHash } from 'node:crypto';
import type { Castore } from '../store/render-nar.js';
import { ingestNar, type NarIngestResult } from '../castore/nar-ingest.js';
import type { SizeFormula } from '../castore/directory.js';
import type { Compression } from '../nix/compression-names.js';

export interface ReceivedNar extends NarIngestResult {
  /** SHA-256 and size of the file as received (compressed). */
  fileSha256: Buffer;
  fileSize: number;
}

export interface ReceiveOptions {
  formula?: SizeFormula;
  maxNarSize?: number;
  /** Refuse files (as received) longer than this. */
  maxFileSize?: number;
  /** Told of memory the upload will hold beyond its first (NarIngestOptions.hold; the decompressor's); throws to refuse it. */
  hold?: (bytes: number) => void;
}

export class TooLargeError extends Error {
  override name = 'TooLargeError';
}

export async function receiveNar(
  body: AsyncIterable<Uint8Array>,
  compression: Compression,
  castore: Castore,
  opts: ReceiveOptions = {},
): Promise<ReceivedNar> {
  const fileHash = createHash('sha256');
  let fileSize = 0;
  const maxFileSize = opts.maxFileSize ?? Number.MAX_SAFE_INTEGER;
  async function* file(): AsyncGenerator<Uint8Array> {
    for await (const chunk of body) {
      fileSize += chunk.length;
      if (fileSize > maxFileSize) throw new TooLargeError(`the file is larger than the ${maxFileSize} bytes accepted`);
      fileHash.update(chunk);
      yield chunk;
    }
  }
  const { decompress } = await import('../nix/compression.js');
  const result = await ingestNar(decompress(file(), compression, opts.hold), castore, { formula: opts.formula, maxNarSize: opts.maxNarSize, hold: opts.hold });
  return { ...result, fileSha256: fileHash.digest(), fileSize };
}
