// On-disk store layout (the `file://` backend), one tree shared by the three
// services:
//   <root>/blobs/<hex[0..2]>/<hex>           raw bytes of a blob over 256 KiB (any size in older stores)
//   <root>/packs/<name>.pack, .idx            smaller blobs (pack-format.ts)
//   <root>/directory-packs/<name>.pack, .idx  canonical Directory encodings (same format)
//   <root>/directories/<hex[0..2]>/<hex>     a Directory each, in stores written before directory packs
//   <root>/pathinfo/<hex[0..2]>/<hex40>      PathInfo protobuf
//   <root>/tmp/                              temp files, renamed into place
// Sharding by the first byte keeps directories small; every lookup is one
// path computation, never a scan.
import { join } from 'node:path';
import { cleanStaleTemps } from './atomic-files.js';
import { GcFence } from './gc-fence.js';
import { makeDirs } from '../../util/make-dirs.js';

export type ObjectKind = 'blobs' | 'directories' | 'pathinfo';

export class DiskLayout {
  readonly tmp: string;
  /** Coordination with the garbage collector (gc-fence.ts). */
  readonly gc: GcFence;
  private ready: Promise<void> | undefined;

  constructor(readonly root: string) {
    this.tmp = join(root, 'tmp');
    this.gc = new GcFence(root);
  }

  objectPath(kind: ObjectKind, key: Uint8Array): string {
    const hex = Buffer.from(key).toString('hex');
    return join(this.root, kind, hex.slice(0, 2), hex);
  }

  kindDir(kind: ObjectKind): string {
    return join(this.root, kind);
  }

  /** Creates the tree and sweeps temp files of dead processes, once. */
  init(): Promise<void> {
    this.ready ??= (async () => {
      for (const kind of ['blobs', 'packs', 'directory-packs', 'directories', 'pathinfo', 'tmp']) {
        await makeDirs(join(this.root, kind));
      }
      await cleanStaleTemps(this.tmp);
    })();
    return this.ready;
  }
}
