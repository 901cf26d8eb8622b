import { readFile } from 'node:fs/promises';
import { readDirectory, type Directory } from '../messages.js';
import { encodeDirectory } from '../directory.js';
import { storageError } from '../errors.js';
import { LocalDirectoryService } from '../local-directory-service.js';
import { publishFiles } from './atomic-files.js';
import type { DiskLayout } from './disk-layout.js';

export class DiskDirectoryService extends LocalDirectoryService {
  constructor(private readonly layout: DiskLayout) {
    super();
  }

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    await this.layout.init();
    let data: Buffer;
    try {
      data = await readFile(this.layout.objectPath('directories', digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageError(`reading directory: ${(err as Error).message}`, err);
    }
    return readDirectory(data);
  }

  // Children come before parents, so publishing in this order never exposes
  // a directory whose children are missing.
  protected async save(ordered: { digest: Buffer; dir: Directory }[]): Promise<void> {
    await this.layout.init();
    const files = ordered.map(({ digest, dir }) => ({ path: this.layout.objectPath('directories', digest), data: encodeDirectory(dir) }));
    try {
      await publishFiles(this.layout.tmp, files);
    } catch (err) {
      throw storageError(`storing directories: ${(err as Error).message}`, err);
    }
  }
}
