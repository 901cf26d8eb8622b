// Reads a file handle in chunks with the next read already in flight while
// the caller consumes the current chunk, so disk latency overlaps with
// hashing or sending. Buffers are sized to what is left (no 1 MiB buffer
// for a 2 KiB file).
import type { FileHandle } from 'node:fs/promises';

export const READ_CHUNK = 1 << 20;

/** Yields `size` bytes (or up to EOF when size is undefined) from `h`; does not close it. */
export async function* readAhead(h: FileHandle, size?: number): AsyncGenerator<Buffer> {
  let pos = 0;
  let eof = false;
  const next = (): Promise<Buffer> | undefined => {
    if (eof || (size !== undefined && pos >= size)) return undefined;
    const len = size === undefined ? READ_CHUNK : Math.min(READ_CHUNK, size - pos);
    const at = pos;
    pos += len;
    const buf = Buffer.allocUnsafe(len);
    return h.read(buf, 0, len, at).then(({ bytesRead }) => {
      if (bytesRead < len) eof = true;
      return buf.subarray(0, bytesRead);
    });
  };
  let pending = next();
  try {
    while (pending) {
      const chunk = await pending;
      pending = next();
      if (chunk.length === 0) break;
      yield chunk;
    }
  } finally {
    await pending?.catch(() => {}); // never close the handle under an outstanding read
  }
}
