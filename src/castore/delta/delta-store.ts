// Delta uploads, the store's side: a client about to send a large blob
// asks for a similar one the store has (findBase: by hooks, hook-index.ts)
// and gets its chunk list; it then sends the blob as ranges of that base
// and literal bytes (putDelta). The store composes the blob from its own
// copy of the base and the bytes received, through an ordinary Put, so
// every byte is hashed and the blob is durable before the answer, as for
// any Put; a result whose digest is not the one announced is refused.
import type { BlobService, BlobWriter } from '../blob-service.js';
import { B3_LEN, b3String } from '../digest.js';
import { CastoreError, invalid } from '../errors.js';
import { Chunker, type Chunk } from './chunking.js';
import type { HookHints } from './hook-index.js';
import type { BlobDeltas, DeltaBase, DeltaHeader, DeltaOp } from './delta-messages.js';

/** Blobs smaller than this are sent whole: a delta saves too little to pay for its round trips. */
export const DELTA_MIN = 1 << 20;
/** Bases are chunked on request (CPU and reads of the store's): up to this size. */
export const MAX_BASE = 1 << 30;
/** Hooks one findBase looks up at most (a blob of 8 GiB has that many). */
export const MAX_HOOKS_ASKED = 4096;
/** Candidates tried, most hooks shared first. */
const CANDIDATES = 3;

/** Ops one delta may have at most: a copy or a literal per minimum-size chunk, and some. */
export const maxOps = (size: number): number => Math.ceil(size / 4096) + 64;

export class DeltaStore implements BlobDeltas {
  constructor(
    readonly blobs: BlobService,
    readonly index: HookHints,
  ) {}

  /** The blob most of `hooks` were seen in, with its chunks; undefined if none is at hand. */
  async findBase(hooks: Uint8Array[], signal?: AbortSignal): Promise<DeltaBase | undefined> {
    if (hooks.length > MAX_HOOKS_ASKED) throw invalid(`${hooks.length} hooks: at most ${MAX_HOOKS_ASKED} are looked up`);
    if (hooks.some((h) => h.length !== B3_LEN)) throw invalid('a hook is a 32-byte digest');
    const votes = new Map<string, number>();
    for (const blob of await this.index.lookup(hooks)) {
      if (blob) votes.set(blob.toString('latin1'), (votes.get(blob.toString('latin1')) ?? 0) + 1);
    }
    const ranked = [...votes].sort((a, b) => b[1] - a[1]).slice(0, CANDIDATES);
    for (const [key] of ranked) {
      const base = Buffer.from(key, 'latin1');
      const baseSize = await this.sizeOf(base);
      // A stale hint (collected), or a base too large to chunk on request.
      if (baseSize === undefined || baseSize > MAX_BASE || baseSize < DELTA_MIN) continue;
      const chunks = await this.chunksOf(base, signal);
      if (chunks) return { base, baseSize, chunks };
    }
    return undefined;
  }

  /** Composes the blob `header` announces; resolves to its digest once it is durably stored. */
  async putDelta(header: DeltaHeader, ops: AsyncIterable<DeltaOp>, signal?: AbortSignal): Promise<Buffer> {
    const { digest, size, base } = header;
    if (digest.length !== B3_LEN || base.length !== B3_LEN) throw invalid('digest and base are 32-byte digests');
    if (!Number.isSafeInteger(size) || size < 0) throw invalid(`size ${size} is not a byte count`);
    const baseSize = await this.sizeOf(base);
    if (baseSize === undefined) throw new CastoreError('precondition', `the base blob ${b3String(base)} is not in the store (collected meanwhile?): send the blob whole`);
    const reader = new BaseReader(this.blobs, base, baseSize, signal);
    const w = this.blobs.put();
    try {
      let written = 0;
      let count = 0;
      const limit = maxOps(size);
      for await (const op of ops) {
        signal?.throwIfAborted();
        if (++count > limit) throw invalid(`more than ${limit} ops for a blob of ${size} bytes`);
        const length = 'data' in op ? op.data.length : op.length;
        if (written + length > size) throw invalid(`the delta holds more than the ${size} bytes announced`);
        if ('data' in op) {
          if (length > 0) await w.write(op.data);
        } else {
          const { offset } = op;
          if (!Number.isSafeInteger(offset) || offset < 0 || length <= 0 || offset + length > baseSize) {
            throw invalid(`range [${offset}, ${offset + length}) is not within the base's ${baseSize} bytes`);
          }
          await reader.copy(offset, length, w);
        }
        written += length;
      }
      if (written !== size) throw invalid(`the delta holds ${written} bytes, ${size} were announced`);
      const got = await w.close(signal);
      if (!got.equals(digest)) throw invalid(`the delta makes a blob ${b3String(got)}, not ${b3String(digest)} as announced`);
      return got;
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    } finally {
      await reader.close();
    }
  }

  /** Services without an index of sizes (a gRPC store) offer no base. */
  private async sizeOf(digest: Uint8Array): Promise<number | undefined> {
    return this.blobs.sizeOf?.(digest);
  }

  private async chunksOf(base: Uint8Array, signal?: AbortSignal): Promise<Chunk[] | undefined> {
    const stream = await this.blobs.read(base, { signal });
    if (!stream) return undefined;
    const c = new Chunker();
    for await (const piece of stream) {
      signal?.throwIfAborted();
      c.push(piece);
    }
    return c.end();
  }
}

/**
 * The base's bytes in the order a delta asks for them: one pass while its
 * ranges go forward, a new read from the start when one goes back. A
 * delta may not make the store read more than a few times the base.
 */
class BaseReader {
  private iter: AsyncIterator<Uint8Array> | undefined;
  private pos = 0;
  private left: Uint8Array | undefined;
  private read = 0;
  private readonly budget: number;

  constructor(
    private readonly blobs: BlobService,
    private readonly base: Uint8Array,
    baseSize: number,
    private readonly signal?: AbortSignal,
  ) {
    this.budget = 4 * baseSize + (1 << 20);
  }

  async copy(offset: number, length: number, w: BlobWriter): Promise<void> {
    if (offset < this.pos || !this.iter) await this.reopen();
    while (length > 0) {
      const piece = await this.piece();
      const skip = Math.min(piece.length, Math.max(0, offset - this.pos));
      const take = Math.min(piece.length - skip, length);
      if (take > 0) {
        // read() gives fresh memory that nothing changes: the writer may keep a view of it.
        await w.write(piece.subarray(skip, skip + take));
        offset += take;
        length -= take;
      }
      this.pos += skip + take;
      this.left = skip + take < piece.length ? piece.subarray(skip + take) : undefined;
    }
  }

  private async piece(): Promise<Uint8Array> {
    if (this.left) {
      const p = this.left;
      this.left = undefined;
      return p;
    }
    const r = await this.iter!.next();
    if (r.done) throw new CastoreError('storage', `the base blob ${b3String(this.base)} ended early`);
    this.read += r.value.length;
    if (this.read > this.budget) throw new CastoreError('too-large', `the delta reads the base out of order too often: send the blob whole`);
    return r.value;
  }

  private async reopen(): Promise<void> {
    await this.close();
    const stream = await this.blobs.read(this.base, { signal: this.signal });
    if (!stream) throw new CastoreError('precondition', `the base blob ${b3String(this.base)} is not in the store (collected meanwhile?): send the blob whole`);
    this.iter = stream[Symbol.asyncIterator]();
    this.pos = 0;
    this.left = undefined;
  }

  async close(): Promise<void> {
    const it = this.iter;
    this.iter = undefined;
    await it?.return?.();
  }
}
