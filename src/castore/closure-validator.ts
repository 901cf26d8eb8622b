// Checks a Directory Put stream (wire.md §5.2): each directory valid, its
// children sent earlier in the same stream with a size matching either
// formula, and exactly one root at the end. Backends buffer the accepted
// directories and write them only once the whole stream checks out, so a
// rejected or cancelled stream leaves nothing behind. They are kept as
// their canonical encodings, not decoded: a large path's closure is tens of
// thousands of entries, and a decoded entry (an object and two views of
// the request's memory) takes several times its encoding's bytes.
import type { Directory } from './messages.js';
import { encodeDirectory, directorySize, directoryTooLarge, entryCount, validateDirectory, showName, MAX_DIRECTORY_BYTES, SIZE_FORMULAS } from './directory.js';
import { blake3, b3Hex, b3String } from './digest.js';
import { invalid } from './errors.js';

/** An accepted directory: its digest and canonical encoding (what the backends store). */
export interface EncodedDirectory {
  digest: Buffer;
  encoded: Buffer;
}

export class ClosureValidator {
  /** Sizes (by either formula) of the directories seen, by digest. */
  private readonly seen = new Map<string, number[]>();
  private readonly referenced = new Set<string>();
  /** Accepted directories in arrival order (children before parents). */
  readonly ordered: EncodedDirectory[] = [];

  add(dir: Directory): Buffer {
    validateDirectory(dir);
    for (const child of dir.directories) {
      const sizes = this.seen.get(b3Hex(child.digest));
      if (!sizes) {
        throw invalid(`${showName(child.name)} refers to unseen child dir: ${b3String(child.digest)} (unknown directory was referenced)`);
      }
      if (!sizes.includes(child.size)) {
        throw invalid(`${showName(child.name)} has wrong size, specified ${child.size}, recorded ${sizes[0]}`);
      }
    }
    const encoded = encodeDirectory(dir);
    if (encoded.length > MAX_DIRECTORY_BYTES) throw directoryTooLarge(`a directory of ${entryCount(dir)} entries`, encoded.length);
    const digest = blake3(encoded);
    const key = b3Hex(digest);
    if (!this.seen.has(key)) {
      this.seen.set(key, [...new Set(SIZE_FORMULAS.map((f) => directorySize(dir, f)))]);
      // A copy of its own size: the writer's buffer may be twice as large.
      this.ordered.push({ digest, encoded: Buffer.from(encoded) });
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
