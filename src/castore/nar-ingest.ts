// A NAR stream into the castore as it arrives: files become blobs, and
// directories the same Directory messages `nix-castore copy` makes from the
// file system (so the root digest is the same for the same path and the
// two ways in deduplicate against each other). The NAR's SHA-256 and size
// are computed on the way; nothing is buffered beyond one batch of small
// files.
import { createHash } from 'node:crypto';
import type { BlobService, BlobBatches } from './blob-service.js';
import { batchesOf } from './blob-service.js';
import type { DirectoryService } from './directory-service.js';
import { putClosure } from './directory-service.js';
import type { Directory, Node } from './messages.js';
import { Blake3Stream, blake3, b3String, sameBytes } from './digest.js';
import { decodedEntryBytes, directoryDigest, directorySize, directoryTooLarge, entryEncodedBytes, MAX_DIRECTORY_BYTES, showName, type SizeFormula } from './directory.js';
import { storageError } from './errors.js';
import { readNar, NarError } from '../nix/nar-reader.js';

export interface NarIngestOptions {
  formula?: SizeFormula;
  /** Refuse NARs longer than this (NarError). */
  maxNarSize?: number;
  /**
   * Told of the bytes each directory entry will hold in memory until the
   * NAR ends (the closure is stored whole, as a Directory Put's); it throws
   * to refuse them (a daemon's budget).
   */
  hold?: (bytes: number) => void;
}

export interface NarIngestResult {
  /** The root node, named with the empty name (the PathInfo names it). */
  root: Node;
  narSha256: Buffer;
  narSize: number;
  /** Bytes of file contents in the NAR. */
  fileBytes: number;
  /** Of those, the bytes the store did not have yet. */
  storedBytes: number;
  files: number;
  directories: number;
}

/** Files up to this size are gathered whole and stored in batches. */
const SMALL_FILE = 1 << 20;
const BATCH_BYTES = 3 << 20;
const BATCH_BLOBS = 1024;
/** Batches being stored at once. */
const BATCHES_IN_FLIGHT = 4;

interface Frame {
  name: Uint8Array;
  dir: Directory;
  /** Its canonical encoding's length so far (MAX_DIRECTORY_BYTES). */
  encoded: number;
}

class SmallBlobs {
  private pending = new Map<string, { digest: Buffer; data: Uint8Array }>();
  private pendingBytes = 0;
  private inFlight: Promise<void>[] = [];
  storedBytes = 0;
  private failed: unknown;

  constructor(private readonly batches: BlobBatches) {}

  async add(digest: Buffer, data: Uint8Array): Promise<void> {
    if (this.failed) throw this.failed;
    const key = digest.toString('hex');
    if (this.pending.has(key)) return;
    this.pending.set(key, { digest, data });
    this.pendingBytes += data.length;
    if (this.pendingBytes >= BATCH_BYTES || this.pending.size >= BATCH_BLOBS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.size > 0) {
      const blobs = [...this.pending.values()];
      this.pending = new Map();
      this.pendingBytes = 0;
      const p = this.store(blobs);
      p.catch((err) => (this.failed ??= err));
      this.inFlight.push(p);
    }
    while (this.inFlight.length >= BATCHES_IN_FLIGHT) await this.inFlight.shift();
  }

  private async store(blobs: { digest: Buffer; data: Uint8Array }[]): Promise<void> {
    const present = await this.batches.has(blobs.map((b) => b.digest));
    const missing = blobs.filter((_, i) => !present[i]);
    if (missing.length === 0) return;
    await this.batches.put(missing, { verified: true });
    for (const b of missing) this.storedBytes += b.data.length;
  }

  async finish(): Promise<void> {
    await this.flush();
    const all = this.inFlight;
    this.inFlight = [];
    await Promise.all(all);
    if (this.failed) throw this.failed;
  }

