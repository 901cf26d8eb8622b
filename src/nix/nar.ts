/**
 * Streaming NAR writer (store.md §5).
 *
 * Every token is a NAR string: u64le(length) ‖ bytes ‖ zero padding to a
 * multiple of 8. Small tokens are coalesced into output chunks of up to
 * OUTPUT_CHUNK bytes; file chunks of at least PASS_THROUGH bytes are yielded
 * as they are (no copy), so memory stays flat whatever the file sizes.
 */
import { createHash } from 'node:crypto';

/**
 * A file's contents or a directory's entries may come as an array when the
 * producer has them already (NAR rendering's read-ahead mostly does): the
 * writer then takes them in a loop, without an async-iterator step (and its
 * promises) per file, chunk and entry.
 */
export type NarNode =
  | { type: 'regular'; executable: boolean; size: number; contents: () => AsyncIterable<Uint8Array> | readonly Uint8Array[] }
  | { type: 'symlink'; target: Uint8Array }
  | { type: 'directory'; entries: () => AsyncIterable<NarEntry> | Promise<readonly NarEntry[]> };

export interface NarEntry {
  name: Uint8Array;
  node: NarNode;
}

export class NarError extends Error {
  override name = 'NarError';
}

export const MAX_NAME_LENGTH = 255;
export const MAX_TARGET_LENGTH = 4095;

/** Size of the coalesced output chunks. */
const OUTPUT_CHUNK = 64 * 1024;
/** File chunks at least this large are passed through without copying. */
const PASS_THROUGH = 16 * 1024;

const utf8 = new TextEncoder();

/** Encodes a NAR string: u64le(len) ‖ bytes ‖ zero padding to a multiple of 8. */
export function narString(bytes: Uint8Array | string): Uint8Array {
  const b = typeof bytes === 'string' ? utf8.encode(bytes) : bytes;
  const out = new Uint8Array(8 + padded(b.length));
  writeU64(out, 0, b.length);
  out.set(b, 8);
  return out;
}

function padded(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** Little-endian; `n` a safe integer. Byte by byte: a DataView and a BigInt per call were garbage per NAR token. */
function writeU64(out: Uint8Array, offset: number, n: number): void {
  let lo = n >>> 0;
  let hi = Math.floor(n / 0x1_0000_0000) >>> 0;
  for (let i = 0; i < 4; i++, lo >>>= 8) out[offset + i] = lo & 0xff;
  for (let i = 4; i < 8; i++, hi >>>= 8) out[offset + i] = hi & 0xff;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function tokens(...strings: string[]): Uint8Array {
  return concat(...strings.map((s) => narString(s)));
}

/** The pre-concatenated token sequences of store.md §5.2. */
export const NarTokens = Object.freeze({
  /** `nix-archive-1` `(` `type` (56 bytes) */
  NAR_START: tokens('nix-archive-1', '(', 'type'),
  /** `symlink` `target` (32 bytes) */
  SYMLINK: tokens('symlink', 'target'),
  /** `regular` `contents` (32 bytes) */
  REGULAR: tokens('regular', 'contents'),
  /** `regular` `executable` `` `contents` (64 bytes) */
  EXECUTABLE: tokens('regular', 'executable', '', 'contents'),
  /** `directory` (24 bytes) */
  DIRECTORY: tokens('directory'),
  /** `entry` `(` `name` (48 bytes) */
  ENTRY_START: tokens('entry', '(', 'name'),
  /** `node` `(` `type` (48 bytes) */
  NODE_START: tokens('node', '(', 'type'),
  /** `)` (16 bytes) */
  CLOSE: tokens(')'),
});

function show(bytes: Uint8Array): string {
  return JSON.stringify(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b); // takes Uint8Arrays as they are: no view per comparison (two per entry)
}

/** Throws NarError unless `name` is a valid directory entry name. */
export function validateEntryName(name: Uint8Array): void {
  if (name.length === 0) throw new NarError('invalid NAR entry name: empty');
  if (name.length > MAX_NAME_LENGTH) {
    throw new NarError(`invalid NAR entry name ${show(name)}: ${name.length} bytes, at most ${MAX_NAME_LENGTH} allowed`);
  }
  if (name.includes(0x2f)) throw new NarError(`invalid NAR entry name ${show(name)}: contains "/"`);
  if (name.includes(0)) throw new NarError(`invalid NAR entry name ${show(name)}: contains NUL`);
  if (name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e))) {
    throw new NarError(`invalid NAR entry name ${show(name)}: "." and ".." are not allowed`);
  }
}

