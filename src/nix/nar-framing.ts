// A NAR written by its caller piece by piece, synchronously, into a sink
// (store.md §5): for ingesting, which walks the files itself and only
// needs the NAR's hash. Driving writeNar's async generators cost several
// promises, generator objects and iterator results per file (a third of a
// copy's heap allocations); the same framing and the same checks here cost
// none.
import { NarError, NarTokens, Output, validateEntryName, validateSymlinkTarget } from './nar.js';

export class NarFramer {
  private readonly out: Output;

  /** `sink` gets the NAR's bytes in order and must be done with each array when it returns. */
  constructor(sink: (bytes: Uint8Array) => void) {
    this.out = new Output(sink);
  }

  /** The archive's header, then the root node's `type`: call first. */
  begin(): void {
    this.out.write(NarTokens.NAR_START);
  }

  directory(): void {
    this.out.write(NarTokens.DIRECTORY);
  }

  /** An entry of the directory being written; `prev` the entry before it, if any (names must ascend bytewise). */
  entry(name: Uint8Array, prev: Uint8Array | undefined): void {
    validateEntryName(name);
    if (prev !== undefined) {
      const c = Buffer.compare(prev, name);
      if (c === 0) throw new NarError(`duplicate NAR entry name ${JSON.stringify(Buffer.from(name).toString())}`);
      if (c > 0) throw new NarError(`NAR entry names not sorted: ${JSON.stringify(Buffer.from(name).toString())} comes after ${JSON.stringify(Buffer.from(prev).toString())}`);
    }
    this.out.write(NarTokens.ENTRY_START);
    this.out.writeString(name);
    this.out.write(NarTokens.NODE_START);
  }

  /** A regular file's header; its `size` bytes follow through contents(), then regularEnd(). */
  regular(executable: boolean, size: number): void {
    if (!Number.isSafeInteger(size) || size < 0) throw new NarError(`invalid file size ${String(size)}: must be a non-negative integer`);
    this.out.write(executable ? NarTokens.EXECUTABLE : NarTokens.REGULAR);
    this.out.writeU64(size);
  }

  /** File bytes; large ones go to the sink as they are (not copied). */
  contents(bytes: Uint8Array): void {
    if (bytes.length >= PASS_THROUGH) this.out.pass(bytes);
    else this.out.write(bytes);
  }

  /** Ends a file whose header said `size` bytes and whose contents() gave `got`. */
  regularEnd(size: number, got: number): void {
    if (got !== size) throw new NarError(`file contents too ${got < size ? 'short' : 'long'}: expected ${size} bytes, got ${got} (did the file change while it was read?)`);
    this.out.writeZeros((8 - (size % 8)) % 8);
  }

  symlink(target: Uint8Array): void {
    validateSymlinkTarget(target);
    this.out.write(NarTokens.SYMLINK);
    this.out.writeString(target);
  }

  /** `)`: ends a node, or an entry. */
  close(): void {
    this.out.write(NarTokens.CLOSE);
  }

  /** Hands everything written so far to the sink: before bytes that reach it another way, and last (end). */
  flush(): void {
    this.out.flush();
  }

  /** Hands everything written so far to the sink: call last. */
  end(): void {
    this.out.flush();
  }
}

/** File bytes from this size on are handed to the sink as they are (as writeNar does). */
const PASS_THROUGH = 16 * 1024;
