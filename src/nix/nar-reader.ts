/**
 * Streaming NAR reader (store.md §5): the inverse of nar.ts's writer. It
 * accepts exactly the canonical form Nix writes and refuses what
 * `nix-store --restore` refuses — a wrong magic, tokens out of order,
 * entries not strictly ascending (so no duplicates), bad names or symlink
 * targets, non-zero padding, a short stream and bytes after the end.
 * Every length is checked before anything is read or kept for it; file
 * contents stream through without being buffered.
 */
import { NarError, validateEntryName, validateSymlinkTarget, MAX_NAME_LENGTH, MAX_TARGET_LENGTH } from './nar.js';

export { NarError };

/** What a reader tells its consumer, in NAR order. `name` is undefined for the root. */
export interface NarSink {
  directoryStart(name: Uint8Array | undefined): void | Promise<void>;
  directoryEnd(): void | Promise<void>;
  /** `contents` yields exactly `size` bytes and must be read to its end (or the reader does it) before this returns. */
  file(name: Uint8Array | undefined, executable: boolean, size: number, contents: AsyncIterable<Uint8Array>): Promise<void>;
  symlink(name: Uint8Array | undefined, target: Uint8Array): void | Promise<void>;
}

export interface NarReadOptions {
  /** Deepest directory nesting accepted (a store path's own limit is PATH_MAX). */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 1024;
/** Longest keyword token (`nix-archive-1`). */
const MAX_TOKEN = 16;

const utf8 = new TextDecoder();
const EMPTY = new Uint8Array(0);

/** Pulls exact byte counts out of a stream of chunks of any size. */
class ByteReader {
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  /** Bytes handed out so far. */
  offset = 0;

  constructor(private readonly src: AsyncIterator<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      const r = await this.src.next();
      if (r.done) return false;
      this.buf = r.value;
      this.pos = 0;
    }
    return true;
  }

  /** Exactly `n` bytes (small n: copied when they straddle chunks). */
  async exact(n: number): Promise<Uint8Array> {
    if (!(await this.fill())) throw this.short(n);
    if (this.buf.length - this.pos >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      this.offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) throw this.short(n - got);
      const take = Math.min(n - got, this.buf.length - this.pos);
      out.set(this.buf.subarray(this.pos, this.pos + take), got);
      this.pos += take;
      got += take;
      this.offset += take;
    }
    return out;
  }

  /** The next `n` bytes as they arrive, without copying. */
  async *stream(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw this.short(left);
      const take = Math.min(left, this.buf.length - this.pos);
      const out = this.buf.subarray(this.pos, this.pos + take);
      this.pos += take;
      this.offset += take;
      left -= take;
      yield out;
    }
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill());
  }

  private short(missing: number): NarError {
    return new NarError(`the NAR ends too early: ${missing} more byte(s) expected at offset ${this.offset}`);
  }
}

function u64(b: Uint8Array): number {
  const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NarError(`length ${v} is too large`);
  return Number(v);
}

function show(b: Uint8Array): string {
  return JSON.stringify(utf8.decode(b.subarray(0, 64)));
}

class Parser {
  constructor(
    private readonly r: ByteReader,
    private readonly sink: NarSink,
    private readonly maxDepth: number,
  ) {}

  private async padding(len: number): Promise<void> {
    const pad = (8 - (len % 8)) % 8;
    if (pad === 0) return;
    const p = await this.r.exact(pad);
    if (p.some((x) => x !== 0)) throw new NarError(`non-zero padding at offset ${this.r.offset - pad}`);
  }

  /** A string of at most `max` bytes (the bytes are a copy or a view: the caller copies what it keeps). */
  private async string(max: number, what: string): Promise<Uint8Array> {
    const len = u64(await this.r.exact(8));
    if (len > max) throw new NarError(`${what} of ${len} bytes at offset ${this.r.offset - 8}: at most ${max} allowed`);
    const s = len === 0 ? EMPTY : await this.r.exact(len);
    await this.padding(len);
    return s;
  }

  private async token(): Promise<string> {
    const at = this.r.offset;
    const len = u64(await this.r.exact(8));
    if (len > MAX_TOKEN) throw new NarError(`unexpected string of ${len} bytes at offset ${at}: expected a NAR keyword`);
    const s = len === 0 ? EMPTY : await this.r.exact(len);
    await this.padding(len);
    return utf8.decode(s);
  }

