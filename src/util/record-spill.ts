// Fixed-width records that start with a 32-byte digest, split into 256
// buckets by the digest's first byte (the store's shards), held in memory
// up to a limit and appended to scratch files beyond it. Whoever collects
// more of them than fits in memory (fsck's references, the collector's
// marks and pack entries) reads them back one bucket at a time.
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirs } from './make-dirs.js';

/** Records are collected per bucket in chunks of up to this many. */
const MAX_CHUNK_RECORDS = 512;

export class RecordSpill {
  private readonly open: (Buffer | undefined)[] = new Array(256).fill(undefined);
  private readonly fill: number[] = new Array(256).fill(0);
  private readonly full: Buffer[][] = Array.from({ length: 256 }, () => []);
  private fullBytes = 0;
  private dir: Promise<string> | undefined;
  private readonly onDisk = new Set<number>();
  private writing: Promise<void> = Promise.resolve();
  private readonly chunkBytes: number;
  /** Records added so far (duplicates included). */
  count = 0;

  /**
   * `limitBytes`: records held in memory before they go to scratch files in
   * a directory `prefix…` under `scratchParent` (default: the OS temp directory).
   */
  constructor(
    private readonly prefix: string,
    readonly recordLen: number,
    private readonly limitBytes = 16 << 20,
    private readonly scratchParent = tmpdir(),
  ) {
    // Small limits (tests) get small chunks, so that they do spill.
    this.chunkBytes = recordLen * Math.max(1, Math.min(MAX_CHUNK_RECORDS, Math.floor(limitBytes / 64 / recordLen)));
  }

  /** Records `rec` (recordLen bytes at `at`); returns a promise (to await) when that made it write to disk. */
  add(rec: Uint8Array, at = 0): Promise<void> | undefined {
    const b = rec[at];
    const chunk = (this.open[b] ??= Buffer.allocUnsafe(this.chunkBytes));
    chunk.set(rec.subarray(at, at + this.recordLen), this.fill[b]);
    this.fill[b] += this.recordLen;
    this.count++;
    if (this.fill[b] < this.chunkBytes) return undefined;
    this.full[b].push(chunk);
    this.open[b] = undefined;
    this.fill[b] = 0;
    this.fullBytes += this.chunkBytes;
    return this.fullBytes > this.limitBytes ? this.spill() : undefined;
  }

  /** Writes every full chunk out; writes are serialised so a bucket file only ever grows by whole chunks. */
  private spill(): Promise<void> {
    const taken = this.full.map((chunks, b) => ({ b, chunks: chunks.splice(0) })).filter((t) => t.chunks.length > 0);
    this.fullBytes = 0;
    this.writing = this.writing.then(async () => {
      const dir = await this.scratchDir();
      for (const { b, chunks } of taken) {
        await appendFile(join(dir, bucketName(b)), Buffer.concat(chunks));
        this.onDisk.add(b);
      }
    });
    return this.writing;
  }

  private scratchDir(): Promise<string> {
    return (this.dir ??= makeDirs(this.scratchParent).then(() => mkdtemp(join(this.scratchParent, this.prefix))));
  }

  /** Whether anything was written to scratch files. */
  get spilled(): boolean {
    return this.onDisk.size > 0;
  }

  /** Waits for writes in flight (their chunks are held until then). */
  async drain(): Promise<void> {
    await this.writing;
  }

  /** Every record of one bucket, concatenated (duplicates included). */
  async records(b: number): Promise<Buffer> {
    await this.writing;
    const parts: Buffer[] = [];
    if (this.onDisk.has(b)) parts.push(await readFile(join(await this.scratchDir(), bucketName(b))));
    parts.push(...this.full[b]);
    const open = this.open[b];
    if (open) parts.push(open.subarray(0, this.fill[b]));
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Removes the scratch files. */
  async dispose(): Promise<void> {
    await this.writing.catch(() => {});
    if (this.dir) await rm(await this.dir, { recursive: true, force: true });
  }
}

function bucketName(b: number): string {
  return b.toString(16).padStart(2, '0');
}
