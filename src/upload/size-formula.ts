// Which DirectoryNode.size formula a remote daemon checks (wire.md §8): put
// a two-level probe closure with the current (2n+S) size; a server that
// answers "has wrong size" wants the legacy n+S one.
import type { DirectoryService } from '../castore/directory-service.js';
import { putClosure } from '../castore/directory-service.js';
import type { Directory } from '../castore/messages.js';
import { directoryDigest, directorySize, type SizeFormula } from '../castore/directory.js';
import { isKind } from '../castore/errors.js';

export async function detectSizeFormula(dirs: DirectoryService): Promise<SizeFormula> {
  // One symlink: no blob reference, so the probe never leaves a directory naming a blob the store lacks.
  const x: Directory = { directories: [], files: [], symlinks: [{ name: Buffer.from('.keep'), target: Buffer.from('.') }] };
  const y: Directory = { directories: [{ name: Buffer.from('x'), digest: directoryDigest(x), size: directorySize(x, 'head') }], files: [], symlinks: [] };
  try {
    await putClosure(dirs, [x, y]);
    return 'head';
  } catch (err) {
    if (isKind(err, 'invalid') && /wrong size/.test((err as Error).message)) return 'legacy';
    throw err;
  }
}
