// Directories of the on-disk store. New ones go into packs of their own
// (`directory-packs/`, pack-store.ts): one Put stream carries every
// directory of a store path, thousands for a large one, and a file, an
// fsync and a rename each made that the slowest step of a copy. Stores
// written before directory packs keep their files, which are still read.
// The directories a Put stored are kept a while in memory: the PathInfo Put
// that follows checks its whole closure again, and reading each back from
// its pack cost a thread-pool round trip and garbage apiece.
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readDirectory, type Directory } from '../messages.js';
import type { EncodedDirectory } from '../closure-validator.js';
import { b3Hex } from '../digest.js';
import { storageError } from '../errors.js';
import { LocalDirectoryService } from '../local-directory-service.js';
import { exists } from './atomic-files.js';
import type { DiskLayout } from './disk-layout.js';
import { PackStore } from './pack-store.js';
import { RecentRecords } from './recent-records.js';
import { fileSize, ShardScan } from './shard-scan.js';

/** Encoded directories kept after their Put: a large store path's closure is 2–4 MiB. */
const RECENT_BYTES = 4 << 20;

export class DiskDirectoryService extends LocalDirectoryService {
  readonly packs: PackStore;
  readonly recent = new RecentRecords(RECENT_BYTES);

  constructor(private readonly layout: DiskLayout) {
    super();
    this.packs = new PackStore(join(layout.root, 'directory-packs'));
    // A collector may have deleted them: read from disk again, as the packs are.
    layout.gc.onEpochChange(() => {
      this.recent.clear();
      return this.packs.revalidate();
    });
  }

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    await this.layout.init();
    const hex = b3Hex(digest);
    const recent = this.recent.get(hex);
    if (recent) return readDirectory(recent);
    let data: Buffer | undefined;
    try {
      if (this.packs.knows(hex)) data = await this.packs.read(hex);
      else data = (await this.readFile(digest)) ?? (await this.packs.read(hex));
    } catch (err) {
      throw storageError(`reading directory ${hex}: ${(err as Error).message}`, err);
    }
    return data && readDirectory(data);
  }

  private async readFile(digest: Uint8Array): Promise<Buffer | undefined> {
    try {
      return await readFile(this.layout.objectPath('directories', digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  // Children come before parents, and a batch's index entries are written
  // in order after its records are durable, so no reader ever sees a
  // directory whose children are missing.
  protected async save(ordered: EncodedDirectory[]): Promise<void> {
    await this.layout.init();
    await this.layout.gc.sync();
    // Only stores written before directory packs have directory files: a look at each is needed there alone.
    const loose = readdirSync(this.layout.kindDir('directories')).length > 0;
    const writes: Promise<void>[] = [];
    for (const { digest, encoded } of ordered) {
      if (this.packs.knows(b3Hex(digest)) || (loose && (await exists(this.layout.objectPath('directories', digest))))) continue;
      writes.push(this.packs.append(digest, encoded));
    }
    try {
      await Promise.all(writes);
    } catch (err) {
      throw storageError(`storing directories: ${(err as Error).message}`, err);
    }
    for (const { digest, encoded } of ordered) this.recent.add(b3Hex(digest), encoded);
  }

  private readonly looseSizes = new ShardScan(fileSize);

  /** Packed directories and the files of older stores, each digest once. */
  async stats() {
    await this.layout.init();
    let { count, bytes } = await this.packs.totals();
    for (const [name, size] of await this.looseSizes.scan(this.layout.kindDir('directories'))) {
      if (this.packs.knows(name)) continue;
      count++;
      bytes += size;
    }
    return { count, bytes };
  }

  override async close(): Promise<void> {
    await this.packs.close();
  }
}
