// NAR rendering straight from the castore: directories and file contents
// are read ahead of the writer (nar-read-ahead.ts) within a byte budget,
// so memory stays flat whatever the path's size.
import { createHash } from 'node:crypto';
import type { FileNode, Node } from '../castore/messages.js';
import { CastoreError, storageError } from '../castore/errors.js';
import { b3String, blake3, Blake3Stream } from '../castore/digest.js';
import { writeNar, type ChunkPool, type NarEntry, type NarNode } from '../nix/nar.js';
import { NarReadAhead, ReadAheadStats, type Castore, type ReadAheadBudget } from './nar-read-ahead.js';

export { ReadAheadStats, type Castore, type ReadAheadBudget };

/**
 * How a rendering is bounded. `signal`: stop once the client is gone
 * (checked at every entry, so even a NAR of millions of tiny entries stops
 * at once; reads in flight are aborted). `maxBytes`: end with an error
 * beyond this many NAR bytes — a valid DAG whose entries share children
 * renders exponentially more than it stores, so a rendering is capped by
 * what its PathInfo states. `stats`: filled in as reads go. `budget`: the
 * daemon's, which its reads ahead are held in.
 */
export interface RenderLimits {
  signal?: AbortSignal;
  maxBytes?: number;
  stats?: ReadAheadStats;
  budget?: ReadAheadBudget;
  /** Where the caller gives chunks back once done with them (they are then reused). */
  pool?: ChunkPool;
}

/** A file of the castore as the NAR writer takes it (a class: no closure per file). */
class RegularOf {
  readonly type = 'regular';
  readonly executable: boolean;
  readonly size: number;
  constructor(
    private readonly file: FileNode,
    private readonly ahead: NarReadAhead,
  ) {
    this.executable = file.executable;
    this.size = file.size;
  }
  contents(): readonly Uint8Array[] | AsyncIterable<Uint8Array> {
    const c = this.ahead.contents(this.file);
    if (!Array.isArray(c)) return checked(c as AsyncIterable<Uint8Array>, this.file.digest);
    const chunks = c as readonly Uint8Array[];
    const got = chunks.length === 1 ? blake3(chunks[0]) : chunks.reduce((h, b) => h.update(b), new Blake3Stream()).digest();
    if (!got.equals(this.file.digest)) throw damaged(this.file.digest, got);
    return chunks;
  }
}

/**
 * A file's bytes as read, checked against its BLAKE3 once all are out: a
 * damaged blob (a flipped bit on disk, a truncated object) ends the NAR
 * with an error before its next byte (at least this entry's closing
 * framing), so no client receives it whole as the path's content. Chunks
 * go on at once: they may be lent, their buffers read into again once
 * given back. BLAKE3 runs at several GB/s: a few percent of a NAR's cost.
 */
async function* checked(chunks: AsyncIterable<Uint8Array>, digest: Uint8Array): AsyncGenerator<Uint8Array> {
  const h = new Blake3Stream();
  for await (const b of chunks) {
    h.update(b);
    yield b;
  }
  const got = h.digest();
  if (!got.equals(digest)) throw damaged(digest, got);
}

function damaged(want: Uint8Array, got: Buffer): CastoreError {
  return storageError(`blob ${b3String(want)} reads back as ${b3String(got)}: the store is damaged ('nix-castore fsck' names what)`);
}

/** A directory of the castore: its entries as one array once the read-ahead has them (no step per entry). */
class DirectoryOf {
  readonly type = 'directory';
  constructor(
    private readonly digest: Uint8Array,
    private readonly ahead: NarReadAhead,
  ) {}
  async entries(): Promise<NarEntry[]> {
    const children = await this.ahead.directory(this.digest);
    const out = new Array<NarEntry>(children.length);
    for (let i = 0; i < children.length; i++) out[i] = { name: children[i].name, node: narNodeOf(children[i], this.ahead) };
    return out;
  }
}

function narNodeOf(node: Node, ahead: NarReadAhead): NarNode {
  switch (node.type) {
    case 'symlink':
      return { type: 'symlink', target: node.target };
    case 'file':
      return new RegularOf(node, ahead);
    case 'directory':
      return new DirectoryOf(node.digest, ahead);
  }
}

/** The NAR bytes of a castore root node. */
export async function* renderNar(node: Node, store: Castore, limits: RenderLimits = {}): AsyncGenerator<Uint8Array> {
  const ahead = new NarReadAhead(node, store, limits.signal, limits.stats, limits.budget, limits.pool);
  try {
    let total = 0;
    for await (const chunk of writeNar(narNodeOf(node, ahead), limits.pool)) {
      total += chunk.length;
      if (limits.maxBytes !== undefined && total > limits.maxBytes) {
        throw storageError(`the NAR is longer than the ${limits.maxBytes} bytes its PathInfo states; stopped rendering`);
      }
      yield chunk;
    }
  } finally {
    await ahead.close();
  }
}

/**
 * The NAR of a PathInfo's root node, checked against the NarSize the
 * PathInfo states: rendering ends with an error as soon as it passes it
 * (a Directory DAG whose entries share children renders exponentially
 * more than it stores), and a NAR that ends short of it is an error too.
 * What the daemon's binary cache, `nar` and `fsck --nar` render.
 */
export async function* renderStatedNar(node: Node, narSize: number, store: Castore, signal?: AbortSignal, budget?: ReadAheadBudget, pool?: ChunkPool): AsyncGenerator<Uint8Array> {
  const nar = renderNar(node, store, { signal, maxBytes: narSize, budget, pool });
  let sent = 0;
  try {
    for await (const chunk of nar) {
      sent += chunk.length;
      yield chunk;
    }
  } finally {
    await nar.return(undefined).catch(() => {});
  }
  if (sent !== narSize) throw storageError(`the NAR is ${sent} bytes, its PathInfo states ${narSize}`);
}

export interface NarLimits extends RenderLimits {
  /** Stop with a NarTooLargeError once the NAR grows past this many bytes (a Directory DAG can render exponentially). */
  maxSize?: number;
}

const YIELD_EVERY_MS = 5;

export class NarTooLargeError extends CastoreError {
  constructor(readonly limit: number) {
    super('storage', `the NAR is longer than ${limit} bytes`);
  }
}

export async function calculateNar(node: Node, store: Castore, limits: NarLimits = {}): Promise<{ narSize: number; narSha256: Buffer }> {
  const hash = createHash('sha256');
  let narSize = 0;
  const { maxSize = Infinity, signal } = limits;
  try {
    let lastYield = performance.now();
    for await (const chunk of renderNar(node, store, limits)) {
      // Stores answering from memory resolve without I/O; give the event loop a
      // turn now and then so other clients are served and cancellation arrives.
      if (performance.now() - lastYield > YIELD_EVERY_MS) {
        await new Promise((r) => setImmediate(r));
        lastYield = performance.now();
      }
      narSize += chunk.length;
      if (narSize > maxSize) throw new NarTooLargeError(maxSize);
      hash.update(chunk);
    }
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    if (err instanceof CastoreError && err.kind !== 'storage') throw err;
    if (err instanceof NarTooLargeError) throw err;
    throw storageError(`failed rendering nar: ${(err as Error).message}`, err);
  }
  return { narSize, narSha256: hash.digest() };
}
