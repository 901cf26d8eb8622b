// What the memory and on-disk DirectoryService backends share: digest
// checks, breadth-first closure walks, and Put streams validated in full
// before anything is stored.
import type { DirectoryService, DirectoryPutter } from './directory-service.js';
import type { Directory } from './messages.js';
import { checkB3 } from './digest.js';
import { ClosureValidator, type EncodedDirectory } from './closure-validator.js';
import { walkClosure } from './traverse.js';

export abstract class LocalDirectoryService implements DirectoryService {
  protected abstract load(digest: Uint8Array): Promise<Directory | undefined>;
  /** Stores an accepted closure, children before parents, as canonical encodings. */
  protected abstract save(ordered: EncodedDirectory[]): Promise<void>;

  async get(digest: Uint8Array): Promise<Directory | undefined> {
    checkB3(digest);
    return this.load(digest);
  }

  /** Directories a closure walk loads ahead of its turn: more than 1 where each load is a round trip (see walkClosure). */
  protected readonly walkAhead: number = 1;

  async *getRecursive(root: Uint8Array): AsyncIterable<Directory> {
    checkB3(root);
    yield* walkClosure(root, (d) => this.load(d), this.walkAhead);
  }

  putter(): DirectoryPutter {
    const v = new ClosureValidator();
    return {
      put: async (dir) => void v.add(dir),
      close: async (signal) => {
        const root = v.finish();
        signal?.throwIfAborted();
        await this.save(v.ordered);
        return root;
      },
      abort: async () => {},
    };
  }

  async close(): Promise<void> {}
}