/** Throws NarError unless `target` is a valid symlink target. */
export function validateSymlinkTarget(target: Uint8Array): void {
  if (target.length === 0) throw new NarError('invalid symlink target: empty');
  if (target.length > MAX_TARGET_LENGTH) {
    throw new NarError(`invalid symlink target: ${target.length} bytes, at most ${MAX_TARGET_LENGTH} allowed`);
  }
  if (target.includes(0)) throw new NarError(`invalid symlink target ${show(target)}: contains NUL`);
}

/**
 * Collects small writes into OUTPUT_CHUNK-sized arrays; finished ones wait
 * in `ready`, or go to `sink` at once, which must be done with them when
 * it returns: the one buffer is then reused, and nothing is allocated.
 * Exported for writers that frame a NAR themselves (ingesting hashes one
 * without a NarNode tree: nar-framing.ts).
 */
export class Output {
  private buf: Uint8Array;
  private pos = 0;
  private ready: Uint8Array[] = [];

  constructor(
    private readonly sink?: (bytes: Uint8Array) => void,
    private readonly pool?: ChunkPool,
  ) {
    this.buf = pool?.take() ?? new Uint8Array(OUTPUT_CHUNK);
  }

  write(bytes: Uint8Array): void {
    if (bytes.length < this.buf.length - this.pos) {
      // The common case (tokens, names, small files): no view of `bytes` to make.
      this.buf.set(bytes, this.pos);
      this.pos += bytes.length;
      return;
    }
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(bytes.length - off, this.buf.length - this.pos);
      this.buf.set(bytes.subarray(off, off + n), this.pos);
      this.pos += n;
      off += n;
      if (this.pos === this.buf.length) this.handOver();
    }
  }

  writeZeros(n: number): void {
    for (let i = 0; i < n; i++) {
      this.buf[this.pos++] = 0;
      if (this.pos === this.buf.length) this.handOver();
    }
  }

  writeU64(n: number): void {
    if (this.buf.length - this.pos < 8) {
      const b = new Uint8Array(8);
      writeU64(b, 0, n);
      return this.write(b);
    }
    writeU64(this.buf, this.pos, n);
    this.pos += 8;
    if (this.pos === this.buf.length) this.handOver();
  }

  /** narString(bytes), written in place. */
  writeString(bytes: Uint8Array): void {
    this.writeU64(bytes.length);
    this.write(bytes);
    this.writeZeros(padded(bytes.length) - bytes.length);
  }

  /** Everything written so far, then `bytes` as they are (not copied). */
  pass(bytes: Uint8Array): void {
    this.flush();
    if (this.sink) this.sink(bytes);
    else this.ready.push(bytes);
  }

  /** Makes everything written so far available from `take()`. */
  flush(): void {
    if (this.pos === 0) return;
    if (this.sink || this.pos >= this.buf.length / 2) {
      this.handOver();
    } else {
      this.ready.push(this.buf.slice(0, this.pos)); // small: copy and keep reusing the buffer
      this.pos = 0;
    }
  }

  private handOver(): void {
    const done = this.pos === this.buf.length ? this.buf : this.buf.subarray(0, this.pos);
    this.pos = 0;
    if (this.sink) return this.sink(done);
    this.ready.push(done);
    this.buf = this.pool?.take() ?? new Uint8Array(OUTPUT_CHUNK);
  }

  /** `bytes` were copied by write(): a lent chunk goes back to its store. */
  copied(bytes: Uint8Array): void {
    this.pool?.copied(bytes);
  }

  take(): readonly Uint8Array[] {
    if (this.ready.length === 0) return NOTHING;
    const r = this.ready;
    this.ready = [];
    return r;
  }
}

const NOTHING: readonly Uint8Array[] = Object.freeze([]);

/**
 * Output buffers a consumer gives back once done with a chunk, for the
 * next chunks: writing every NAR chunk into fresh memory cost a page fault
 * per 4 KiB (most of a small file's bytes are copied into these).
 */
