// Files handed to the copy's uploader as ingest.ts does: each read into the
// memory the uploader gives once it has room, and handed over without
// waiting for it to be stored. Resolves once every one is stored.
import { blake3 } from '../../src/castore/digest.js';
import type { BlobUploader } from '../../src/upload/blob-uploader.js';

export async function feedLikeIngest(uploader: BlobUploader, files: Buffer[]): Promise<void> {
  const stored: Promise<void>[] = [];
  for (const f of files) {
    if (!uploader.hasRoom(f.length)) await uploader.room(f.length);
    const mem = uploader.memoryFor(f.length);
    f.copy(mem);
    stored.push(uploader.ensure(blake3(f), f.length, { bytes: mem }));
  }
  await Promise.all(stored);
}
