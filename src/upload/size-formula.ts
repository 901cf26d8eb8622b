// Which DirectoryNode.size formula a remote daemon checks (wire.md §8): put
// a two-level probe closure with the current (2n+S) size; a server that
// answers "has wrong size" wants the legacy n+S one.
import type { DirectoryService } from '../castore/directory-service.js';
import { putClosure } from '../castore/directory-service.js';
import type { Directory } from '../castore/messages.js';
import { directoryDigest, directorySize, type SizeFormula } from '../castore/directory.js';
import { EMPTY_BLOB_DIGEST } from '../castore/digest.js';
import { isKind } from '../castore/errors.js';

export async function detectSizeFormula(dirs: DirectoryService): Promise<SizeFormula> {
  const x: Directory = { directories: [], files: [{ name: Buffer.from('.keep'), digest: EMPTY_BLOB_DIGEST, size: 0, executable: false }], symlinks: [] };
  const y: Directory = { directories: [{ name: Buffer.from('x'), digest: directoryDigest(x), size: directorySize(x, 'head') }], files: [], symlinks: [] };
  try {
    await putClosure(dirs, [x, y]);
    return 'head';
  } catch (err) {
    if (isKind(err, 'invalid') && /wrong size/.test((err as Error).message)) return 'legacy';
    throw err;
  }
}
