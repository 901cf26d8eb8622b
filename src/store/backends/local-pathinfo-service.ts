// What the memory and on-disk PathInfo backends share: validation, the
// dangling-content check and NAR calculation against the local castore.
import type { PathInfoService } from '../pathinfo-service.js';
import type { PathInfo } from '../messages.js';
import type { Node } from '../../castore/messages.js';
import { validatePathInfo, STORE_DIGEST_LEN } from '../validate-pathinfo.js';
import { assertContentPresent } from '../check-content.js';
import { calculateNar, type Castore } from '../render-nar.js';
import { invalid } from '../../castore/errors.js';
import type { ReadRecorder } from '../read-recorder.js';

export abstract class LocalPathInfoService implements PathInfoService {
  constructor(protected readonly castore: Castore) {}

  /** Where the backend keeps when paths were read (retention); none: reads are not recorded. */
  protected reads?: ReadRecorder;
  /**
   * Record the reads of `get` for retention: set by those who serve the
   * store (the daemon's gRPC Get and HTTP cache, `nar`), not by tools that
   * merely look (recordReads in cli/daemon-gc.ts).
   */
  recordReads = false;

  protected abstract load(storeDigest: Uint8Array): Promise<PathInfo | undefined>;
  protected abstract save(storeDigest: Uint8Array, info: PathInfo): Promise<void>;
  abstract list(): AsyncIterable<PathInfo>;

  async get(storeDigest: Uint8Array): Promise<PathInfo | undefined> {
    if (storeDigest.length !== STORE_DIGEST_LEN) throw invalid('invalid output digest length');
    const info = await this.load(storeDigest);
    if (info && this.recordReads) this.reads?.read(storeDigest);
    return info;
  }

  async put(info: PathInfo, signal?: AbortSignal): Promise<PathInfo> {
    const sp = validatePathInfo(info);
    await assertContentPresent(info.node!, this.castore, signal);
    signal?.throwIfAborted();
    await this.save(sp.digest, info);
    return info;
  }

  calculateNar(node: Node, signal?: AbortSignal) {
    return calculateNar(node, this.castore, { signal });
  }

  async close(): Promise<void> {
    await this.reads?.close();
  }
}
