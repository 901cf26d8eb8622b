import { readDirectory, type Directory } from '../messages.js';
import { b3Hex } from '../digest.js';
import { LocalDirectoryService } from '../local-directory-service.js';
import type { EncodedDirectory } from '../closure-validator.js';

export class MemoryDirectoryService extends LocalDirectoryService {
  private readonly dirs = new Map<string, Buffer>();

  protected async load(digest: Uint8Array): Promise<Directory | undefined> {
    const data = this.dirs.get(b3Hex(digest));
    return data && readDirectory(data);
  }

  protected async save(ordered: EncodedDirectory[]): Promise<void> {
    for (const { digest, encoded } of ordered) this.dirs.set(b3Hex(digest), encoded);
  }

  async stats() {
    let bytes = 0;
    for (const d of this.dirs.values()) bytes += d.length;
    return { count: this.dirs.size, bytes };
  }
}
