import type { Directory } from '../messages.js';
import { b3Hex } from '../digest.js';
import { encodeDirectory } from '../directory.js';
import { LocalDirectoryService } from '../local-directory-service.js';

export class MemoryDirectoryService extends LocalDirectoryService {
  private readonly dirs = new Map<string, Directory>();

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    return this.dirs.get(b3Hex(digest));
  }

  protected async save(ordered: { digest: Buffer; dir: Directory }[]): Promise<void> {
    for (const { digest, dir } of ordered) this.dirs.set(b3Hex(digest), dir);
  }

  async stats() {
    let bytes = 0;
    for (const d of this.dirs.values()) bytes += encodeDirectory(d).length;
    return { count: this.dirs.size, bytes };
  }
}
