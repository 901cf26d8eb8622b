import { readFile } from 'node:fs/promises';
import type { DirectoryService, DirectoryPutter } from '../directory-service.js';
import { readDirectory, type Directory } from '../messages.js';
import { encodeDirectory } from '../directory.js';
import { checkB3 } from '../digest.js';
import { ClosureValidator } from '../closure-validator.js';
import { walkClosure } from '../traverse.js';
import { storageError } from '../errors.js';
import { publishFiles } from './atomic-files.js';
import type { DiskLayout } from './disk-layout.js';

export class DiskDirectoryService implements DirectoryService {
  constructor(private readonly layout: DiskLayout) {}

  async get(digest: Uint8Array): Promise<Directory | undefined> {
    checkB3(digest);
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

  async *getRecursive(root: Uint8Array): AsyncIterable<Directory> {
    checkB3(root);
    yield* walkClosure(root, (d) => this.get(d));
  }

  putter(): DirectoryPutter {
    const v = new ClosureValidator();
    return {
      put: async (dir) => void v.add(dir),
      close: async (signal) => {
        const root = v.finish();
        signal?.throwIfAborted();
        await this.layout.init();
        // Children were accepted before parents, so publishing in this order
        // never exposes a directory whose children are missing.
        const files = v.ordered.map(({ digest, dir }) => ({
          path: this.layout.objectPath('directories', digest),
          data: encodeDirectory(dir),
        }));
        try {
          await publishFiles(this.layout.tmp, files);
        } catch (err) {
          throw storageError(`storing directories: ${(err as Error).message}`, err);
        }
        return root;
      },
      abort: async () => {},
    };
  }

  async close(): Promise<void> {}
}
