// Checks a Directory Put stream (wire.md §5.2): each directory valid, its
// children sent earlier in the same stream with a size matching either
// formula, and exactly one root at the end. Backends buffer the accepted
// directories and write them only once the whole stream checks out, so a
// rejected or cancelled stream leaves nothing behind.
import type { Directory } from './messages.js';
import { directoryDigest, directorySize, validateDirectory, showName, SIZE_FORMULAS } from './directory.js';
import { b3Hex, b3String } from './digest.js';
import { invalid } from './errors.js';

interface Seen {
  digest: Buffer;
  dir: Directory;
  sizes: number[];
}

export class ClosureValidator {
  private readonly seen = new Map<string, Seen>();
  private readonly referenced = new Set<string>();
  /** Accepted directories in arrival order (children before parents). */
  readonly ordered: { digest: Buffer; dir: Directory }[] = [];

  add(dir: Directory): Buffer {
    validateDirectory(dir);
    for (const child of dir.directories) {
      const known = this.seen.get(b3Hex(child.digest));
      if (!known) {
        throw invalid(`${showName(child.name)} refers to unseen child dir: ${b3String(child.digest)} (unknown directory was referenced)`);
      }
      if (!known.sizes.includes(child.size)) {
        throw invalid(`${showName(child.name)} has wrong size, specified ${child.size}, recorded ${known.sizes[0]}`);
      }
    }
    const digest = directoryDigest(dir);
    const key = b3Hex(digest);
    if (!this.seen.has(key)) {
      const sizes = [...new Set(SIZE_FORMULAS.map((f) => directorySize(dir, f)))];
      this.seen.set(key, { digest, dir, sizes });
      this.ordered.push({ digest, dir });
      for (const child of dir.directories) this.referenced.add(b3Hex(child.digest));
    }
    return digest;
  }

  /** The single root's digest; throws when the stream was empty or disconnected. */
  finish(): Buffer {
    if (this.ordered.length === 0) throw invalid('got no directories');
    const roots = this.ordered.filter((e) => !this.referenced.has(b3Hex(e.digest)));
    if (roots.length !== 1) throw invalid(`graph has disconnected roots (${roots.length} roots)`);
    return roots[0].digest;
  }
}
