// "A PathInfo never dangles": before one is stored, everything its root node
// refers to must already be in the castore.
import type { Directory, Node } from '../castore/messages.js';
import { b3Hex, b3String } from '../castore/digest.js';
import { CastoreError, invalid } from '../castore/errors.js';
import { showName } from '../castore/directory.js';
import type { Castore } from './render-nar.js';

function missing(what: string): CastoreError {
  return new CastoreError('precondition', `${what} is not in the store; upload it before the PathInfo`);
}

type FileEntry = { digest: Uint8Array; name: Uint8Array; size: number };

/**
 * The blob is there and, where the blob service can tell its length
 * cheaply, as long as the entry states (tvix does not check this; a
 * PathInfo whose NAR cannot be rendered must not be accepted).
 */
async function checkBlob(blobs: Castore['blobs'], f: FileEntry): Promise<void> {
  if (!blobs.sizeOf) {
    if (!(await blobs.stat(f.digest))) missingBlob(f.digest, f.name);
    return;
  }
  checkSize(f, await blobs.sizeOf(f.digest), false);
}

/** `real`: the blob's length, undefined when the store does not have it. */
function checkSize(f: FileEntry, real: number | undefined, missingOk: boolean): void {
  if (real === undefined) {
    if (missingOk) return;
    missingBlob(f.digest, f.name);
  }
  if (real !== f.size) {
    throw invalid(`file ${showName(f.name)} states size ${f.size}, but its blob ${b3String(f.digest)} has ${real} bytes`);
  }
}

/** Stat calls in flight at once, for a store that can only Stat (a gRPC one). */
const STAT_CONCURRENCY = 32;

async function forEachConcurrently<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/** Entries looked up per round: a scale-out store answers each turn's lookups in one query. */
const ROUND = 1024;

/**
 * Checks file entries in rounds as directories come, so a closure of tens
 * of thousands of files is never held whole (a daemon's peak memory was
 * the largest path's decoded closure). Within a round each (digest, size)
 * is looked up once, all in the same turn.
 */
export class FileChecks {
  private pending = new Map<string, FileEntry>();

  constructor(
    private readonly blobs: Castore['blobs'],
    /** An absent blob passes (Directory Put); otherwise it is an error (PathInfo Put). */
    private readonly missingOk: boolean,
  ) {}

  /** Queues `dir`'s files; checks a round once enough are queued. */
  async add(dir: Directory): Promise<void> {
    for (const f of dir.files) {
      const key = `${b3Hex(f.digest)}:${f.size}`;
      if (!this.pending.has(key)) this.pending.set(key, f); // errors name the first such file
    }
    if (this.pending.size >= ROUND) await this.flush();
  }

  /** Checks every queued entry. */
  async flush(): Promise<void> {
    const todo = [...this.pending.values()];
    this.pending = new Map();
    const { blobs } = this;
    if (!blobs.sizeOf) {
      if (!this.missingOk) await forEachConcurrently(todo, STAT_CONCURRENCY, (f) => checkBlob(blobs, f));
      return;
    }
    const sizes = blobs.sizesOf ? await blobs.sizesOf(todo.map((f) => f.digest)) : await Promise.all(todo.map((f) => blobs.sizeOf!(f.digest)));
    sizes.forEach((real, i) => checkSize(todo[i], real, this.missingOk));
  }
}

/**
 * Every file entry of a Directory Put states its blob's real size, for the
 * blobs the store has (a Directory whose files cannot be rendered is
 * refused before it is stored). None for a gRPC store: the daemon behind
 * it checks.
 */
export function fileSizeChecks(blobs: Castore['blobs']): FileChecks | undefined {
  return blobs.sizeOf ? new FileChecks(blobs, true) : undefined;
}

/** `signal`: stops the walk (a large closure takes seconds) once it aborts, with its reason. */
export async function assertContentPresent(node: Node, store: Castore, signal?: AbortSignal): Promise<void> {
  if (node.type === 'symlink') return;
  if (node.type === 'file') return checkBlob(store.blobs, node);
  const checks = new FileChecks(store.blobs, false);
  const walk = store.directories.getRecursive(node.digest)[Symbol.asyncIterator]();
  let count = 0;
  try {
    for (;;) {
      let next: IteratorResult<Directory>;
      try {
        next = await walk.next();
      } catch (err) {
        throw missing(`part of directory ${b3String(node.digest)} (${(err as Error).message})`);
      }
      if (next.done) break;
      signal?.throwIfAborted();
      count++;
      await checks.add(next.value);
    }
  } finally {
    await walk.return?.();
  }
  if (count === 0) throw missing(`root directory ${b3String(node.digest)}`);
  signal?.throwIfAborted();
  await checks.flush();
}

function missingBlob(digest: Uint8Array, name: Uint8Array): never {
  throw missing(`blob ${b3String(digest)} (file ${showName(name)})`);
}