  /** Waits for what is in flight, ignoring failures (after an error). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.inFlight);
  }
}

export async function ingestNar(
  src: AsyncIterable<Uint8Array>,
  castore: { blobs: BlobService; directories: DirectoryService },
  opts: NarIngestOptions = {},
): Promise<NarIngestResult> {
  const formula = opts.formula ?? 'head';
  const maxNarSize = opts.maxNarSize ?? Number.MAX_SAFE_INTEGER;
  const sha = createHash('sha256');
  let narSize = 0;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of src) {
      narSize += chunk.length;
      if (narSize > maxNarSize) throw new NarError(`the NAR is larger than the ${maxNarSize} bytes accepted`);
      sha.update(chunk);
      yield chunk;
    }
  }

  const small = new SmallBlobs(await batchesOf(castore.blobs));
  const stack: Frame[] = [];
  const closure: Directory[] = [];
  let root: Node | undefined;
  let fileBytes = 0;
  let largeStored = 0;
  let files = 0;
  const nameOf = (n: Uint8Array | undefined) => n ?? new Uint8Array(0);
  // A directory too large for one message is refused as it grows, and
  // what the closure holds is counted as it comes, not once the NAR ends.
  const place = (node: Node) => {
    const top = stack[stack.length - 1];
    if (top) {
      top.encoded += entryEncodedBytes(node);
      if (top.encoded > MAX_DIRECTORY_BYTES) throw directoryTooLarge(`directory ${top.name.length > 0 ? showName(top.name) : '(the root)'}`, top.encoded);
      opts.hold?.(decodedEntryBytes(node));
    }
    if (!top) root = node;
    else if (node.type === 'directory') top.dir.directories.push({ name: node.name, digest: node.digest, size: node.size });
    else if (node.type === 'file') top.dir.files.push({ name: node.name, digest: node.digest, size: node.size, executable: node.executable });
    else top.dir.symlinks.push({ name: node.name, target: node.target });
  };

  async function largeFile(size: number, contents: AsyncIterable<Uint8Array>): Promise<Buffer> {
    const hash = new Blake3Stream();
    const w = castore.blobs.put();
    try {
      for await (const chunk of contents) {
        hash.update(chunk);
        await w.write(chunk);
      }
      const digest = hash.digest();
      if (await castore.blobs.stat(digest)) {
        await w.abort();
        return digest;
      }
      const stored = await w.close();
      if (!sameBytes(stored, digest)) throw storageError(`the store named a blob ${b3String(stored)}, its bytes hash to ${b3String(digest)}`);
      largeStored += size;
      return digest;
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    }
  }

  try {
    await readNar(hashed(), {
      directoryStart(name) {
        stack.push({ name: nameOf(name), dir: { directories: [], files: [], symlinks: [] }, encoded: 0 });
      },
      directoryEnd() {
        const f = stack.pop()!;
        closure.push(f.dir);
        place({ type: 'directory', name: f.name, digest: directoryDigest(f.dir), size: directorySize(f.dir, formula) });
      },
      async file(name, executable, size, contents) {
        let digest: Buffer;
        if (size <= SMALL_FILE) {
          const data = new Uint8Array(size);
          let at = 0;
          for await (const chunk of contents) {
            data.set(chunk, at);
            at += chunk.length;
          }
          digest = blake3(data);
          await small.add(digest, data);
        } else {
          digest = await largeFile(size, contents);
        }
        fileBytes += size;
        files++;
        place({ type: 'file', name: nameOf(name), digest, size, executable });
      },
      symlink(name, target) {
        place({ type: 'symlink', name: nameOf(name), target });
      },
    });
    await small.finish();
  } catch (err) {
    await small.settle();
    throw err;
  }
  if (closure.length > 0) await putClosure(castore.directories, closure);
  return {
    root: root!,
    narSha256: sha.digest(),
    narSize,
    fileBytes,
    storedBytes: small.storedBytes + largeStored,
    files,
    directories: closure.length,
  };
}
