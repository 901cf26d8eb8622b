import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PathInfoCodec, type PathInfo } from '../messages.js';
import { existsSync } from 'node:fs';
import { storageError } from '../../castore/errors.js';
import { collectedReferenceError, foreignReferences } from '../collected-reference.js';
import { publishFiles } from '../../castore/disk/atomic-files.js';
import type { DiskLayout } from '../../castore/disk/disk-layout.js';
import type { Castore } from '../render-nar.js';
import { validatePathInfo } from '../validate-pathinfo.js';
import { LocalPathInfoService } from './local-pathinfo-service.js';
import { ShardScan } from '../../castore/disk/shard-scan.js';
import { AccessRecorder, recordPush } from './disk-retention.js';

export class DiskPathInfoService extends LocalPathInfoService {
  constructor(
    private readonly layout: DiskLayout,
    castore: Castore,
  ) {
    super(castore);
    this.reads = new AccessRecorder(layout.root);
  }

  private async readPath(path: string): Promise<PathInfo | undefined> {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw storageError(`reading PathInfo: ${(err as Error).message}`, err);
    }
    return PathInfoCodec.decode(data);
  }

  protected async load(storeDigest: Uint8Array) {
    await this.layout.init();
    return this.readPath(this.layout.objectPath('pathinfo', storeDigest));
  }

  // The content check and the save run inside the collector's fence (gc-fence.ts).
  override async put(info: PathInfo, signal?: AbortSignal): Promise<PathInfo> {
    const sp = validatePathInfo(info);
    return this.layout.gc.guardPut(sp.digest, async () => {
      for (const r of foreignReferences(info, sp.digest)) {
        const path = this.layout.objectPath('pathinfo', r);
        if (this.layout.gc.wasCollected(Buffer.from(r).toString('hex'), () => !existsSync(path))) throw collectedReferenceError(info, r);
      }
      return super.put(info, signal);
    });
  }

  protected async save(storeDigest: Uint8Array, info: PathInfo) {
    await this.layout.init();
    const path = this.layout.objectPath('pathinfo', storeDigest);
    try {
      await publishFiles(this.layout.tmp, [{ path, data: PathInfoCodec.encode(info) }], { overwrite: true });
      await recordPush(path);
    } catch (err) {
      throw storageError(`storing PathInfo: ${(err as Error).message}`, err);
    }
  }

  private readonly narSizes = new ShardScan(async (path) => {
    const info = await this.readPath(path);
    return info && (info.narinfo?.narSize ?? 0);
  });

  async stats() {
    await this.layout.init();
    let narBytes = 0;
    const all = await this.narSizes.scan(this.layout.kindDir('pathinfo'));
    for (const n of all.values()) narBytes += n;
    return { count: all.size, narBytes };
  }

  async *list(): AsyncIterable<PathInfo> {
    await this.layout.init();
    const base = this.layout.kindDir('pathinfo');
    for (const shard of (await readdir(base)).sort()) {
      for (const name of (await readdir(join(base, shard))).sort()) {
        const info = await this.readPath(join(base, shard, name));
        if (info) yield info;
      }
    }
  }
}
