import type { DirectoryService, DirectoryPutter } from '../directory-service.js';
import type { Directory } from '../messages.js';
import { b3Hex, checkB3 } from '../digest.js';
import { ClosureValidator } from '../closure-validator.js';
import { walkClosure } from '../traverse.js';

export class MemoryDirectoryService implements DirectoryService {
  private readonly dirs = new Map<string, Directory>();

  async get(digest: Uint8Array): Promise<Directory | undefined> {
    checkB3(digest);
    return this.dirs.get(b3Hex(digest));
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
        for (const { digest, dir } of v.ordered) this.dirs.set(b3Hex(digest), dir);
        return root;
      },
      abort: async () => {},
    };
  }

  async close(): Promise<void> {}
}