  private async expect(word: string): Promise<void> {
    const at = this.r.offset;
    const got = await this.token();
    if (got !== word) throw new NarError(`expected ${JSON.stringify(word)} at offset ${at}, got ${JSON.stringify(got)}`);
  }

  async archive(): Promise<void> {
    const at = this.r.offset;
    const magic = await this.token().catch((err) => {
      // The source's own failures (its decompression, a refused upload) pass as they are.
      throw err instanceof NarError ? new NarError(`not a NAR (no nix-archive-1 magic): ${err.message}`) : err;
    });
    if (magic !== 'nix-archive-1') throw new NarError(`not a NAR: expected "nix-archive-1" at offset ${at}, got ${JSON.stringify(magic)}`);
    await this.node(undefined, 0);
    if (!(await this.r.atEnd())) throw new NarError(`trailing data after the end of the NAR at offset ${this.r.offset}`);
  }

  /** `(` `type` … `)`; the opening `(` is read here. */
  private async node(name: Uint8Array | undefined, depth: number): Promise<void> {
    await this.expect('(');
    await this.expect('type');
    const at = this.r.offset;
    const type = await this.token();
    switch (type) {
      case 'regular':
        return this.regular(name);
      case 'symlink': {
        await this.expect('target');
        const target = (await this.string(MAX_TARGET_LENGTH, 'symlink target')).slice();
        validateSymlinkTarget(target);
        await this.sink.symlink(name, target);
        return this.expect(')');
      }
      case 'directory':
        if (depth >= this.maxDepth) throw new NarError(`directories nested deeper than ${this.maxDepth}`);
        return this.directory(name, depth);
      default:
        throw new NarError(`unknown node type ${JSON.stringify(type)} at offset ${at}`);
    }
  }

  private async regular(name: Uint8Array | undefined): Promise<void> {
    let at = this.r.offset;
    let word = await this.token();
    let executable = false;
    if (word === 'executable') {
      const marker = await this.string(MAX_TOKEN, 'executable marker');
      if (marker.length !== 0) throw new NarError(`the executable marker at offset ${at} has a non-empty value ${show(marker)}`);
      executable = true;
      at = this.r.offset;
      word = await this.token();
    }
    if (word !== 'contents') throw new NarError(`expected "contents" at offset ${at}, got ${JSON.stringify(word)}`);
    const size = u64(await this.r.exact(8));
    const contents = this.r.stream(size);
    await this.sink.file(name, executable, size, contents);
    // Whatever the sink left unread is read (and dropped) here.
    for await (const _ of contents) {
      // draining
    }
    await this.padding(size);
    await this.expect(')');
  }

  private async directory(name: Uint8Array | undefined, depth: number): Promise<void> {
    await this.sink.directoryStart(name);
    let prev: Uint8Array | undefined;
    for (;;) {
      const at = this.r.offset;
      const word = await this.token();
      if (word === ')') break;
      if (word !== 'entry') throw new NarError(`expected "entry" or ")" at offset ${at}, got ${JSON.stringify(word)}`);
      await this.expect('(');
      await this.expect('name');
      const entry = (await this.string(MAX_NAME_LENGTH, 'entry name')).slice();
      validateEntryName(entry);
      if (prev !== undefined) {
        const c = Buffer.compare(prev, entry);
        if (c === 0) throw new NarError(`duplicate NAR entry name ${show(entry)}`);
        if (c > 0) throw new NarError(`NAR entries not sorted: ${show(entry)} comes after ${show(prev)}`);
      }
      prev = entry;
      await this.expect('node');
      await this.node(entry, depth + 1);
      await this.expect(')');
    }
    await this.sink.directoryEnd();
  }
}

/**
 * Reads one whole NAR from `src`, telling `sink` what it holds; rejects with
 * NarError on anything `nix-store --restore` would not accept, and with the
 * source's or the sink's own errors as they are.
 */
export async function readNar(src: AsyncIterable<Uint8Array>, sink: NarSink, opts: NarReadOptions = {}): Promise<void> {
  const it = src[Symbol.asyncIterator]();
  try {
    await new Parser(new ByteReader(it), sink, opts.maxDepth ?? DEFAULT_MAX_DEPTH).archive();
  } finally {
    await it.return?.();
  }
}
