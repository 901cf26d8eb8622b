import type { PathInfo } from '../messages.js';
import { LocalPathInfoService } from './local-pathinfo-service.js';

export class MemoryPathInfoService extends LocalPathInfoService {
  private readonly infos = new Map<string, PathInfo>();

  protected async load(storeDigest: Uint8Array) {
    return this.infos.get(Buffer.from(storeDigest).toString('hex'));
  }

  protected async save(storeDigest: Uint8Array, info: PathInfo) {
    this.infos.set(Buffer.from(storeDigest).toString('hex'), info);
  }

  async stats() {
    let narBytes = 0;
    for (const i of this.infos.values()) narBytes += i.narinfo?.narSize ?? 0;
    return { count: this.infos.size, narBytes };
  }

  async *list(): AsyncIterable<PathInfo> {
    yield* [...this.infos.values()];
  }
}
