// The mark set of a collection: directories and blobs reachable from kept
// PathInfos (and from directories that survive anyway), as hex digests.
// Every newly marked object is reported, so the collector can spare what
// it had condemned when a late PathInfo turns out to need it.
import type { DirectoryService } from '../castore/directory-service.js';
import type { Node } from '../castore/messages.js';
import { b3Hex, b3String } from '../castore/digest.js';

export type Kind = 'dir' | 'blob';

export class Marks {
  readonly dirs = new Set<string>();
  readonly blobs = new Set<string>();

  constructor(
    private readonly directories: DirectoryService,
    private readonly onMark: (kind: Kind, hex: string) => void = () => {},
  ) {}

  /** Marks a PathInfo's root node and everything under it; a missing directory throws (`strict`) or is skipped. */
  async node(node: Node, strict: boolean): Promise<void> {
    if (node.type === 'file') this.blob(b3Hex(node.digest));
    else if (node.type === 'directory') await this.directory(node.digest, strict);
  }

  blob(hex: string): void {
    if (this.blobs.has(hex)) return;
    this.blobs.add(hex);
    this.onMark('blob', hex);
  }

  /** Marks a directory and its closure (children already marked are not walked again). */
  async directory(root: Uint8Array, strict: boolean): Promise<void> {
    const rootHex = b3Hex(root);
    if (this.dirs.has(rootHex)) return;
    const stack: Uint8Array[] = [root];
    this.markDir(rootHex);
    while (stack.length > 0) {
      const d = stack.pop()!;
      const dir = await this.directories.get(d);
      if (!dir) {
        if (strict) throw new Error(`directory ${b3String(d)} of a kept path is missing: the store is damaged (run fsck); nothing was deleted`);
        continue;
      }
      for (const f of dir.files) this.blob(b3Hex(f.digest));
      for (const c of dir.directories) {
        const hex = b3Hex(c.digest);
        if (this.dirs.has(hex)) continue;
        this.markDir(hex);
        stack.push(c.digest);
      }
    }
  }

  private markDir(hex: string): void {
    this.dirs.add(hex);
    this.onMark('dir', hex);
  }
}
