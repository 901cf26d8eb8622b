// The DirectoryService interface: Directory messages keyed by the BLAKE3 of
// their canonical encoding, uploaded as closures (leaves first).
import type { Directory } from './messages.js';
import type { ObjectStats } from './object-stats.js';

export interface DirectoryPutter {
  /** Queues one directory of the closure; children must come before parents. */
  put(dir: Directory): Promise<void>;
  /** Validates the closure, stores it and resolves to the root digest; `signal` as for BlobWriter. */
  close(signal?: AbortSignal): Promise<Buffer>;
  /** Drops the closure; nothing is stored. */
  abort(): Promise<void>;
}

export interface DirectoryService {
  get(digest: Uint8Array): Promise<Directory | undefined>;
  /** The closure of `root`: root first, breadth-first, each once; empty if absent. */
  getRecursive(root: Uint8Array): AsyncIterable<Directory>;
  putter(): DirectoryPutter;
  close(): Promise<void>;
  /** How many directories it holds and the bytes of their encodings (a full count: call it seldom). */
  stats?(): Promise<ObjectStats>;
}

/** Uploads a whole closure (children before parents) in one stream. */
export async function putClosure(dirs: DirectoryService, closure: Iterable<Directory>): Promise<Buffer> {
  const p = dirs.putter();
  try {
    for (const d of closure) await p.put(d);
    return await p.close();
  } catch (err) {
    await p.abort().catch(() => {});
    throw err;
  }
}
