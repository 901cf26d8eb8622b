// Directories of the on-disk store. New ones go into packs of their own
// (`directory-packs/`, pack-store.ts): one Put stream carries every
// directory of a store path, thousands for a large one, and a file, an
// fsync and a rename each made that the slowest step of a copy. Stores
// written before directory packs keep their files, which are still read.
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
import { fileSize, ShardScan } from './shard-scan.js';

export class DiskDirectoryService extends LocalDirectoryService {
  readonly packs: PackStore;

  constructor(private readonly layout: DiskLayout) {
    super();
    this.packs = new PackStore(join(layout.root, 'directory-packs'));
    layout.gc.onEpochChange(() => this.packs.revalidate());
  }

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    await this.layout.init();
    const hex = b3Hex(digest);
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
    const writes: Promise<void>[] = [];
    for (const { digest, encoded } of ordered) {
      if (this.packs.knows(b3Hex(digest)) || (await exists(this.layout.objectPath('directories', digest)))) continue;
      writes.push(this.packs.append(digest, encoded));
    }
    try {
      await Promise.all(writes);
    } catch (err) {
      throw storageError(`storing directories: ${(err as Error).message}`, err);
    }
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