export class ChunkPool {
  private readonly free: Uint8Array[] = [];
  /** Only buffers made here come back: a file's own bytes passed through may share memory with others. */
  private readonly mine = new WeakSet<ArrayBufferLike>();
  /** A store's read buffers passed through (adopt()), by their memory: they go back to the store. */
  private readonly lenders = new WeakMap<ArrayBufferLike, (chunk: Uint8Array) => void>();
  constructor(private readonly keep = 64) {}
  take(): Uint8Array {
    const b = this.free.pop() ?? new Uint8Array(OUTPUT_CHUNK);
    this.mine.add(b.buffer);
    return b;
  }
  /**
   * A file's chunk lent by the store (BlobService.readLent): once the
   * consumer gives it back, or the writer has copied it, it goes to
   * `giveBack` and the store reads into it again.
   */
  adopt(chunk: Uint8Array, giveBack: (chunk: Uint8Array) => void): void {
    this.lenders.set(chunk.buffer, giveBack);
  }
  /** A chunk the writer copied (too small to pass through): if lent, back to its store at once. */
  copied(chunk: Uint8Array): void {
    this.backToLender(chunk);
  }
  /** A chunk writeNar yielded, no longer used by anyone; others are ignored. */
  give(chunk: Uint8Array): void {
    if (this.backToLender(chunk)) return;
    if (!this.mine.has(chunk.buffer) || this.free.length >= this.keep) return;
    this.mine.delete(chunk.buffer); // given back once, whatever the views of it
    this.free.push(new Uint8Array(chunk.buffer));
  }
  /** Whether `chunk` was lent (adopt()); if so it goes back to its lender, once. */
  private backToLender(chunk: Uint8Array): boolean {
    const lender = this.lenders.get(chunk.buffer);
    if (lender === undefined) return false;
    this.lenders.delete(chunk.buffer);
    lender(chunk);
    return true;
  }
}

type DirFrame = {
  /** Set for entries that come one by one. */
  iter?: AsyncIterator<NarEntry>;
  /** Set for entries given as an array (or still coming as one): taken from `at` on. */
  list?: readonly NarEntry[] | Promise<readonly NarEntry[]>;
  at: number;
  prev: Uint8Array | null;
};

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** The frame's next entry: from its array without a promise where it has one. */
function nextEntry(f: DirFrame): IteratorResult<NarEntry> | Promise<IteratorResult<NarEntry>> {
  if (f.iter) return f.iter.next();
  const list = f.list!;
  if (!Array.isArray(list)) {
    return (list as Promise<readonly NarEntry[]>).then((l) => {
      f.list = l;
      return nextEntry(f);
    });
  }
  const l = list as readonly NarEntry[];
  return f.at < l.length ? { done: false, value: l[f.at++] } : DONE;
}

/**
 * Yields the NAR bytes of `root` in order; memory stays flat (file contents are
 * streamed through, never buffered whole). Throws NarError on a file whose
 * contents do not match its size, unsorted/duplicate/invalid entry names and
 * invalid symlink targets. Yielded arrays must not be modified by the caller.
 */
export function writeNar(root: NarNode, pool?: ChunkPool): AsyncGenerator<Uint8Array> {
  return narChunks(root, new Output(undefined, pool));
}

/**
 * Feeds the NAR bytes of `root` to `sink` in order, as writeNar yields
 * them, but each array only for the duration of the call (buffers are
 * reused): for hashing, which keeps nothing.
 */
export async function narInto(root: NarNode, sink: (bytes: Uint8Array) => void): Promise<void> {
  for await (const _ of narChunks(root, new Output(sink))) {
    // everything went to the sink
  }
}

