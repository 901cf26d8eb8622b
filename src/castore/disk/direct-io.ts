// O_DIRECT writes: from aligned slabs (aligned-slabs.ts), at offsets and of
// lengths that are multiples of DIRECT_ALIGN. Used where the bytes are
// fsynced before anyone is told they are stored, so the page cache would
// only add a copy into fresh pages (about 1 s of system time per GB on a
// VM whose free memory the host took back) and their writeback.
import { constants as fsConstants } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { AlignedSlabs } from './aligned-slabs.js';
import { tempName } from './atomic-files.js';

/** O_DIRECT offsets and lengths are multiples of this (any logical block size up to a page). */
export const DIRECT_ALIGN = 4096;

const O_DIRECT: number | undefined = fsConstants.O_DIRECT;
/** open() flags of a new file written with O_DIRECT (like 'wx'). */
export const DIRECT_FLAGS = O_DIRECT === undefined ? 0 : fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_DIRECT;

const counts = { directWrites: 0 };
/** How many O_DIRECT writes were issued (for tests). */
export function directWriteCount(): number {
  return counts.directWrites;
}

/** Whether files in `dir` take aligned O_DIRECT writes (tmpfs before Linux 6.6 and some FUSE filesystems do not). */
export async function directWritesWork(dir: string, slabs: AlignedSlabs): Promise<boolean> {
  if (O_DIRECT === undefined) return false;
  const slab = slabs.take();
  if (!slab) return false;
  const path = tempName(dir);
  let h: FileHandle | undefined;
  try {
    h = await open(path, DIRECT_FLAGS, 0o644);
    await h.write(slab, 0, DIRECT_ALIGN, 0);
    return true;
  } catch {
    return false;
  } finally {
    slabs.give(slab);
    await h?.close().catch(() => {});
    if (h) await unlink(path).catch(() => {});
  }
}

/** Writes `length` bytes (a multiple of DIRECT_ALIGN) of a slab at `position`, finishing short writes. */
export async function writeSlab(h: FileHandle, slab: Uint8Array, length: number, position: number): Promise<void> {
  counts.directWrites++;
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await h.write(slab, done, length - done, position + done);
    if (bytesWritten <= 0) throw new Error('the disk took no bytes');
    done += bytesWritten;
  }
}

export const alignUp = (n: number): number => Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;
