// NAR rendering straight from the castore: directories are fetched as the
// walk reaches them and file contents stream from the blob service, so
// memory stays flat whatever the path's size.
import { createHash } from 'node:crypto';
import type { BlobService } from '../castore/blob-service.js';
import type { DirectoryService } from '../castore/directory-service.js';
import type { Directory, Node } from '../castore/messages.js';
import { b3String } from '../castore/digest.js';
import { CastoreError, storageError } from '../castore/errors.js';
import { writeNar, type NarNode } from '../nix/nar.js';

export interface Castore {
  blobs: BlobService;
  directories: DirectoryService;
}

function sortedEntries(d: Directory): Node[] {
  const all: Node[] = [
    ...d.directories.map((n) => ({ type: 'directory' as const, ...n })),
    ...d.files.map((n) => ({ type: 'file' as const, ...n })),
    ...d.symlinks.map((n) => ({ type: 'symlink' as const, ...n })),
  ];
  return all.sort((a, b) => Buffer.compare(a.name, b.name));
}

// Small files of a directory are fetched a few ahead of the one being
// written: over gRPC or from S3 every blob is a round trip, and a path of
// thousands of small files would otherwise wait for each in turn.
const PREFETCH_FILES = 16;
const PREFETCH_MAX_SIZE = 64 << 10;

/**
 * A small file's bytes, read ahead. Budgeted by what is really read, not
 * by the size the directory states: a blob longer than that is an error
 * as soon as its bytes say so (16 entries claiming 1 byte each that point
 * at a 128 MiB blob must not load 2 GiB).
 */
async function readBlob(store: Castore, digest: Uint8Array, size: number): Promise<Buffer> {
  const stream = await store.blobs.read(digest);
  if (!stream) throw storageError(`blob ${b3String(digest)} not found`);
  const parts: Uint8Array[] = [];
  let got = 0;
  for await (const c of stream) {
    got += c.length;
    if (got > size) throw storageError(`blob ${b3String(digest)} is longer than the ${size} bytes its directory entry states`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** Starts reads of the next small files as the walk reaches each one. */
class Prefetcher {
  private readonly started = new Map<number, Promise<Buffer>>();
  private next = 0;
  constructor(
    private readonly store: Castore,
    private readonly entries: Node[],
  ) {}

  /** The bytes of entry `i` if it is a small file (reading ahead of it), else undefined. */
  take(i: number): Promise<Buffer> | undefined {
    // Entries before i are written already: never start those.
    this.next = Math.max(this.next, i);
    const limit = Math.min(this.entries.length, i + PREFETCH_FILES);
    for (; this.next < limit; this.next++) {
      const e = this.entries[this.next];
      if (e.type !== 'file' || e.size > PREFETCH_MAX_SIZE) continue;
      const p = readBlob(this.store, e.digest, e.size);
      p.catch(() => {}); // observed when taken
      this.started.set(this.next, p);
    }
    const p = this.started.get(i);
    this.started.delete(i);
    return p;
  }
}

/**
 * How a rendering is bounded. `signal`: stop once the client is gone
 * (checked at every entry, so even a NAR of millions of tiny entries stops
 * at once). `maxBytes`: end with an error beyond this many NAR bytes — a
 * valid DAG whose entries share children renders exponentially more than it
 * stores, so a rendering is capped by what its PathInfo states.
 */
export interface RenderLimits {
  signal?: AbortSignal;
  maxBytes?: number;
}

export function narNodeOf(node: Node, store: Castore, prefetched?: () => Promise<Buffer> | undefined, signal?: AbortSignal): NarNode {
  switch (node.type) {
    case 'symlink':
      return { type: 'symlink', target: node.target };
    case 'file':
      return {
        type: 'regular',
        executable: node.executable,
        size: node.size,
        contents: async function* () {
          signal?.throwIfAborted();
          const early = prefetched?.();
          if (early) {
            yield await early;
            return;
          }
          const stream = await store.blobs.read(node.digest);
          if (!stream) throw storageError(`blob ${b3String(node.digest)} not found`);
          yield* stream;
        },
      };
    case 'directory':
      return {
        type: 'directory',
        entries: async function* () {
          signal?.throwIfAborted();
          const dir = await store.directories.get(node.digest);
          if (!dir) throw storageError(`directory ${b3String(node.digest)} not found`);
          const children = sortedEntries(dir);
          const ahead = new Prefetcher(store, children);
          for (let i = 0; i < children.length; i++) {
            signal?.throwIfAborted();
            const at = i;
            yield { name: children[i].name, node: narNodeOf(children[i], store, () => ahead.take(at), signal) };
          }
        },
      };
  }
}

/** The NAR bytes of a castore root node. */
export async function* renderNar(node: Node, store: Castore, limits: RenderLimits = {}): AsyncGenerator<Uint8Array> {
  let total = 0;
  for await (const chunk of writeNar(narNodeOf(node, store, undefined, limits.signal))) {
    total += chunk.length;
    if (limits.maxBytes !== undefined && total > limits.maxBytes) {
      throw storageError(`the NAR is longer than the ${limits.maxBytes} bytes its PathInfo states; stopped rendering`);
    }
    yield chunk;
  }
}

/**
 * The NAR of a PathInfo's root node, checked against the NarSize the
 * PathInfo states: rendering ends with an error as soon as it passes it
 * (a Directory DAG whose entries share children renders exponentially
 * more than it stores), and a NAR that ends short of it is an error too.
 * What the daemon's binary cache, `nar` and `fsck --nar` render.
 */
export async function* renderStatedNar(node: Node, narSize: number, store: Castore, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const nar = renderNar(node, store, { signal, maxBytes: narSize });
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
