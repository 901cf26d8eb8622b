// A multiset of 32-byte digests split into 256 buckets by first byte (the
// store's shards), kept in memory up to a limit and appended to scratch
// files beyond it. fsck collects every reference it sees here and later
// loads one bucket at a time to count the objects nothing refers to, so its
// memory stays bounded whatever the size of the store.
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIGEST_LEN = 32;
/** Digests are collected per bucket in chunks of up to this size. */
const MAX_CHUNK = DIGEST_LEN * 512;

export class DigestSpill {
  private readonly open: (Buffer | undefined)[] = new Array(256).fill(undefined);
  private readonly fill: number[] = new Array(256).fill(0);
  private readonly full: Buffer[][] = Array.from({ length: 256 }, () => []);
  private fullBytes = 0;
  private dir: Promise<string> | undefined;
  private readonly onDisk = new Set<number>();
  private writing: Promise<void> = Promise.resolve();
  private readonly chunkBytes: number;

  /**
   * `limitBytes`: digests held in memory before they go to scratch files
   * under `scratchParent` (default: the OS temp directory).
   */
  constructor(
    private readonly name: string,
    private readonly limitBytes = 16 << 20,
    private readonly scratchParent = tmpdir(),
  ) {
    // Small limits (tests) get small chunks, so that they do spill.
    this.chunkBytes = Math.max(DIGEST_LEN, Math.min(MAX_CHUNK, Math.floor(limitBytes / 64 / DIGEST_LEN) * DIGEST_LEN));
  }

  /** Records a digest; returns a promise (to await) when that made it write to disk. */
  add(digest: Uint8Array): Promise<void> | undefined {
    if (digest.length !== DIGEST_LEN) return undefined;
    const b = digest[0];
    const chunk = (this.open[b] ??= Buffer.allocUnsafe(this.chunkBytes));
    chunk.set(digest, this.fill[b]);
    this.fill[b] += DIGEST_LEN;
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
    return (this.dir ??= mkdtemp(join(this.scratchParent, `nix-castore-fsck-${this.name}-`)));
  }

  /** Whether anything was written to scratch files (for tests). */
  get spilled(): boolean {
    return this.onDisk.size > 0;
  }

  /** The distinct digests (lower-case hex) of one bucket. */
  async bucket(b: number): Promise<Set<string>> {
    await this.writing;
    const parts: Buffer[] = [];
    if (this.onDisk.has(b)) parts.push(await readFile(join(await this.scratchDir(), bucketName(b))));
    parts.push(...this.full[b]);
    const open = this.open[b];
    if (open) parts.push(open.subarray(0, this.fill[b]));
    const out = new Set<string>();
    for (const p of parts) {
      for (let off = 0; off + DIGEST_LEN <= p.length; off += DIGEST_LEN) out.add(p.toString('hex', off, off + DIGEST_LEN));
    }
    return out;
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