async function* narChunks(root: NarNode, out: Output): AsyncGenerator<Uint8Array> {
  const stack: DirFrame[] = [];
  try {
    out.write(NarTokens.NAR_START);
    let node: NarNode | null = root;
    for (;;) {
      if (node !== null) {
        if (node.type === 'directory') {
          out.write(NarTokens.DIRECTORY);
          const e = node.entries();
          stack.push(Symbol.asyncIterator in e ? { iter: e[Symbol.asyncIterator](), at: 0, prev: null } : { list: e, at: 0, prev: null });
        } else {
          if (node.type === 'regular') {
            const contents = checkedSize(node).contents();
            if (Array.isArray(contents)) writeRegularNow(node, contents as readonly Uint8Array[], out);
            else yield* writeRegular(node, contents as AsyncIterable<Uint8Array>, out);
          } else if (node.type === 'symlink') {
            validateSymlinkTarget(node.target);
            out.write(NarTokens.SYMLINK);
            out.writeString(node.target);
          } else {
            throw new NarError(`unknown NAR node type ${JSON.stringify((node as { type: unknown }).type)}`);
          }
          out.write(NarTokens.CLOSE); // closes the node
          if (stack.length > 0) out.write(NarTokens.CLOSE); // closes the entry
        }
        node = null;
      }
      for (const chunk of out.take()) yield chunk;
      const top = stack[stack.length - 1];
      if (top === undefined) break;
      let r = nextEntry(top);
      if (r instanceof Promise) r = await r;
      if (r.done) {
        stack.pop();
        out.write(NarTokens.CLOSE); // closes the directory node
        if (stack.length > 0) out.write(NarTokens.CLOSE); // closes its entry
        continue;
      }
      const { name } = r.value;
      validateEntryName(name);
      if (top.prev !== null) {
        const c = compareBytes(top.prev, name);
        if (c === 0) throw new NarError(`duplicate NAR entry name ${show(name)}`);
        if (c > 0) {
          throw new NarError(
            `NAR entry names not sorted: ${show(name)} comes after ${show(top.prev)}; ` +
              'entries must be strictly ascending bytewise',
          );
        }
      }
      top.prev = name.slice(); // the producer may reuse its buffer
      out.write(NarTokens.ENTRY_START);
      out.writeString(name);
      out.write(NarTokens.NODE_START);
      node = r.value.node;
    }
    out.flush();
    for (const chunk of out.take()) yield chunk;
  } finally {
    // On error or early return, let open directory iterators clean up.
    while (stack.length > 0) {
      const f = stack.pop()!;
      try {
        await f.iter?.return?.();
      } catch {
        // ignore: we are already unwinding
      }
    }
  }
}

type RegularNode = Extract<NarNode, { type: 'regular' }>;

function checkedSize(node: RegularNode): RegularNode {
  if (!Number.isSafeInteger(node.size) || node.size < 0) {
    throw new NarError(`invalid file size ${String(node.size)}: must be a non-negative integer`);
  }
  return node;
}

/** One chunk of a file's contents into `out`; the bytes so far after it. */
function fileChunk(chunk: Uint8Array, got: number, size: number, out: Output): number {
  if (chunk.length === 0) return got;
  if (got + chunk.length > size) {
    throw new NarError(`file contents too long: expected ${size} bytes, got ${got + chunk.length} (or more)`);
  }
  if (chunk.length >= PASS_THROUGH) out.pass(chunk);
  else {
    out.write(chunk);
    out.copied(chunk);
  }
  return got + chunk.length;
}

function endRegular(got: number, size: number, out: Output): void {
  if (got !== size) throw new NarError(`file contents too short: expected ${size} bytes, got ${got}`);
  out.writeZeros(padded(size) - size);
}

/** A file whose contents are all here: no generator, no promise. */
function writeRegularNow(node: RegularNode, contents: readonly Uint8Array[], out: Output): void {
  out.write(node.executable ? NarTokens.EXECUTABLE : NarTokens.REGULAR);
  out.writeU64(node.size);
  let got = 0;
  for (let i = 0; i < contents.length; i++) got = fileChunk(contents[i], got, node.size, out);
  endRegular(got, node.size, out);
}

async function* writeRegular(node: RegularNode, contents: AsyncIterable<Uint8Array>, out: Output): AsyncGenerator<Uint8Array> {
  out.write(node.executable ? NarTokens.EXECUTABLE : NarTokens.REGULAR);
  out.writeU64(node.size);
  let got = 0;
  for await (const chunk of contents) {
    got = fileChunk(chunk, got, node.size, out);
    for (const c of out.take()) yield c;
  }
  endRegular(got, node.size, out);
}

/** Writes the NAR of `root` and returns its SHA-256 and size. */
export async function narHashAndSize(root: NarNode): Promise<{ sha256: Uint8Array; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  await narInto(root, (chunk) => {
    h.update(chunk);
    size += chunk.length;
  });
  return { sha256: new Uint8Array(h.digest()), size };
}

/** Buffers a whole NAR in memory (handy for tests and small objects). */
export async function narBytes(root: NarNode): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of writeNar(root)) parts.push(chunk);
  return concat(...parts);
}
