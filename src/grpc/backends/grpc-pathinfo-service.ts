import type { PathInfoService } from '../../store/pathinfo-service.js';
import type { PathInfo, CalculateNarResponse } from '../../store/messages.js';
import type { Node } from '../../castore/messages.js';
import { pathInfoServiceDef } from '../definitions.js';
import { acquireClient, type SharedClient } from '../channel.js';
import { unary, unaryOptional, serverStream } from '../calls.js';
import { fromServiceError } from '../status.js';
import { isKind } from '../../castore/errors.js';
import { validatePathInfo } from '../../store/validate-pathinfo.js';
import { encode as nix32 } from '../../nix/nixbase32.js';
import { fetchStoreStats } from '../stats-client.js';

export class GrpcPathInfoService implements PathInfoService {
  private readonly shared: SharedClient;
  private readonly def = pathInfoServiceDef();
  /** Whether the server wants named CalculateNAR roots (tvix before 2024-10-18). */
  private namedRoots = false;

  constructor(private readonly addr: string) {
    this.shared = acquireClient(addr);
  }

  async get(storeDigest: Uint8Array): Promise<PathInfo | undefined> {
    await this.shared.ready;
    const info = await unaryOptional(this.shared.client, this.def.Get, { byOutputHash: storeDigest }, `PathInfo Get ${nix32(storeDigest)}`);
    if (info) validatePathInfo(info); // clients validate what they receive, as tvix's do
    return info;
  }

  async put(info: PathInfo): Promise<PathInfo> {
    await this.shared.ready;
    try {
      return await unary(this.shared.client, this.def.Put, info);
    } catch (err) {
      throw fromServiceError(err, 'PathInfo Put');
    }
  }

  async *list(): AsyncIterable<PathInfo> {
    await this.shared.ready;
    const stream = await serverStream(this.shared.client, this.def.List, {}, 'PathInfo List');
    if (stream) yield* stream;
  }

  /** Sends an anonymous root first (tvix HEAD); retries named for older servers. Aborting cancels the server's work. */
  async calculateNar(node: Node, signal?: AbortSignal): Promise<CalculateNarResponse> {
    await this.shared.ready;
    const call = async (n: Node) => {
      try {
        return await unary(this.shared.client, this.def.CalculateNAR, { node: n }, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        throw fromServiceError(err, 'CalculateNAR');
      }
    };
    if (this.namedRoots) return call(node);
    try {
      return await call({ ...node, name: new Uint8Array(0) });
    } catch (err) {
      if (!isKind(err, 'invalid') || !(err as Error).message.includes('invalid root node') || node.name.length === 0) throw err;
      this.namedRoots = true;
      return call(node);
    }
  }

  async stats() {
    const s = await fetchStoreStats(this.addr);
    return { count: s.pathInfos, narBytes: s.narBytes };
  }

  async close(): Promise<void> {
    this.shared.release();
  }
}
